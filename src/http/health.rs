//! The server's health, and the load balancer's health check that shows it (`health_listen`).
//!
//! [`Health`] is the one place that says whether this node should get visitors. What bears
//! on it is written there by whoever learns it: `serve` records that the publisher thread
//! died and that the node is draining; a replica's follower of its primary's state
//! (`replica_of`) records the corte the primary serves; the live corte is read from the live
//! site. The admin
//! listener's `/health` and `/status` and this listener read it.
//!
//! The listener is for HAProxy's `option httpchk` (or any load balancer): plain HTTP, meant
//! for a private network, answering `GET` and `HEAD /health`:
//! - 200 `{"serving": true, "corte": "<id>"}` when a corte is live, the publisher runs, the
//!   node is not draining and, on a replica, it serves the corte its primary announced (it
//!   has since it started, and is not behind a newer one for more than `health_max_lag`), or
//!   its own corte while its primary cannot be reached (the body then also carries
//!   `primary_unreachable_since` and a `reason` saying so);
//! - 503 `{"serving": false, "reason": "<plain words>"}` otherwise (`draining` once the
//!   server was asked to stop).
//!
//! It starts once the public listeners accept connections and stops with them, so that a
//! node that does not serve visitors does not answer here either.
//!
//! # Guarantees
//! - Any other path gets 404, any other method 405 with `Allow`; a request body is never
//!   read. Every answer carries `Cache-Control: no-store`.
//! - Connections are held to tight limits: [`MAX_CONNECTIONS`] in all and
//!   [`MAX_PER_ADDRESS`] per address (the oldest idle one gives way), a request head within
//!   [`HEADER_TIMEOUT`] and [`MAX_HEAD_BYTES`].
//! - Draining, once begun, is for good: the process stops after `drain_time`.
//! - A replica that started (or restarted) behind its primary gets no visitor before it has
//!   caught up once: the load balancer never sends a visitor to a corte older than the one
//!   the other nodes serve, except within `health_max_lag` of a new corte.
//! - Only being behind the primary's word takes a replica out: one that started with a live
//!   corte of its own and whose primary gives no answer at all to its polls (a refused
//!   connection, a timeout, a TLS failure; an error page is an answer) serves that corte,
//!   healthy, once the primary has not answered for `health_max_lag` since its first
//!   unanswered poll and again at the end of that time. Without this, a primary down while
//!   its replicas restart would take every node out. Once the primary answers, the usual
//!   rules apply, the node counting as in step: `health_max_lag` to take a newer corte, then
//!   503 `behind its primary` until it does. A replica with no corte stays 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jiff::Timestamp;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::limits::Limits;
use super::{BoxedBody, ConnectionRules, json_response};
use crate::config::{Config, Invalid, duration, positive_duration, socket_addr};
use crate::site::Live;

/// Most open connections to the health listener (a few load balancers check it).
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Most open connections to the health listener from one address.
pub(crate) const MAX_PER_ADDRESS: usize = 16;
/// Longest wait for a health request's head, and for a client to take the answer.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest health request head.
pub(crate) const MAX_HEAD_BYTES: usize = 4096;

/// The health listener's settings.
#[derive(Debug, Clone)]
pub(crate) struct HealthSettings {
    /// Where it listens (`health_listen`).
    pub(crate) listen: Vec<SocketAddr>,
    /// How long the public listeners go on serving once draining began (`drain_time`).
    pub(crate) drain_time: Duration,
    /// How long a replica may serve another corte than its primary's (`health_max_lag`).
    pub(crate) max_lag: Duration,
}

