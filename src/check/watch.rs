//! `--watch`: every period, the packages read again and every target checked; a state per
//! target; the suspension after `--fail-after` consecutive failed periods (R5.3) and the
//! recovery, each said once; every observation appended to the observation log.
//!
//! # Guarantees
//! - Ctrl-C or SIGTERM stops it at once with status 0, in a period or between two.
//! - One line per target per period on stdout (a JSON object with `--json`), in the order of
//!   the targets file, printed as each period ends.
//! - Periods keep their time whatever the targets or the package's address do: reading the
//!   packages and each target's check of a period end by `--period-timeout` after the period
//!   began (`--every` unless set shorter); a package not read by then leaves the period
//!   unchecked, said on stderr, and what a target had not answered by then fails that period
//!   for that target, with a finding that says so. A slow or hostile server delays no other
//!   target's line, verdict or suspension, nor the next period. Targets are checked
//!   [`PARALLEL_TARGETS`] at a time, each taken up as soon as a place is free.
//! - A target that serves the corte before the latest one is `pending`, not failing, for
//!   `--grace` after the latest package arrived (R4.6 gives a minute); after that it is
//!   stale. An unreachable target fails its period.
//! - The observation log is CSV with a header, one row per target per period, each row
//!   written whole, flushed and fsynced before the next period; an existing log is appended
//!   to, never rewritten.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{StreamExt as _, stream};
use jiff::Timestamp;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use super::expected::{Expected, Loader};
use super::log::Log;
use super::report::{Report, Verdict};
use super::target::{Checker, Deadline, Target, rfc3339};

/// Most targets checked at once.
const PARALLEL_TARGETS: usize = 8;

/// How the watch runs.
pub(super) struct Plan {
    /// Time between periods.
    pub(super) every: Duration,
    /// Longest a target's check may take in one period, from the period's start (at most
    /// `every`).
    pub(super) period_timeout: Duration,
    /// Stop after this many periods.
    pub(super) periods: Option<u64>,
    /// Consecutive failed periods that suspend a target.
    pub(super) fail_after: u32,
    /// How long after a package arrives its corte may still be missing.
    pub(super) grace: Duration,
    /// Where observations are appended.
    pub(super) log: PathBuf,
    /// JSON lines instead of text lines.
    pub(super) json: bool,
}

/// A target's period, as the state machine judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Period {
    Ok,
    /// On the previous corte within the grace after a new package.
    Pending,
    Fail,
    Unchecked,
}

impl Period {
    /// As the observation log writes it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Pending => "pending",
            Self::Fail => "fail",
            Self::Unchecked => "unchecked",
        }
    }
}

/// What is remembered of a target between periods.
#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    /// The corte it was first seen serving, when, as the lag from its package's arrival.
    lag: Option<(String, i64)>,
}

/// What a period says about a target beyond its check: for the line and the log.
#[derive(Serialize)]
pub(super) struct Line<'a> {
    #[serde(flatten)]
    pub(super) report: &'a Report,
    pub(super) period: Period,
    pub(super) consecutive_failures: u32,
    pub(super) event: Option<&'static str>,
}

/// Watches `targets` until `plan.periods` or Ctrl-C; the exit status of the last period.
pub(super) async fn run(
    checker: &Checker,
    loader: &mut Loader,
    targets: &[Target],
    plan: &Plan,
) -> Result<u8> {
    let mut log = Log::open(&plan.log)?;
    let mut states: HashMap<String, State> = HashMap::new();
    let mut ticks = tokio::time::interval(plan.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Listening from the start: a Ctrl-C or SIGTERM at any moment, in a period or between
    // two, stops the watch at once with status 0 (the rows written so far are on disk).
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut done = 0u64;
    loop {
        let watched = async {
            let began = ticks.tick().await;
            let deadline = Deadline {
                at: began + plan.period_timeout,
                allowed: plan.period_timeout,
                whole: false,
            };
            // The package's address is held to the period's time as the targets are.
            let loaded = tokio::time::timeout_at(deadline.at, loader.load())
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "the package was not read within {} s (--period-timeout)",
                        plan.period_timeout.as_secs_f64()
                    ))
                });
            match loaded {
                Ok(expected) => {
                    let reports = check_all(checker, &expected, targets, Some(deadline)).await;
                    period(&expected, reports, plan, &mut states, &mut log)
                }
                Err(e) => {
                    eprintln!(
                        "{}  sin paquete que comparar: {e:#}",
                        rfc3339(Timestamp::now(), &checker.timezone)
                    );
                    Ok(Verdict::Unchecked)
                }
            }
        };
        let last = tokio::select! {
            verdict = watched => verdict?,
            _ = interrupt.recv() => return Ok(0),
            _ = terminate.recv() => return Ok(0),
        };
        done += 1;
        if plan.periods.is_some_and(|n| done >= n) {
            return Ok(last.exit());
        }
    }
}

