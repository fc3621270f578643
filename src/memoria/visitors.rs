//! Visitors and visits: what depends on the order of requests.
//!
//! A visitor is a client address with a user agent (the definition GoAccess uses); unique
//! visitors are counted per day, per hour, per minute, per corte and over the period. A
//! visit is a person's run of requests with gaps under [`VISIT_GAP`]; its duration runs from
//! its first to its last request, so the time spent reading the last page, which no request
//! marks, counts as zero (and a visit of one request lasts zero).
//!
//! # Guarantees
//! - Requests are followed in file order; a request logged a little out of time order (the
//!   log is written as responses finish) is still counted once per minute, hour and day, and
//!   joins its visit; one logged 30 minutes or more before its visit began (a clock set back)
//!   is a visit of its own, never stretching another.
//! - Memory is one entry per distinct visitor (a 128-bit key and 56 bytes of state, whatever
//!   the length of its user agent), plus one duration per visit, plus one entry per distinct
//!   reading of a person's user agent (browser, system, device class; at most
//!   [`MAX_NAMES`], the rest counted under one "other" reading), plus one entry per distinct
//!   referring host (at most [`MAX_NAMES`] likewise, the rest counted under one "other"
//!   host). A user agent's text is not kept: a visitor is known by a SHA-256 of its address
//!   and agent.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use jiff::civil::Date;

use super::agents::{Agent, Device, Origin};
use super::scan::{Block, MAX_NAMES, OTHER_NAMES};

/// Longest gap between two requests of one visit: 30 minutes, in seconds.
pub(crate) const VISIT_GAP: i64 = 30 * 60;

/// One request, as the visitor pass needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    /// The visitor: the first 128 bits of a SHA-256 of its address and its user agent.
    pub(crate) visitor: u128,
    /// Index of its user agent's reading in the block.
    pub(crate) agent: u32,
    /// Index of its referrer host in the block, if it had one.
    pub(crate) host: Option<u32>,
    /// Unix second.
    pub(crate) at: i64,
    /// Unix minute.
    pub(crate) minute: i64,
    /// Local day.
    pub(crate) day: Date,
    /// How many cortes had gone live by then (0: none yet).
    pub(crate) corte: u32,
    /// A page view by a person.
    pub(crate) page: bool,
    /// From a bot.
    pub(crate) bot: bool,
}

/// The reading id of every bot (their names are counted per request, not per visitor).
const BOT: u32 = u32::MAX;

/// The last two values a visitor was counted under, so each is counted once; `u32::MAX` is
/// none (no day, hour, minute or corte index reaches it).
#[derive(Debug, Clone, Copy)]
struct Recent([u32; 2]);

impl Recent {
    const NONE: u32 = u32::MAX;

    fn new() -> Self {
        Self([Self::NONE; 2])
    }

    /// Whether `v` is new to this visitor (then it is remembered).
    fn first(&mut self, v: u32) -> bool {
        if self.0.contains(&v) {
            return false;
        }
        self.0 = [v, self.0[0]];
        true
    }
}

/// A day as a number, equal for equal days only (none reaches `u32::MAX`).
fn day_number(day: Date) -> u32 {
    (((i32::from(day.year()) + 10_000) as u32) << 9)
        | (u32::from(day.month() as u8) << 5)
        | u32::from(day.day() as u8)
}

/// A visit, as closed.
#[derive(Debug, Clone, Copy)]
struct Visit {
    start: i64,
    end: i64,
    pages: u32,
    requests: u32,
}

/// What the closed visits add up to.
#[derive(Debug, Default)]
pub(crate) struct Closed {
    /// Every closed visit's duration in seconds (sorted once all are closed).
    pub(crate) durations: Vec<u32>,
    /// Pages over all closed visits.
    pub(crate) pages: u64,
    /// Visits of one request (a visit of several requests in one second lasts 0 s too, and
    /// is not one of them).
    pub(crate) single_request: u64,
}

impl Closed {
    fn add(&mut self, v: &Visit) {
        self.durations
            .push(u32::try_from(v.end - v.start).unwrap_or(u32::MAX));
        self.pages += u64::from(v.pages);
        self.single_request += u64::from(v.requests == 1);
    }
}

/// One visitor's state, kept small: there may be tens of millions.
struct Visitor {
    /// Its reading's id in [`Visitors::readings`], or [`BOT`].
    reading: u32,
    days: Recent,
    hours: Recent,
    minutes: Recent,
    cortes: Recent,
    /// The open visit: its first second, its span in seconds (saturated), its pages and its
    /// requests (0: no visit open).
    start: i64,
    span: u32,
    pages: u32,
    requests: u32,
}

impl Visitor {
    fn open(&self) -> Option<Visit> {
        (self.requests > 0).then(|| Visit {
            start: self.start,
            end: self.start.saturating_add(i64::from(self.span)),
            pages: self.pages,
            requests: self.requests,
        })
    }
}

/// Unique people per slot of a timeline that starts at `first` (a Unix minute or hour).
pub(crate) struct Timeline {
    first: i64,
    /// People per slot, from `first`.
    pub(crate) people: Vec<u64>,
}