impl HealthSettings {
    /// The health listener's settings, when `health_listen` is set. `drain_time` and
    /// `health_max_lag` are checked either way, so that a bad value stops any start.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, Invalid> {
        let s = &config.settings;
        let max_lag = positive_duration("health_max_lag", &s.health_max_lag, "5s")?;
        let drain_time = duration("drain_time", &s.drain_time)?.unsigned_abs();
        let listen = s
            .health_listen
            .iter()
            .map(|a| socket_addr("health_listen", a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((!listen.is_empty()).then_some(Self {
            listen,
            drain_time,
            max_lag,
        }))
    }
}

/// Whether this node should get visitors, from everything that bears on it.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// What stopped the publisher thread, once it stopped unexpectedly.
    publisher_stopped: OnceLock<String>,
    /// Whether the server was asked to stop and is letting the load balancer move visitors.
    draining: AtomicBool,
    /// Whether this node is a replica, whose primary's state it must have heard.
    replica: bool,
    /// Whether the primary's state has been heard since the start.
    heard: AtomicBool,
    /// How long a replica may serve another corte than its primary's.
    max_lag: Duration,
    /// The corte the primary serves, as its feed last said, and since when this node knows.
    announced: Mutex<Option<(String, Instant)>>,
    /// Whether this node has been in step since it started: it served its primary's corte,
    /// or its own while its primary could not be reached.
    caught_up: AtomicBool,
    /// Since when the primary's state has had no answer at all, while it has none.
    unreachable: Mutex<Option<Unreachable>>,
}

/// A primary whose state gets no answer at all: refused connections, timeouts, TLS failures.
/// A primary that answers, even with an error, is reachable.
#[derive(Debug, Clone, Copy)]
struct Unreachable {
    /// When the first poll without an answer ended, for operators.
    since: Timestamp,
    /// The same, to measure against `max_lag`.
    at: Instant,
    /// Whether this node serves its own corte meanwhile: it had not read its primary's state
    /// since it started, and the primary went on not answering for `max_lag`.
    on_its_own: bool,
}

/// What a poll of the primary's state that got no answer means for this node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// Nothing changes: this node is in step with the primary's last word, already serves
    /// its own corte, or has none to serve.
    Nothing,
    /// It may serve its own corte if the primary still does not answer after this long.
    AskAgainIn(Duration),
    /// It serves its own corte from now on: its primary has not answered since `since`.
    OnItsOwn {
        /// When the first poll without an answer ended.
        since: Timestamp,
    },
}

/// How the primary answers, for operators (`/status`, the health check's body).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PrimaryReach {
    /// Since when its state has had no answer at all, while it has none.
    pub(crate) unreachable_since: Option<String>,
    /// Whether this node serves its own corte without having read its primary's state since
    /// it started, the primary unreachable for `health_max_lag`.
    pub(crate) on_its_own: bool,
}

impl Health {
    /// A node's health; a `replica` gets no visitors before it has heard from its primary,
    /// and is allowed `max_lag` behind its primary's new cortes.
    pub(crate) fn new(replica: bool, max_lag: Duration) -> Self {
        Self {
            replica,
            max_lag,
            ..Self::default()
        }
    }

    /// Records the corte the primary serves (`None`: none yet), as its feed says now.
    pub(crate) fn announce(&self, corte: Option<&str>) {
        self.answered();
        self.heard.store(true, Ordering::Relaxed);
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if announced.as_ref().map(|(c, _)| c.as_str()) != corte {
            *announced = corte.map(|c| (c.to_owned(), Instant::now()));
        }
    }

    /// Why this node, serving `live`, is not in step with its primary, if it is not.
    fn behind(&self, live: &str) -> Option<String> {
        if self.replica && !self.heard.load(Ordering::Relaxed) {
            let unreachable = *self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
            return match unreachable {
                Some(u) if u.on_its_own => None,
                Some(u) => Some(format!(
                    "catching up: serving corte {live}, its primary's state not read yet (no \
                     answer since {})",
                    u.since
                )),
                None => Some(format!(
                    "catching up: serving corte {live}, its primary's state not read yet"
                )),
            };
        }
        let announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        let (wanted, since) = announced.as_ref()?;
        if wanted == live {
            self.caught_up.store(true, Ordering::Relaxed);
            return None;
        }
        let waited = since.elapsed();
        if !self.caught_up.load(Ordering::Relaxed) {
            Some(format!(
                "catching up: serving corte {live}, its primary serves {wanted}"
            ))
        } else if waited > self.max_lag {
            Some(format!(
                "behind its primary: serving corte {live}, the primary has served {wanted} for \
                 {} s",
                waited.as_secs()
            ))
        } else {
            None
        }
    }

