//! The report's charts, drawn as SVG by plotters into a string for embedding in the page.
//!
//! # Guarantees
//! - No fonts are read: plotters' SVG backend writes `<text>` elements in `sans-serif` and
//!   the browser lays them out, so the same figures give the same bytes on any machine.
//! - Every label passes plotters' SVG escaping; no text reaches the page unescaped.
//! - A chart with nothing to show is `None`: the page says so in a sentence instead.
//! - Timelines of any length draw as one path per series (two days of minutes are 2,880
//!   points), with their time labels on whole local hours or minutes.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use super::format;

/// Width and height of every chart, in SVG units (it scales to the page).
const SIZE: (u32, u32) = (960, 340);
/// A series' colour.
pub(super) type Paint = RGBColor;

/// The report's colours: ink, the main series, a second series, and what needs attention.
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const GRID: RGBColor = RGBColor(0xe4, 0xe7, 0xeb);
pub(super) const BLUE: RGBColor = RGBColor(0x1f, 0x4e, 0x79);
pub(super) const TEAL: RGBColor = RGBColor(0x2a, 0x9d, 0x8f);
pub(super) const RED: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
pub(super) const AMBER: RGBColor = RGBColor(0xd9, 0x8c, 0x1f);
/// The font of titles and labels: any sans-serif the reader's browser has.
const FONT: &str = "sans-serif";

/// What a chart says about itself: its title and the meaning of each axis.
pub(super) struct Labels<'a> {
    pub(super) title: &'a str,
    pub(super) x: &'a str,
    pub(super) y: &'a str,
}

/// One bar of a bar chart.
pub(super) struct Bar {
    pub(super) label: String,
    pub(super) value: f64,
    /// Drawn in red: a value over its limit.
    pub(super) alert: bool,
}

/// A horizontal line across a bar chart: a limit and what it is.
pub(super) struct Limit<'a> {
    pub(super) value: f64,
    pub(super) name: &'a str,
}

/// One line of a timeline: `(instant, value)` points in time order.
pub(super) struct Series<'a> {
    pub(super) name: &'a str,
    pub(super) color: RGBColor,
    pub(super) points: Vec<(Timestamp, f64)>,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// A vertical bar chart, one bar per category, with an optional limit line.
pub(super) fn bars(labels: &Labels, bars: &[Bar], limit: Option<Limit>) -> Option<String> {
    if bars.is_empty() {
        return None;
    }
    draw(|svg| draw_bars(svg, labels, bars, limit.as_ref()))
}

/// A timeline of one or more series sharing the time axis, shown in `tz`.
pub(super) fn timeline(labels: &Labels, tz: &TimeZone, series: &[Series]) -> Option<String> {
    let (first, last) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(t, _)| t.as_second()))
        .fold(None, |span, t| match span {
            None => Some((t, t)),
            Some((a, b)) => Some((t.min(a), t.max(b))),
        })?;
    let last = last.max(first + 60);
    draw(|svg| draw_timeline(svg, labels, tz, series, (first, last)))
}

/// Runs a drawing into a string; a failure (none is expected: the target is memory) is
/// logged and the page shows a sentence instead.
fn draw(paint: impl FnOnce(&mut String) -> Drawn) -> Option<String> {
    let mut svg = String::new();
    match paint(&mut svg) {
        Ok(()) => Some(svg),
        Err(e) => {
            tracing::warn!(error = %e, "a chart of the memoria could not be drawn");
            None
        }
    }
}

