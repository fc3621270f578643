//! The service manager's view of `difusor serve` (systemd's `Type=notify`, `sd_notify(3)`):
//! `READY=1` once the live corte is rebuilt and every listener serves, `RELOADING=1` and
//! `READY=1` around a reload, `STOPPING=1` when the stop begins, and `WATCHDOG=1` every half
//! `WatchdogSec` while the server is healthy.
//!
//! # Guarantees
//! - Without `NOTIFY_SOCKET` in the environment nothing is sent and nothing fails.
//! - The watchdog is fed only while the publisher is alive: a server whose publisher died
//!   stops feeding it, so that the service manager restarts it even if its own stop hangs.
//! - A notification that cannot be sent is logged, never an error of the server.
//! - No child process speaks for the server: the variables by which the service manager
//!   addresses it are never passed on to the one program it runs, the clock check's
//!   `timedatectl` ([`crate::clock`]; systemd's tools tell `NOTIFY_SOCKET` their `ERRNO=` and
//!   `EXIT_STATUS=` as they end).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

use crate::http::health::Health;

/// Whether a failed notification was already logged (logged once, not at every tick).
static FAILED: AtomicBool = AtomicBool::new(false);

/// Sends `states` to the service manager, if there is one listening.
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states)
        && !FAILED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Startup or a reload is over: the server serves; `status` says what, for `systemctl status`.
pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins (`systemctl reload`), with the monotonic time systemd 253 and later want.
pub(super) fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading certificates and configuration"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// The stop begins.
pub(super) fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: no new packages are taken"),
    ]);
}

/// When the service manager watches this process (`WatchdogSec=`, `WATCHDOG_USEC`), feeds
/// its watchdog every half period for as long as the runtime runs and `health` has no dead
/// publisher; otherwise does nothing.
pub(super) fn feed_watchdog(health: Arc<Health>) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(100));
    tracing::info!(
        ?period,
        "the service manager's watchdog is fed every half period"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Some(why) = health.publisher_error() {
                tracing::error!(error = %why, "the publisher is dead: the watchdog is no longer fed");
                return;
            }
            send(&[NotifyState::Watchdog]);
        }
    });
}