    /// Records that the primary answered a poll of its state (with its state, or with an
    /// error): it is reachable, and the usual rules apply again. A node that served its own
    /// corte meanwhile counts as in step since, so that a newer corte of the primary's gets
    /// `max_lag` to go live here, as on any node in service.
    pub(crate) fn answered(&self) {
        if self
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some_and(|u| u.on_its_own)
        {
            self.caught_up.store(true, Ordering::Relaxed);
        }
    }

    /// Records that a poll of the primary's state got no answer at all (a refused
    /// connection, a timeout, a TLS failure), this node `serving` a corte of its own or not.
    /// A replica that has not read its primary's state since it started serves its own corte
    /// once its primary has not answered for `max_lag` since the first such poll, asked again
    /// at the end of that time: being behind the primary's word takes a node out, not a
    /// primary that says nothing.
    pub(crate) fn unanswered(&self, serving: bool) -> Unanswered {
        let mut unreachable = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        let u = unreachable.get_or_insert_with(|| Unreachable {
            since: Timestamp::now(),
            at: Instant::now(),
            on_its_own: false,
        });
        if !self.replica || self.heard.load(Ordering::Relaxed) || u.on_its_own || !serving {
            return Unanswered::Nothing;
        }
        match self.max_lag.checked_sub(u.at.elapsed()) {
            Some(left) if !left.is_zero() => Unanswered::AskAgainIn(left),
            _ => {
                u.on_its_own = true;
                Unanswered::OnItsOwn { since: u.since }
            }
        }
    }

    /// How the primary answers, on a replica.
    pub(crate) fn primary(&self) -> Option<PrimaryReach> {
        if !self.replica {
            return None;
        }
        let unreachable = *self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        Some(PrimaryReach {
            unreachable_since: unreachable.map(|u| u.since.to_string()),
            on_its_own: unreachable.is_some_and(|u| u.on_its_own),
        })
    }

    /// Records that the publisher thread ended unexpectedly, and why.
    pub(crate) fn publisher_died(&self, why: String) {
        let _ = self.publisher_stopped.set(why);
    }

    /// Why the publisher thread is not running, if it stopped unexpectedly.
    pub(crate) fn publisher_error(&self) -> Option<&str> {
        self.publisher_stopped.get().map(String::as_str)
    }

    /// Turns the load balancer's check to 503 `draining`, for good.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The live corte's id when this node should get visitors, or why it should not.
    pub(crate) fn verdict(&self, live: &Live) -> Result<String, String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("draining".to_owned());
        }
        if let Some(why) = self.publisher_error() {
            return Err(format!("the publisher stopped: {why}"));
        }
        let corte = live
            .load()
            .corte()
            .map(|c| c.id.clone())
            .ok_or_else(|| "no corte has been published yet".to_owned())?;
        match self.behind(&corte) {
            Some(why) => Err(why),
            None => Ok(corte),
        }
    }
}

/// The methods the health listener answers.
const ALLOWED: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// Answers health checks on `listener` from `health` and `live` until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    live: Live,
    shutdown: watch::Receiver<bool>,
) {
    let rules = ConnectionRules {
        limits: Some(Limits::private(MAX_CONNECTIONS, MAX_PER_ADDRESS)),
        tls: None,
        header_timeout: HEADER_TIMEOUT,
        send_timeout: HEADER_TIMEOUT,
        max_header_bytes: MAX_HEAD_BYTES,
        handshake_refusals: None,
        protocol_refusals: None,
    };
    let handler = move |_peer, req| std::future::ready(answer(&health, &live, &req));
    super::serve(listener, rules, handler, shutdown).await;
}

