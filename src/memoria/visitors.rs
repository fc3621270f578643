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
//!   log is written as responses finish) is still counted once per minute, hour and day.
//! - Memory is one entry per distinct visitor, plus one duration per visit.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use jiff::civil::Date;

use super::agents::{Agent, Origin};
use super::scan::Block;

/// Longest gap between two requests of one visit: 30 minutes, in seconds.
pub(crate) const VISIT_GAP: i64 = 30 * 60;

/// One request, as the visitor pass needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    /// Client address key.
    pub(crate) client: u128,
    /// Index of its user agent in the block.
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

/// A visitor's key: address and user agent (an id in [`Visitors::agents`]).
type Key = (u128, u32);

/// The last two values a visitor was counted under, so each is counted once.
#[derive(Debug, Clone, Copy)]
struct Recent<T>([Option<T>; 2]);

impl<T: PartialEq + Copy> Recent<T> {
    fn new() -> Self {
        Self([None, None])
    }

    /// Whether `v` is new to this visitor (then it is remembered).
    fn first(&mut self, v: T) -> bool {
        if self.0.contains(&Some(v)) {
            return false;
        }
        self.0 = [Some(v), self.0[0]];
        true
    }
}

/// An open visit.
#[derive(Debug, Clone, Copy)]
struct Visit {
    start: i64,
    end: i64,
    pages: u64,
    requests: u64,
}

/// One visitor's state.
struct Visitor {
    bot: bool,
    days: Recent<Date>,
    hours: Recent<i64>,
    minutes: Recent<i64>,
    cortes: Recent<u32>,
    visit: Option<Visit>,
}

/// Everything that follows visitors.
pub(crate) struct Visitors {
    /// User agents seen, by text; the id is the index in `readings`.
    agents: HashMap<Box<[u8]>, u32, RandomState>,
    /// Each user agent's reading.
    pub(crate) readings: Vec<Arc<Agent>>,
    visitors: HashMap<Key, Visitor, RandomState>,
    /// People per day.
    pub(crate) day_people: HashMap<Date, u64, RandomState>,
    /// Bots per day.
    pub(crate) day_bots: HashMap<Date, u64, RandomState>,
    /// Visits begun per day.
    pub(crate) day_visits: HashMap<Date, u64, RandomState>,
    /// People per hour (Unix hour).
    pub(crate) hour_people: HashMap<i64, u64, RandomState>,
    /// People per minute (Unix minute).
    pub(crate) minute_people: HashMap<i64, u64, RandomState>,
    /// People per corte (index: cortes gone live by then; 0 before the first).
    pub(crate) corte_people: Vec<u64>,
    /// Every closed visit's duration in seconds.
    pub(crate) durations: Vec<u32>,
    /// Pages over all closed visits.
    pub(crate) visit_pages: u64,
    /// Closed visits of one request (a visit of several requests in one second lasts 0 s
    /// too, and is not one of them).
    pub(crate) single_request: u64,
    /// Visits per origin.
    pub(crate) origins: HashMap<Origin, u64, RandomState>,
    /// Visits per referring host.
    pub(crate) hosts: HashMap<Box<str>, u64, RandomState>,
    /// Turns a referrer host into an origin.
    classify: Box<dyn Fn(Option<&str>) -> Origin + Send>,
}

impl Visitors {
    /// Ready to follow; `cortes` is how many cortes there are, `classify` reads a referrer.
    pub(crate) fn new(cortes: usize, classify: Box<dyn Fn(Option<&str>) -> Origin + Send>) -> Self {
        Self {
            agents: HashMap::default(),
            readings: Vec::new(),
            visitors: HashMap::default(),
            day_people: HashMap::default(),
            day_bots: HashMap::default(),
            day_visits: HashMap::default(),
            hour_people: HashMap::default(),
            minute_people: HashMap::default(),
            corte_people: vec![0; cortes + 1],
            durations: Vec::new(),
            visit_pages: 0,
            single_request: 0,
            origins: HashMap::default(),
            hosts: HashMap::default(),
            classify,
        }
    }

    /// Follows a block's requests (blocks must come in reading order).
    pub(crate) fn follow(&mut self, block: &Block) {
        let ids: Vec<u32> = block
            .agents
            .iter()
            .map(|(text, reading)| match self.agents.get(text) {
                Some(&id) => id,
                None => {
                    let id = self.readings.len() as u32;
                    self.readings.push(reading.clone());
                    self.agents.insert(text.clone(), id);
                    id
                }
            })
            .collect();
        for hit in &block.hits {
            let Some(&agent) = ids.get(hit.agent as usize) else {
                continue;
            };
            let host = hit
                .host
                .and_then(|h| block.hosts.get(h as usize))
                .map(|h| &**h);
            self.one(hit, agent, host);
        }
    }

    fn one(&mut self, hit: &Hit, agent: u32, host: Option<&str>) {
        let v = self
            .visitors
            .entry((hit.client, agent))
            .or_insert_with(|| Visitor {
                bot: hit.bot,
                days: Recent::new(),
                hours: Recent::new(),
                minutes: Recent::new(),
                cortes: Recent::new(),
                visit: None,
            });
        if v.days.first(hit.day) {
            let per_day = if v.bot {
                &mut self.day_bots
            } else {
                &mut self.day_people
            };
            *per_day.entry(hit.day).or_default() += 1;
        }
        if v.bot {
            return;
        }
        if v.hours.first(hit.minute.div_euclid(60)) {
            *self
                .hour_people
                .entry(hit.minute.div_euclid(60))
                .or_default() += 1;
        }
        if v.minutes.first(hit.minute) {
            *self.minute_people.entry(hit.minute).or_default() += 1;
        }
        if v.cortes.first(hit.corte)
            && let Some(n) = self.corte_people.get_mut(hit.corte as usize)
        {
            *n += 1;
        }
        match &mut v.visit {
            Some(visit) if hit.at - visit.end < VISIT_GAP => {
                visit.end = visit.end.max(hit.at);
                visit.start = visit.start.min(hit.at);
                visit.pages += u64::from(hit.page);
                visit.requests += 1;
            }
            open => {
                if let Some(done) = open.take() {
                    self.durations.push(duration(&done));
                    self.visit_pages += done.pages;
                    self.single_request += u64::from(done.requests == 1);
                }
                *open = Some(Visit {
                    start: hit.at,
                    end: hit.at,
                    pages: u64::from(hit.page),
                    requests: 1,
                });
                *self.day_visits.entry(hit.day).or_default() += 1;
                *self.origins.entry((self.classify)(host)).or_default() += 1;
                if let Some(h) = host {
                    *self.hosts.entry(h.into()).or_default() += 1;
                }
            }
        }
    }

    /// Closes the visits still open; returns the visitors (key's agent id, bot) for the
    /// per-agent counts.
    pub(crate) fn finish(&mut self) -> Vec<(u32, bool)> {
        let mut out = Vec::with_capacity(self.visitors.len());
        for (&(_, agent), v) in &mut self.visitors {
            if let Some(done) = v.visit.take() {
                self.durations.push(duration(&done));
                self.visit_pages += done.pages;
                self.single_request += u64::from(done.requests == 1);
            }
            out.push((agent, v.bot));
        }
        self.durations.sort_unstable();
        out
    }
}

fn duration(v: &Visit) -> u32 {
    u32::try_from(v.end - v.start).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_counts_each_value_once_even_a_little_out_of_order() {
        let mut r = Recent::new();
        assert!(r.first(1));
        assert!(r.first(2));
        assert!(!r.first(1));
        assert!(!r.first(2));
        assert!(r.first(3));
        assert!(!r.first(2));
    }
}