fn draw_bars(svg: &mut String, labels: &Labels, bars: &[Bar], limit: Option<&Limit>) -> Drawn {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars
        .iter()
        .map(|b| b.value)
        .chain(limit.map(|l| l.value))
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.12 } else { 1.0 };
    let n = bars.len();
    // Bar `i` stands on [10 i, 10 i + 10), labelled at its middle.
    let width = 10;
    let n = i64::try_from(n).unwrap_or(i64::MAX / width - 1);
    let every = usize::try_from(n.div_euclid(16) + 1).unwrap_or(1);
    let labelled: Vec<i64> = (0..n)
        .map(|i| i * width + width / 2)
        .step_by(every)
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(labels.title, (FONT, 20).into_font().color(&INK))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((0..n * width).with_key_points(labelled), 0.0..top)?;
    let label_of = |x: &i64| {
        usize::try_from(x / width)
            .ok()
            .and_then(|i| bars.get(i))
            .map(|b| b.label.clone())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(INK)
        .x_label_formatter(&label_of)
        .y_label_formatter(&|v| axis_number(*v))
        .x_desc(labels.x)
        .y_desc(labels.y)
        .label_style((FONT, 13).into_font().color(&INK))
        .axis_desc_style((FONT, 14).into_font().color(&INK))
        .draw()?;
    let gap = if n > 40 { 1 } else { 2 };
    chart.draw_series((0..).zip(bars).map(|(i, b)| {
        let style = if b.alert { RED.filled() } else { BLUE.filled() };
        let x = i * width;
        Rectangle::new([(x + gap, 0.0), (x + width - gap, b.value)], style)
    }))?;
    if let Some(limit) = limit {
        let line = [(0, limit.value), (n * width, limit.value)];
        chart
            .draw_series(DashedLineSeries::new(line, 8, 5, RED.stroke_width(2)))?
            .label(limit.name)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
        legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

fn draw_timeline(
    svg: &mut String,
    labels: &Labels,
    tz: &TimeZone,
    series: &[Series],
    (first, last): (i64, i64),
) -> Drawn {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.12 } else { 1.0 };
    let ticks = time_ticks(first, last, tz);
    let mut chart = ChartBuilder::on(&root)
        .caption(labels.title, (FONT, 20).into_font().color(&INK))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((first..last).with_key_points(ticks), 0.0..top)?;
    let several_days = last - first > 86_400;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(INK)
        .x_label_formatter(&|s| time_label(*s, tz, several_days))
        .y_label_formatter(&|v| axis_number(*v))
        .x_desc(labels.x)
        .y_desc(labels.y)
        .label_style((FONT, 13).into_font().color(&INK))
        .axis_desc_style((FONT, 14).into_font().color(&INK))
        .draw()?;
    for s in series {
        let points = s.points.iter().map(|(t, v)| (t.as_second(), *v));
        let color = s.color;
        if series.len() == 1 {
            chart.draw_series(AreaSeries::new(points, 0.0, color.mix(0.18)).border_style(color))?;
        } else {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(s.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    if series.len() > 1 {
        legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

fn legend<'a, X, Y>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>) -> Drawn
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .label_font((FONT, 13).into_font().color(&INK))
        .draw()?;
    Ok(())
}

/// Instants (Unix seconds) for the time axis: whole local minutes or hours, about ten of
/// them, whatever the span.
fn time_ticks(first: i64, last: i64, tz: &TimeZone) -> Vec<i64> {
    const STEPS: [i64; 12] = [
        60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
    ];
    let span = last - first;
    let step = STEPS
        .into_iter()
        .find(|s| span / s <= 10)
        .unwrap_or(86_400 * (span / 86_400 / 10 + 1));
    // Whole local steps: shift to local wall time, round up, shift back.
    let shift = i64::from(
        tz.to_offset(Timestamp::from_second(first).unwrap_or_default())
            .seconds(),
    );
    let start = (first + shift).div_euclid(step) * step - shift;
    let start = if start < first { start + step } else { start };
    (0..)
        .map(|k| start + k * step)
        .take_while(|t| *t <= last)
        .collect()
}

/// `20:15`, or `06-02 20:15` when the axis spans days.
fn time_label(second: i64, tz: &TimeZone, with_date: bool) -> String {
    let Ok(at) = Timestamp::from_second(second) else {
        return String::new();
    };
    if with_date {
        at.to_zoned_datetime(tz.clone())
            .strftime("%m-%d %H:%M")
            .to_string()
    } else {
        format::hour_minute(at, tz)
    }
}

/// An axis value: whole numbers with thousands separated, small ones with a decimal.
fn axis_number(v: f64) -> String {
    if v.fract().abs() < 1e-9 || v.abs() >= 100.0 {
        format::count(v.round().max(0.0) as u64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels<'static> {
        Labels {
            title: "Título <a>",
            x: "eje x",
            y: "eje y",
        }
    }

    #[test]
    fn nothing_to_draw_is_none() {
        assert!(bars(&labels(), &[], None).is_none());
        let empty = Series {
            name: "s",
            color: BLUE,
            points: vec![],
        };
        assert!(timeline(&labels(), &TimeZone::UTC, &[empty]).is_none());
    }

    #[test]
    fn two_days_of_minutes_draw_with_hourly_labels() {
        let start: Timestamp = "2024-06-02T12:00:00Z".parse().unwrap();
        let points = (0..2880)
            .map(|m| (start + SignedDuration::from_mins(m), (m % 97) as f64))
            .collect();
        let tz = TimeZone::get("America/Mexico_City").unwrap();
        let s = Series {
            name: "solicitudes",
            color: BLUE,
            points,
        };
        let svg = timeline(&labels(), &tz, &[s]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("Título &lt;a&gt;"));
        assert!(svg.contains("06-02 12:00"), "labels on whole local hours");
        assert!(!svg.contains("<a>"));
    }

    #[test]
    fn ticks_fall_on_whole_local_steps() {
        let tz = TimeZone::get("America/Mexico_City").unwrap();
        let first: Timestamp = "2024-06-03T00:07:00Z".parse().unwrap(); // 18:07 local
        let ticks = time_ticks(first.as_second(), first.as_second() + 3 * 3600, &tz);
        let first_tick = Timestamp::from_second(ticks[0]).unwrap();
        assert_eq!(format::hour_minute(first_tick, &tz), "18:30");
        assert!(ticks.len() <= 11);
    }

    use jiff::SignedDuration;
}
