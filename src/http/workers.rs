//! The threads that serve visitors: one per worker, each with a runtime of its own.
//!
//! Every public address is bound once per worker with `SO_REUSEPORT` ([`listen_per_worker`]),
//! so the kernel spreads new connections over the workers, and each worker thread accepts
//! and serves only its own connections on a single-threaded runtime ([`start`]): a request
//! is read, answered and written on one thread, with no task handed between threads, no
//! worker woken by another and no lock taken for scheduling (as nginx's workers do). What is
//! shared between workers (the live site, the gate, the limits, the metrics, the access
//! log's queue) is shared as it was with one runtime: through atomics and `Arc`s.
//!
//! # Guarantees
//! - A second server cannot silently share a public port with this one: before the
//!   `SO_REUSEPORT` sockets are bound, the address is bound once without it, which fails
//!   if any other socket holds it (and a later server's probe fails against these).
//! - With port 0 every worker listens on the one port the kernel picked for the first.
//! - Each worker thread ends when every listener it serves has stopped (after `shutdown`
//!   and its grace period); the receiver returned by [`start`] is answered then.

use std::future::Future;
use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::{BACKLOG, BoxedBody, ConnectionRules};

/// `workers` listeners on `addr`, sharing it with `SO_REUSEPORT`; fails as a single
/// listener would when another socket holds the address.
pub(crate) fn listen_per_worker(
    addr: SocketAddr,
    workers: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        // Bound alone (not listening, so no connection can land on it): fails with "address
        // in use" if any socket, sharing or not, holds the address.
        let probe = super::socket_for(addr)?;
        probe.bind(addr)?;
        drop(probe);
    }
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let at = match listeners.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        let socket = super::socket_for(at)?;
        socket.set_reuseport(true)?;
        socket.bind(at)?;
        listeners.push(socket.listen(BACKLOG)?.into_std()?);
    }
    Ok(listeners)
}

/// One address served by every worker: its listeners (one per worker, from
/// [`listen_per_worker`]), its rules and its handler.
pub(crate) struct Shared<H> {
    /// One listener per worker.
    pub(crate) listeners: Vec<std::net::TcpListener>,
    /// How its connections are held to account.
    pub(crate) rules: ConnectionRules,
    /// What answers its requests.
    pub(crate) handler: H,
}

/// Starts one thread per worker, each serving its listener of every address in `addresses`
/// until `shutdown` turns true; the receiver is answered once every worker has ended.
pub(crate) fn start<H, F>(
    addresses: Vec<Shared<H>>,
    shutdown: &watch::Receiver<bool>,
) -> std::io::Result<oneshot::Receiver<()>>
where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<BoxedBody>> + Send + 'static,
{
    let workers = addresses
        .iter()
        .map(|a| a.listeners.len())
        .max()
        .unwrap_or(0);
    let mut per_worker: Vec<Vec<(std::net::TcpListener, ConnectionRules, H)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for address in addresses {
        for (mine, listener) in per_worker.iter_mut().zip(address.listeners) {
            mine.push((listener, address.rules.clone(), address.handler.clone()));
        }
    }
    let mut ended = Vec::with_capacity(workers);
    for (i, mine) in per_worker.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shutdown = shutdown.clone();
        let (done, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("http-worker-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let mut served = tokio::task::JoinSet::new();
                    for (listener, rules, handler) in mine {
                        match TcpListener::from_std(listener) {
                            Ok(listener) => {
                                served.spawn(super::serve(
                                    listener,
                                    rules,
                                    handler,
                                    shutdown.clone(),
                                ));
                            }
                            Err(e) => {
                                tracing::error!(error = %e, worker = i, "a worker cannot serve a listener");
                            }
                        }
                    }
                    while served.join_next().await.is_some() {}
                });
                let _ = done.send(());
            })?;
        ended.push(done_rx);
    }
    let (all, all_rx) = oneshot::channel();
    tokio::spawn(async move {
        for worker in ended {
            let _ = worker.await;
        }
        let _ = all.send(());
    });
    Ok(all_rx)
}