/// The answer to one request, without reading its body.
fn answer(health: &Health, live: &Live, req: &Request<Incoming>) -> Response<BoxedBody> {
    let mut res = if req.uri().path() != "/health" {
        json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "only /health is here"}),
        )
    } else if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut res = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "only GET and HEAD are answered"}),
        );
        res.headers_mut().insert(header::ALLOW, ALLOWED);
        res
    } else {
        match health.verdict(live) {
            Ok(corte) => {
                let mut body = json!({"serving": true, "corte": corte});
                if let Some(PrimaryReach {
                    unreachable_since: Some(since),
                    on_its_own,
                }) = health.primary()
                {
                    body["primary_unreachable_since"] = json!(since);
                    if on_its_own {
                        body["reason"] = json!(format!(
                            "its primary has not answered since {since}: serving its own \
                             corte {corte} until it does"
                        ));
                    }
                }
                json_response(StatusCode::OK, &body)
            }
            Err(reason) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"serving": false, "reason": reason}),
            ),
        }
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Site, live};

    #[test]
    fn draining_and_a_dead_publisher_say_why() {
        let (live, _swap) = live(Site::new(Arc::default()));
        let health = Health::default();
        assert_eq!(
            health.verdict(&live),
            Err("no corte has been published yet".to_owned())
        );
        health.publisher_died("a panic".to_owned());
        assert_eq!(
            health.verdict(&live),
            Err("the publisher stopped: a panic".to_owned())
        );
        health.drain();
        assert_eq!(health.verdict(&live), Err("draining".to_owned()));
    }

    #[test]
    fn a_replica_is_healthy_once_caught_up_and_then_within_its_lag() {
        assert_eq!(Health::default().behind("a"), None, "not a replica");
        let health = Health::new(true, Duration::from_millis(50));
        assert!(health.behind("a").unwrap().starts_with("catching up"));
        health.announce(None);
        assert_eq!(health.behind("a"), None, "its primary serves nothing yet");
        health.announce(Some("b"));
        assert!(health.behind("a").unwrap().starts_with("catching up"));
        assert_eq!(health.behind("b"), None);
        health.announce(Some("c"));
        assert_eq!(health.behind("b"), None, "within its lag of a new corte");
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            health
                .behind("b")
                .unwrap()
                .starts_with("behind its primary")
        );
        health.announce(Some("c"));
        assert!(
            health.behind("b").is_some(),
            "the same announcement keeps its time"
        );
        assert_eq!(health.behind("c"), None);
    }

    #[test]
    fn a_replica_whose_primary_never_answered_serves_its_own_corte_after_its_lag() {
        let lag = Duration::from_millis(50);
        let health = Health::new(true, lag);
        assert_eq!(
            health.unanswered(false),
            Unanswered::Nothing,
            "no corte here"
        );
        assert!(matches!(health.unanswered(true), Unanswered::AskAgainIn(d) if d <= lag));
        assert!(health.behind("a").unwrap().contains("no answer since"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(
            health.unanswered(true),
            Unanswered::OnItsOwn { .. }
        ));
        assert_eq!(health.unanswered(true), Unanswered::Nothing, "said once");
        assert_eq!(health.behind("a"), None);
        assert!(health.primary().is_some_and(|p| p.on_its_own));
        // Back with a newer corte: `lag` to take it, as any node in service.
        health.announce(Some("b"));
        assert_eq!(health.behind("a"), None);
        assert!(
            health
                .primary()
                .is_some_and(|p| p.unreachable_since.is_none())
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            health
                .behind("a")
                .unwrap()
                .starts_with("behind its primary")
        );
    }

    #[test]
    fn a_replica_that_read_its_primarys_state_is_never_on_its_own() {
        let health = Health::new(true, Duration::ZERO);
        health.announce(Some("b"));
        assert_eq!(health.unanswered(true), Unanswered::Nothing);
        assert!(health.behind("a").unwrap().starts_with("catching up"));
        // An answer that is an error page is an answer: still catching up.
        let health = Health::new(true, Duration::ZERO);
        health.answered();
        assert!(health.behind("a").unwrap().starts_with("catching up"));
    }
}