impl Timeline {
    fn new(first: i64, last: i64) -> Self {
        Self {
            first,
            people: vec![0; usize::try_from(last - first + 1).unwrap_or(0)],
        }
    }

    /// The slot of `key`, if inside the timeline.
    fn index(&self, key: i64) -> Option<u32> {
        u32::try_from(key - self.first)
            .ok()
            .filter(|&i| (i as usize) < self.people.len())
    }

    /// People in the slot of `key`.
    pub(crate) fn get(&self, key: i64) -> u64 {
        self.index(key)
            .and_then(|i| self.people.get(i as usize))
            .copied()
            .unwrap_or(0)
    }
}

/// Everything that follows visitors.
pub(crate) struct Visitors {
    /// Each distinct reading of a person's user agent; the id is the index in `readings`.
    reading_ids: HashMap<Arc<Agent>, u32, RandomState>,
    /// The distinct readings of people's user agents.
    pub(crate) readings: Vec<Arc<Agent>>,
    visitors: HashMap<u128, Visitor, RandomState>,
    /// People per day.
    pub(crate) day_people: HashMap<Date, u64, RandomState>,
    /// Bots per day.
    pub(crate) day_bots: HashMap<Date, u64, RandomState>,
    /// Visits begun per day.
    pub(crate) day_visits: HashMap<Date, u64, RandomState>,
    /// People per hour (Unix hours), when the period is known.
    pub(crate) hours: Option<Timeline>,
    /// People per minute (Unix minutes), when the period is known.
    pub(crate) minutes: Option<Timeline>,
    /// People per corte (index: cortes gone live by then; 0 before the first).
    pub(crate) corte_people: Vec<u64>,
    /// The visits closed.
    pub(crate) closed: Closed,
    /// Visits per origin, indexed by [`Origin`].
    pub(crate) origins: [u64; Origin::ALL.len()],
    /// Referring hosts seen; the id is the index in `host_visits`.
    hosts: HashMap<Box<str>, u32, RandomState>,
    /// Visits per referring host.
    pub(crate) host_visits: Vec<(Box<str>, u64)>,
}

impl Visitors {
    /// Ready to follow; `cortes` is how many cortes there are; `period` (Unix seconds,
    /// first and last) sets the minute and hour timelines (none without it).
    pub(crate) fn new(cortes: usize, period: Option<(i64, i64)>) -> Self {
        Self {
            reading_ids: HashMap::default(),
            readings: Vec::new(),
            visitors: HashMap::default(),
            day_people: HashMap::default(),
            day_bots: HashMap::default(),
            day_visits: HashMap::default(),
            hours: period.map(|(a, b)| Timeline::new(a.div_euclid(3600), b.div_euclid(3600))),
            minutes: period.map(|(a, b)| Timeline::new(a.div_euclid(60), b.div_euclid(60))),
            corte_people: vec![0; cortes + 1],
            closed: Closed::default(),
            origins: [0; Origin::ALL.len()],
            hosts: HashMap::default(),
            host_visits: Vec::new(),
        }
    }

    /// Follows a block's requests (blocks must come in reading order).
    pub(crate) fn follow(&mut self, block: &Block) {
        let ids: Vec<u32> = block
            .agents
            .iter()
            .map(|reading| self.reading_id(reading))
            .collect();
        let hosts: Vec<(u32, Origin)> = block
            .hosts
            .iter()
            .map(|(host, origin)| (self.host_id(host), *origin))
            .collect();
        for hit in &block.hits {
            let Some(&agent) = ids.get(hit.agent as usize) else {
                continue;
            };
            let host = hit.host.and_then(|h| hosts.get(h as usize)).copied();
            self.one(hit, agent, host);
        }
    }

    /// The id of a referring host in [`Self::host_visits`], the "other" name's once there
    /// are [`MAX_NAMES`] (a client can name a new host with every request).
    fn host_id(&mut self, host: &str) -> u32 {
        if let Some(&id) = self.hosts.get(host) {
            return id;
        }
        let name: Box<str> = if self.host_visits.len() < MAX_NAMES {
            host.into()
        } else {
            OTHER_NAMES.into()
        };
        if let Some(&id) = self.hosts.get(&name) {
            return id;
        }
        let id = self.host_visits.len() as u32;
        self.host_visits.push((name.clone(), 0));
        self.hosts.insert(name, id);
        id
    }

    /// The id of a reading: [`BOT`] for a bot's, one id per distinct person's reading, the
    /// "other" reading's once there are [`MAX_NAMES`].
    fn reading_id(&mut self, reading: &Arc<Agent>) -> u32 {
        if reading.bot.is_some() {
            return BOT;
        }
        if let Some(&id) = self.reading_ids.get(reading) {
            return id;
        }
        let reading = if self.readings.len() < MAX_NAMES {
            reading.clone()
        } else {
            let other = Arc::new(Agent {
                browser: OTHER_NAMES.into(),
                system: OTHER_NAMES.into(),
                device: Device::Other,
                bot: None,
            });
            if let Some(&id) = self.reading_ids.get(&other) {
                return id;
            }
            other
        };
        let id = self.readings.len() as u32;
        self.readings.push(reading.clone());
        self.reading_ids.insert(reading, id);
        id
    }