/// The end of one period: every target's report judged, printed and logged; the worst
/// verdict.
fn period(
    expected: &Expected,
    reports: Vec<Report>,
    plan: &Plan,
    states: &mut HashMap<String, State>,
    log: &mut Log,
) -> Result<Verdict> {
    let since_arrival = Timestamp::now().duration_since(expected.arrival);
    let mut worst = Verdict::Ok;
    for mut report in reports {
        let state = states.entry(report.target.clone()).or_default();
        let within_grace = since_arrival.unsigned_abs() < plan.grace && since_arrival.is_positive();
        let judged = match report.result {
            Verdict::Ok => Period::Ok,
            Verdict::Fail if report.stale && within_grace => Period::Pending,
            Verdict::Fail => Period::Fail,
            Verdict::Unchecked => Period::Unchecked,
        };
        if report.served_corte.as_deref() == Some(expected.corte.as_str())
            && state.lag.as_ref().is_none_or(|(c, _)| *c != expected.corte)
        {
            state.lag = Some((expected.corte.clone(), since_arrival.as_secs()));
        }
        report.lag_seconds = state
            .lag
            .as_ref()
            .filter(|(c, _)| report.served_corte.as_deref() == Some(c))
            .map(|(_, s)| *s);
        let failed = matches!(judged, Period::Fail | Period::Unchecked);
        let before = state.consecutive;
        state.consecutive = if failed { before + 1 } else { 0 };
        let event = if failed && state.consecutive == plan.fail_after {
            Some("suspender")
        } else if !failed && before >= plan.fail_after {
            Some("recuperado")
        } else {
            None
        };
        if failed {
            worst = worst.worst(report.result);
        }
        let line = Line {
            report: &report,
            period: judged,
            consecutive_failures: state.consecutive,
            event,
        };
        print_line(&line, before, plan, since_arrival.as_secs());
        log.append(&line)?;
    }
    Ok(worst)
}

/// Checks every target, each by `deadline` when one is given, at most [`PARALLEL_TARGETS`]
/// at once (a target still being checked never holds back those after it); the reports in
/// target order.
pub(super) async fn check_all(
    checker: &Checker,
    expected: &Expected,
    targets: &[Target],
    deadline: Option<Deadline>,
) -> Vec<Report> {
    let mut reports: Vec<(usize, Report)> = stream::iter(targets.iter().enumerate())
        .map(|(i, target)| async move { (i, checker.check(target, expected, deadline).await) })
        .buffer_unordered(PARALLEL_TARGETS)
        .collect()
        .await;
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, report)| report).collect()
}

/// Prints the period's line of a target, and the suspension or recovery line when there is
/// one.
fn print_line(line: &Line<'_>, before: u32, plan: &Plan, since_arrival: i64) {
    let r = line.report;
    if plan.json {
        if let Ok(text) = serde_json::to_string(line) {
            println!("{text}");
        }
        return;
    }
    let head = format!("{}  {}", r.checked_at, r.target);
    match line.period {
        Period::Ok => println!(
            "{head}  ok  corte {}  {} iguales{}",
            r.served_corte
                .as_deref()
                .or(r.expected_corte.as_deref())
                .unwrap_or("-"),
            r.counts.equal,
            r.lag_seconds
                .map(|s| format!("  publicado a los {s} s"))
                .unwrap_or_default()
        ),
        Period::Pending => println!(
            "{head}  actualizando  corte {} → {}  ({since_arrival} s desde la llegada del paquete)",
            r.served_corte.as_deref().unwrap_or("-"),
            r.expected_corte.as_deref().unwrap_or("-"),
        ),
        Period::Fail | Period::Unchecked => {
            let n = line.consecutive_failures;
            println!(
                "{head}  falla ({n} {} consecutivo{})  {}",
                if n == 1 { "periodo" } else { "periodos" },
                if n == 1 { "" } else { "s" },
                r.headline()
            );
        }
    }
    match line.event {
        Some("suspender") => println!(
            "{head}  suspender: {} periodos consecutivos",
            line.consecutive_failures
        ),
        Some(_) => println!("{head}  recuperado tras {before} periodos con falla"),
        None => {}
    }
}
