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
//!   has since it started, and is not behind a newer one for more than `health_max_lag`);
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

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
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
    /// Whether this node has served its primary's corte since it started.
    caught_up: AtomicBool,
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
        self.heard.store(true, Ordering::Relaxed);
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if announced.as_ref().map(|(c, _)| c.as_str()) != corte {
            *announced = corte.map(|c| (c.to_owned(), Instant::now()));
        }
    }

    /// Why this node, serving `live`, is not in step with its primary, if it is not.
    fn behind(&self, live: &str) -> Option<String> {
        if self.replica && !self.heard.load(Ordering::Relaxed) {
            return Some(format!(
                "catching up: serving corte {live}, its primary's state not read yet"
            ));
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
            Ok(corte) => json_response(StatusCode::OK, &json!({"serving": true, "corte": corte})),
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
}