    fn one(&mut self, hit: &Hit, agent: u32, host: Option<(u32, Origin)>) {
        let v = self.visitors.entry(hit.visitor).or_insert_with(|| Visitor {
            reading: if hit.bot { BOT } else { agent },
            days: Recent::new(),
            hours: Recent::new(),
            minutes: Recent::new(),
            cortes: Recent::new(),
            start: 0,
            span: 0,
            pages: 0,
            requests: 0,
        });
        let bot = v.reading == BOT;
        if v.days.first(day_number(hit.day)) {
            let per_day = if bot {
                &mut self.day_bots
            } else {
                &mut self.day_people
            };
            *per_day.entry(hit.day).or_default() += 1;
        }
        if bot {
            return;
        }
        for (timeline, recent, key) in [
            (&mut self.hours, &mut v.hours, hit.minute.div_euclid(60)),
            (&mut self.minutes, &mut v.minutes, hit.minute),
        ] {
            if let Some(t) = timeline
                && let Some(i) = t.index(key)
                && recent.first(i)
                && let Some(n) = t.people.get_mut(i as usize)
            {
                *n += 1;
            }
        }
        if v.cortes.first(hit.corte)
            && let Some(n) = self.corte_people.get_mut(hit.corte as usize)
        {
            *n += 1;
        }
        match v.open() {
            // A request joins the visit when it is less than the gap from the visit's span on
            // either side: one logged a little out of order joins it, one hours before it (a
            // clock set back) starts a visit of its own.
            Some(visit) if hit.at - visit.end < VISIT_GAP && visit.start - hit.at < VISIT_GAP => {
                let end = visit.end.max(hit.at);
                v.start = visit.start.min(hit.at);
                v.span = u32::try_from(end - v.start).unwrap_or(u32::MAX);
                v.pages = v.pages.saturating_add(u32::from(hit.page));
                v.requests = v.requests.saturating_add(1);
            }
            open => {
                if let Some(done) = open {
                    self.closed.add(&done);
                }
                v.start = hit.at;
                v.span = 0;
                v.pages = u32::from(hit.page);
                v.requests = 1;
                *self.day_visits.entry(hit.day).or_default() += 1;
                let origin = host.map_or(Origin::Direct, |h| h.1);
                self.origins[origin as usize] += 1;
                if let Some((id, _)) = host
                    && let Some(h) = self.host_visits.get_mut(id as usize)
                {
                    h.1 += 1;
                }
            }
        }
    }

    /// Closes the visits still open; returns how many people had each reading (indexed as
    /// [`Self::readings`]) and how many visitors were bots.
    pub(crate) fn finish(&mut self) -> (Vec<u64>, u64) {
        let mut people = vec![0u64; self.readings.len()];
        let mut bots = 0;
        for v in self.visitors.values_mut() {
            if let Some(done) = v.open() {
                self.closed.add(&done);
            }
            v.requests = 0;
            match people.get_mut(v.reading as usize) {
                Some(n) => *n += 1,
                None => bots += 1,
            }
        }
        self.closed.durations.sort_unstable();
        (people, bots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(browser: &str) -> Arc<Agent> {
        Arc::new(Agent {
            browser: browser.into(),
            system: "Windows".into(),
            device: Device::Desktop,
            bot: None,
        })
    }

    #[test]
    fn each_distinct_reading_is_kept_once_and_past_the_limit_counted_as_other() {
        let mut v = Visitors::new(0, None);
        let chrome = v.reading_id(&person("Chrome"));
        assert_eq!(v.reading_id(&person("Chrome")), chrome);
        let bot = Arc::new(Agent {
            browser: "curl".into(),
            system: "Otro".into(),
            device: Device::Other,
            bot: Some("curl".into()),
        });
        assert_eq!(v.reading_id(&bot), BOT);
        for i in 1..MAX_NAMES {
            v.reading_id(&person(&format!("B{i}")));
        }
        assert_eq!(v.readings.len(), MAX_NAMES);
        let other = v.reading_id(&person("Uno más"));
        assert_eq!(v.reading_id(&person("Otro más")), other);
        assert_eq!(&*v.readings[other as usize].browser, OTHER_NAMES);
        assert_eq!(v.reading_id(&person("Chrome")), chrome);
        assert_eq!(v.readings.len(), MAX_NAMES + 1);
    }

    #[test]
    fn recent_counts_each_value_once_even_a_little_out_of_order() {
        let mut r = Recent::new();
        assert!(r.first(0));
        assert!(!r.first(0));
        let mut r = Recent::new();
        assert!(r.first(1));
        assert!(r.first(2));
        assert!(!r.first(1));
        assert!(!r.first(2));
        assert!(r.first(3));
        assert!(!r.first(2));
    }
}
