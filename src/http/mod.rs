//! The public HTTP listener: answers visitors from the live site in memory.
//!
//! Every response is built from one [`Site`], loaded once per request, so it is entirely
//! from one corte (invariant 1) and carries that corte's `X-PREP-Corte` and the
//! `X-PREP-Package` of the package that last wrote the file.
//!
//! # Guarantees
//! - The request path is percent-decoded and normalised before lookup; a path that is not
//!   UTF-8, holds a NUL or a backslash, or has a `..` segment is answered 400 and never
//!   looked up. A file's path followed by `/` or `/.` (`/index.html/.`, `/json/main.json/`)
//!   is 404, as nginx answers it: a page is served at its own address only, so its relative
//!   links resolve and a cache keeps one copy. A folder's (`/datos/.`) finds its index.
//! - Only GET and HEAD are served (and OPTIONS answered); every other method (CONNECT
//!   included) gets 405 with `Allow`, whatever the gate says, and a request that announces
//!   a body (`Transfer-Encoding`, or a `Content-Length` other than zero) gets 413. Neither
//!   answer carries results. Over HTTP/1, any answer to a request that announces a body
//!   closes the connection: no byte after the head is read as another request. Over HTTP/2
//!   a GET's DATA frames sent without announcing them (a client may close a stream with an
//!   empty one) are never read: framing leaves no doubt where they end, and the stream's
//!   flow-control window bounds what is held until the answer is sent.
//! - With ACME's HTTP-01 ([`challenge`]), `/.well-known/acme-challenge/<token>` on a plain
//!   listener is answered from the pending challenges alone, before the gate: it is never
//!   looked up in the site.
//! - The [`gate`] is asked on every GET and HEAD before the site is: before
//!   `publish_start`, or while the institute's notice is in force, no byte of results
//!   leaves (invariant 5).
//! - No HEAD response carries a body, on HTTP/1.1 or HTTP/2, and its `Content-Length` is
//!   what GET would send ([`conn::finish`]).
//! - Connections are held to `header_timeout` and `send_timeout` ([`conn`]) and, on the
//!   public listeners, to the caps of [`limits`]. A request head is held to
//!   `max_header_bytes`, which is at most 64 KiB ([`HttpSettings::from_config`]): every open
//!   connection may hold one that large, so the caps on connections bound that memory too.
//! - Conditional and range requests are decided by [`conditional`] from the entry's
//!   validators alone.
//! - At most [`limits::archive_files`] archived files (the `/datos/` downloads) are open at
//!   once to be sent; one more asked for meanwhile gets 503 with `Retry-After`, so HTTP/2
//!   clients asking for a hundred on each connection never take the descriptors the rest of
//!   the server needs; one address is sent at most its share of them
//!   ([`limits::ArchiveFiles`]), so one client never takes every visitor's downloads. One
//!   that its client stops taking holds at most 144 KiB of the file in memory until
//!   `send_timeout` ([`ARCHIVE_CHUNK`]): an HTTP/2 stream takes in one frame
//!   ([`SEND_BUFFER`]), not h2's default 400 KiB, and nothing stays with the file between
//!   two reads ([`next_chunk`]).
//! - On listeners with caps, a request in flight beside its connection's first (HTTP/2
//!   streams at once) past [`limits::Concurrency`] gets 503 with `Retry-After` and no body,
//!   journaled with the protocol refusals: a client that opens a hundred streams on each
//!   connection and takes none of the answers holds no more of them than one per HTTP/1.1
//!   connection would.
//!
//! # For caches in front (Varnish, a CDN)
//! - A file of the site carries its strong `ETag`, its rule's `Cache-Control` (`main.json`
//!   never stored, R4.7; `stale-if-error` where configured, never with `no-store`) and
//!   `Vary: Accept-Encoding`, also when it has no compressed variant (yet), so that a cache
//!   keys every file alike whatever the corte; `If-None-Match` gets a 304 with those headers
//!   and no body.
//! - Everything else (the gate's pages, errors, redirects, 416) carries `Cache-Control:
//!   no-store`: a cache never keeps it past the change that ends it. The one exception is
//!   what hyper answers by itself, before any handler, to an HTTP/1.1 request head it cannot
//!   read: a bare 400, 431 (a head past `max_header_bytes`) or 414 (a target past 64 KiB),
//!   with only `Date`, `Content-Length: 0` and `Connection: close`. hyper 1 builds that head
//!   with no fields and offers no hook to add any ([`broken`] journals these refusals);
//!   adding them here would take parsing every request head again before hyper, or
//!   rewriting its output, where that head can share a write with the end of the answer
//!   before it. 400 and 431 are not heuristically cacheable (RFC 9111 §4.2.2), and 414 needs
//!   a head of more than 64 KiB, the most `max_header_bytes` takes. Over HTTP/2, h2 answers
//!   a request whose header list is past `max_header_bytes` by itself, on its stream alone,
//!   with a 431 that carries no field at all.
//! - `Date` is on every other response (hyper adds it, on HTTP/1.1 and HTTP/2); `Age` never
//!   is.

pub(crate) mod accept;
pub(crate) mod access_log;
mod broken;
pub(crate) mod challenge;
mod coalesce;
pub(crate) mod conditional;
pub(crate) mod conn;
pub(crate) mod gate;
pub(crate) mod health;
pub(crate) mod limits;
mod negotiate;
pub(crate) mod refusals;
pub(crate) mod tls;
pub(crate) mod workers;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use jiff::Timestamp;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_util::io::ReaderStream;

use conditional::{Plan, Validators};

use crate::config::{Config, Invalid, duration_at_least, positive_count};
use crate::http::accept::AcceptFailures;
use crate::http::access_log::{AccessLog, Record};
use crate::http::conn::{Activity, Timeouts, Tracked};
use crate::http::gate::Gate;
use crate::http::limits::{LimitSettings, Limits, Permit};
use crate::http::refusals::Refusals;
use crate::http::tls::Tls;
use crate::metrics::{Coding, Metrics};
use crate::site::{ArchivedFile, Body, Entry, Live, Site};

/// The body type of every response (and of the requests `difusor` itself sends).
pub(crate) type BoxedBody = BoxBody<Bytes, std::io::Error>;

/// A complete in-memory body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> BoxedBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON answer (pretty, ending in a newline).
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<BoxedBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Most connections the kernel queues for a listener before they are accepted (it caps this
/// at `net.core.somaxconn`): a burst of new connections (a crowd arriving at 20:00, an
/// attack opening thousands) waits there instead of having its handshakes dropped and
/// retried a second later.
const BACKLOG: u32 = 65_535;

/// A listener on `addr` with a deep accept queue ([`BACKLOG`]).
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket_for(addr)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// An unbound socket for a listener on `addr`: `SO_REUSEADDR`, and IPv6 only for an IPv6
/// address.
fn socket_for(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        let socket = TcpSocket::new_v6()?;
        // `[::]:80` beside `0.0.0.0:80`: each listener takes its own family only.
        rustix::net::sockopt::set_ipv6_v6only(&socket, true)?;
        socket
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// The `Prefer` header (RFC 7240): a replica's `wait=<seconds>` to its primary's feed.
pub(crate) const PREFER: header::HeaderName = header::HeaderName::from_static("prefer");

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time so
/// that the time of a refusal tells nothing of the token. The scheme is matched whatever its
/// case (`bearer`, `BEARER`: RFC 9110 §11.1), followed by one or more spaces.
pub(crate) fn bearer_is(headers: &http::HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| {
            bool::from(
                given
                    .trim_start_matches(' ')
                    .as_bytes()
                    .ct_eq(token.as_bytes()),
            )
        })
}

/// Set on every request of a TLS connection whose client presented a certificate the
/// listener's authority accepted ([`tls::Tls::with_client_ca`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertifiedClient;

/// How connections are held to account.
#[derive(Clone)]
pub(crate) struct ConnectionRules {
    /// Connection caps, for the public listeners (none for the admin listener).
    pub(crate) limits: Option<Arc<Limits>>,
    /// TLS, for HTTPS listeners.
    pub(crate) tls: Option<Arc<Tls>>,
    /// Longest wait for a request's headers, counted from when the connection opened or
    /// fell quiet (silent clients, slowloris, idle kept-alive connections), and for a TLS
    /// handshake.
    pub(crate) header_timeout: Duration,
    /// Longest time a write may stay blocked on a client that does not read.
    pub(crate) send_timeout: Duration,
    /// Largest request head, in bytes.
    pub(crate) max_header_bytes: usize,
    /// Where TLS handshakes this listener refuses are journaled (a client speaking no TLS,
    /// or none this server accepts, or a certificate it does not trust); connections closed
    /// before or during a handshake are no refusal.
    pub(crate) handshake_refusals: Option<Arc<Refusals>>,
    /// Where connections closed because their client broke HTTP are journaled (a malformed
    /// or oversized request head, an HTTP/2 flood answered with a GOAWAY: [`broken`]).
    pub(crate) protocol_refusals: Option<Arc<Refusals>>,
}

/// The TLS error a failed handshake ended with, if it was one: a refusal, not a connection
/// closed or reset by its client.
fn refusal(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Accepts connections on `listener` until `shutdown` turns true, serving each with
/// `handler` over HTTP/1.1 or HTTP/2 (by ALPN on TLS) under `rules`; then waits up to ten
/// seconds for open requests.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    rules: ConnectionRules,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<BoxedBody>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(rules.header_timeout)
        .max_buf_size(rules.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_send_buf_size(SEND_BUFFER)
        .max_header_list_size(u32::try_from(rules.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(rules.header_timeout);
    let watch = Arc::new(conn::Watch::new(Timeouts {
        header: rules.header_timeout,
        send: rules.send_timeout,
    }));
    // Stopped when `serve` returns or is dropped.
    let _sweeper = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
        let watch = watch.clone();
        async move { watch.run().await }
    }));
    let mut refusing = AcceptFailures::new("visitors' connections");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => {
                        refusing.recovered();
                        a
                    }
                    Err(e) => {
                        refusing.failed(&e).await;
                        continue;
                    }
                };
                if let (Some(limits), Some(_)) = (&rules.limits, &rules.tls)
                    && !limits.handshake_allowed(peer.ip())
                {
                    // Before `admit`, so that no idle connection gives way to it.
                    if let Some(refusals) = &rules.handshake_refusals {
                        let per_second = limits.handshakes_per_second();
                        refusals.refused(
                            peer.ip(),
                            format!("TLS connections from {} closed before their handshake: more than {per_second} a second", peer.ip()),
                            json!({"error": "tls_handshakes_per_address", "per_second": per_second}),
                        );
                    }
                    continue;
                }
                let (permit, activity) = match &rules.limits {
                    Some(limits) => match limits.admit(peer.ip()) {
                        Some(p) => {
                            let activity = p.activity();
                            (Some(p), activity)
                        }
                        None => continue, // over a cap: closed before any byte is read
                    },
                    None => (None, Arc::new(Activity::new())),
                };
                watch.add(&activity);
                let _ = stream.set_nodelay(true);
                // Made once the connection is known: requests of a client that presented an
                // accepted certificate say so.
                let service = {
                    let (handler, activity) = (handler.clone(), activity.clone());
                    let concurrency = permit.as_ref().map(Permit::concurrency);
                    let refusals = rules.protocol_refusals.clone();
                    move |certified: bool| hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        if certified {
                            req.extensions_mut().insert(CertifiedClient);
                        }
                        let busy = activity.begin();
                        let head = req.method() == Method::HEAD;
                        let alongside = match &concurrency {
                            Some(c) if busy.alongside() => match c.admit() {
                                Some(a) => Some(a),
                                None => {
                                    crowded_refused(refusals.as_deref(), peer, c.per_address());
                                    let res = conn::finish(crowded(), head, busy, None);
                                    return Either::Left(std::future::ready(Ok(res)));
                                }
                            },
                            _ => None,
                        };
                        let fut = handler(peer, req);
                        Either::Right(async move {
                            Ok::<_, Infallible>(conn::finish(fut.await, head, busy, alongside))
                        })
                    })
                };
                let stream = Tracked::new(stream, activity.clone());
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                let tls = rules.tls.as_ref().map(|t| t.acceptor());
                let handshake_timeout = rules.header_timeout;
                let handshake_refusals = rules.handshake_refusals.clone();
                let protocol_refusals = rules.protocol_refusals.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let served = async {
                        match tls {
                            None => {
                                let conn = builder.serve_connection(TokioIo::new(stream), service(false));
                                watcher.watch(conn.into_owned()).await
                            }
                            Some(acceptor) => {
                                let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                                    Ok(Ok(s)) => {
                                        activity.handshake_done();
                                        s
                                    }
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                        if let (Some(refusals), Some(why)) = (&handshake_refusals, refusal(&e)) {
                                            refusals.refused(
                                                peer.ip(),
                                                format!("TLS handshake from {} refused: {why}", peer.ip()),
                                                json!({"error": why.to_string()}),
                                            );
                                        }
                                        return Ok(());
                                    }
                                    Err(_) => return Ok(()), // too slow a handshake
                                };
                                if stream.get_ref().1.alpn_protocol() == Some(challenge::ACME_TLS_ALPN) {
                                    // A TLS-ALPN-01 validation: the handshake was the answer.
                                    return Ok(());
                                }
                                let certified = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                                let (stream, flush) = coalesce::coalesced(stream, h2);
                                let conn = builder.serve_connection(TokioIo::new(stream), service(certified));
                                flush.around(watcher.watch(conn.into_owned())).await
                            }
                        }
                    };
                    tokio::select! {
                        result = served => if let Err(e) = result {
                            match broken::broken(&*e) {
                                Some(b) => {
                                    tracing::debug!(%peer, protocol = b.protocol, why = %b.why, "closed a connection that broke the protocol");
                                    if let Some(refusals) = &protocol_refusals {
                                        refusals.refused(
                                            peer.ip(),
                                            format!("{} connection from {} closed for breaking the protocol: {}", b.protocol, peer.ip(), b.why),
                                            json!({"protocol": b.protocol, "error": b.why}),
                                        );
                                    }
                                }
                                None => tracing::debug!(error = %e, "connection ended with an error"),
                            }
                        },
                        ended = conn::supervise(&activity) => {
                            tracing::debug!(%peer, ?ended, "connection closed");
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after 10 s and were closed");
    }
}

/// How the listeners treat connections and what every public response carries, from the
/// settings.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    /// `Content-Security-Policy: frame-ancestors …`, if framing is narrowed.
    pub(crate) frame_ancestors: Option<HeaderValue>,
    /// `Strict-Transport-Security` value, if sent.
    pub(crate) hsts: Option<HeaderValue>,
    /// Connection and rate limits of the public listeners.
    pub(crate) limits: LimitSettings,
    /// Wait for a request's headers from when the connection opened or fell quiet.
    pub(crate) header_timeout: Duration,
    /// Longest a write may stay blocked on a client that does not read.
    pub(crate) send_timeout: Duration,
    /// Longest request target (path and query), in bytes.
    pub(crate) max_uri_bytes: usize,
    /// Largest request head, in bytes.
    pub(crate) max_header_bytes: usize,
    /// Threads serving visitors ([`workers`]): `workers`, or one per CPU core for 0.
    pub(crate) workers: usize,
}

/// Most threads `workers` may ask for: a typo (10000 for 10) would otherwise start that
/// many threads and sockets.
const MAX_WORKERS: u64 = 1024;

/// The least `max_header_bytes` taken: HTTP/1 reads request heads into a buffer of at least
/// this size whatever the setting, and a browser's head with its cookies can come near it.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// The most `max_header_bytes` taken: every open connection may hold a request head this
/// large until it ends (HTTP/2, one on each of its streams), so a typo (16 MiB for 16 KiB)
/// would let one address's connections take gigabytes. Four times the default is far more
/// than a browser's head with its cookies, and a CDN's fields added to it.
const MAX_HEADER_BYTES: usize = 64 * 1024;

impl HttpSettings {
    /// Every HTTP setting, validated; the first invalid one is the error.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let frame_ancestors = if s.frame_ancestors.is_empty() {
            None
        } else {
            Some(header_value(
                "frame_ancestors",
                &s.frame_ancestors,
                format!("frame-ancestors {}", s.frame_ancestors),
            )?)
        };
        let hsts = if s.hsts.is_empty() {
            None
        } else {
            Some(header_value("hsts", &s.hsts, s.hsts.clone())?)
        };
        let limits = LimitSettings::from_config(config)?;
        let second = Duration::from_secs(1);
        let header_timeout = duration_at_least("header_timeout", &s.header_timeout, second, "10s")?;
        let send_timeout = duration_at_least("send_timeout", &s.send_timeout, second, "60s")?;
        let max_uri_bytes = positive_count("max_uri_bytes", s.max_uri_bytes)?;
        let max_header_bytes = positive_count("max_header_bytes", s.max_header_bytes.as_u64())?;
        if max_header_bytes < MIN_HEADER_BYTES {
            // HTTP/1 cannot be held to less, and HTTP/2 would refuse every browser's request.
            return Err(Invalid::new(
                "max_header_bytes",
                format!(
                    "{} is less than 8 KiB, the least taken (a browser's request head with its \
                     cookies); 16 KiB is a good value",
                    s.max_header_bytes
                ),
            ));
        }
        if max_header_bytes > MAX_HEADER_BYTES {
            // Held by every connection that sends one: the caps count connections, not bytes.
            return Err(Invalid::new(
                "max_header_bytes",
                format!(
                    "{} is more than 64 KiB, the most taken: every open connection may hold a \
                     request head this large in memory; 16 KiB is a good value",
                    s.max_header_bytes
                ),
            ));
        }
        let workers = match s.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n if n > MAX_WORKERS => {
                return Err(Invalid::new(
                    "workers",
                    format!("{n} threads is more than {MAX_WORKERS}; 0 means one per CPU core"),
                ));
            }
            n => usize::try_from(n).unwrap_or(1),
        };
        Ok(Self {
            frame_ancestors,
            hsts,
            limits,
            header_timeout,
            send_timeout,
            max_uri_bytes,
            max_header_bytes,
            workers,
        })
    }
}

/// The header `value` that setting `setting` (set to `text`) asks for.
fn header_value(setting: &'static str, text: &str, value: String) -> Result<HeaderValue, Invalid> {
    HeaderValue::try_from(value)
        .map_err(|_| Invalid::new(setting, format!("{text:?} is not a valid header value")))
}

/// What the public handler needs.
pub(crate) struct Public {
    /// The live site.
    pub(crate) live: Live,
    /// Embargo and notice.
    pub(crate) gate: Arc<Gate>,
    /// Connection and request-rate limits.
    pub(crate) limits: Arc<Limits>,
    /// Longest request target (path and query), in bytes.
    pub(crate) max_uri_bytes: usize,
    /// `Strict-Transport-Security` for HTTPS responses, if sent.
    pub(crate) hsts: Option<HeaderValue>,
    /// Request counters.
    pub(crate) metrics: Arc<Metrics>,
    /// `Content-Security-Policy` narrowing who may frame the site, if set.
    pub(crate) frame_ancestors: Option<HeaderValue>,
    /// Where each request is logged.
    pub(crate) access_log: AccessLog,
    /// ACME's HTTP-01 answers, when `acme_domains` is set.
    pub(crate) acme: Option<Arc<challenge::AcmeAnswers>>,
}

/// Headers of every public response, named once (a name given as text is parsed again on
/// every insert).
const X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");
/// The corte a response is from.
const X_PREP_CORTE: HeaderName = HeaderName::from_static("x-prep-corte");
/// The package that last wrote the file served.
const X_PREP_PACKAGE: HeaderName = HeaderName::from_static("x-prep-package");

/// The methods the public site answers.
const ALLOWED: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");

/// Answers one public request, with the headers every public response carries, and logs it.
pub(crate) async fn handle(
    public: Arc<Public>,
    peer: SocketAddr,
    https: bool,
    req: Request<Incoming>,
) -> Response<BoxedBody> {
    let (at, started) = (Timestamp::now(), std::time::Instant::now());
    let client = public.limits.client(peer.ip(), req.headers());
    let mut logged = true;
    let mut res = match public.limits.check_rate(client) {
        Err(wait) => {
            logged = public.limits.log_refusal(client);
            too_many(wait)
        }
        Ok(())
            if req.uri().path_and_query().map_or(0, |p| p.as_str().len())
                > public.max_uri_bytes =>
        {
            page(
                StatusCode::URI_TOO_LONG,
                "Dirección demasiado larga",
                "La dirección solicitada excede el tamaño permitido.",
            )
        }
        Ok(()) => route(&public, https, &req, client).await,
    };
    let h = res.headers_mut();
    if req.version() < Version::HTTP_2 && has_body(&req) {
        // Nothing after a body this site never reads is taken as a request: where the body
        // ends is the client's framing (`Transfer-Encoding`, `Content-Length`), which a
        // cache or balancer in front may read otherwise, and a request smuggled in the body
        // must never be answered on a connection the front shares with others.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if https && let Some(hsts) = &public.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    if let Some(policy) = &public.frame_ancestors {
        h.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    let bytes = if req.method() == Method::HEAD {
        0
    } else {
        body_bytes(&res)
    };
    let coding = match res
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(HeaderValue::as_bytes)
    {
        Some(b"br") => Coding::Br,
        Some(b"gzip") => Coding::Gzip,
        _ => Coding::Identity,
    };
    let elapsed = started.elapsed();
    public
        .metrics
        .observe(res.status().as_u16(), coding, bytes, elapsed);
    if !logged {
        return res;
    }
    // The target as an origin-form request names it (`/path?query`), whatever form it came
    // in: HTTP/2 and an absolute-form HTTP/1.1 request carry a scheme and a host of the
    // client's choosing, which must not reach the log's statistics as a page.
    let target = match req.uri().path_and_query() {
        Some(target) => std::borrow::Cow::Borrowed(target.as_str()),
        None => std::borrow::Cow::Owned(req.uri().to_string()),
    };
    let request = access_log::request_field(req.method().as_str(), &target, req.version());
    let clipped = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .map(|v| access_log::clipped(v.as_bytes()))
    };
    public.access_log.log(Record {
        client,
        at,
        request,
        status: res.status().as_u16(),
        bytes,
        referer: clipped(header::REFERER),
        user_agent: clipped(header::USER_AGENT),
        elapsed,
        corte: res.headers().get(&X_PREP_CORTE).cloned(),
        encoding: coding,
    });
    res
}

/// The body bytes `res` sends: its `Content-Length`, or the exact size of a body this server
/// made (a page, a notice), which carries no `Content-Length` until hyper writes it.
fn body_bytes(res: &Response<BoxedBody>) -> u64 {
    res.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| hyper::body::Body::size_hint(res.body()).exact())
        .unwrap_or(0)
}

async fn route(
    public: &Public,
    https: bool,
    req: &Request<Incoming>,
    client: IpAddr,
) -> Response<BoxedBody> {
    if !host_is_valid(req) {
        return page(
            StatusCode::BAD_REQUEST,
            "Solicitud inválida",
            "La solicitud debe nombrar un solo sitio (encabezado Host).",
        );
    }
    // Then the method: what is not a read gets no gate page either (a 2xx to CONNECT
    // would open a tunnel), and no results.
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        Method::OPTIONS => {
            let mut res = Response::new(full(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            res.headers_mut().insert(header::ALLOW, ALLOWED);
            return res;
        }
        _ => {
            let mut res = page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Método no permitido",
                "Este sitio solo admite consultas (GET y HEAD).",
            );
            res.headers_mut().insert(header::ALLOW, ALLOWED);
            return res;
        }
    };
    // ACME's HTTP-01 validation is not the site: it passes before the gate opens.
    if !https
        && let Some(answer) = public
            .acme
            .as_ref()
            .and_then(|a| a.http01(req.uri().path()))
    {
        return answer;
    }
    if let Some(closed) = public.gate.closed() {
        return closed;
    }
    if has_body(req) {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Solicitud no admitida",
            "Las consultas a este sitio no llevan contenido.",
        );
    }
    from_site(&public.live, req.uri().path(), "", req, head, client).await
}

/// Answers a GET (or HEAD) for `raw_path` from the live site, without asking the gate: the
/// public route once the gate has let the request through, and the operators' preview on the
/// admin listener (whose paths carry `prefix`). An archived file is sent within `client`'s
/// share ([`limits::ArchiveFiles`]).
pub(crate) async fn from_site(
    live: &Live,
    raw_path: &str,
    prefix: &str,
    req: &Request<Incoming>,
    head: bool,
    client: IpAddr,
) -> Response<BoxedBody> {
    let Some(path) = normalise(raw_path) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Solicitud inválida",
            "La dirección solicitada no es válida.",
        );
    };
    let site = live.load();
    if site.corte().is_none() {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Aún no hay resultados",
            "Todavía no se ha recibido ningún corte de resultados preliminares. Vuelva a intentarlo en unos minutos.",
        );
    }
    let Some(entry) = site.get(&path) else {
        if site.is_dir(&path) {
            let mut res = page(StatusCode::MOVED_PERMANENTLY, "Movido", "");
            // Percent-encoded, so that a folder named `a?b`, `a#b` or `a%41` is the folder the
            // client asks for next, not a query, a fragment or another name.
            let encoded = percent_encoding::utf8_percent_encode(&path, LOCATION_PATH);
            if let Ok(loc) = HeaderValue::from_str(&format!("{prefix}{encoded}/")) {
                res.headers_mut().insert(header::LOCATION, loc);
            }
            return res;
        }
        return page(
            StatusCode::NOT_FOUND,
            "No encontrado",
            "La página solicitada no existe en este sitio.",
        );
    };
    respond(&site, entry, req, head, client).await
}

/// The bytes a `Location` path percent-encodes: all but letters, digits, `/` and RFC 3986's
/// other unreserved characters (non-ASCII always is).
const LOCATION_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Whether an HTTP/1.1 request names its host as RFC 9112 (§3.2) requires: exactly one `Host`
/// field, empty or a host with an optional port. The site does not depend on the host, but a
/// cache or balancer in front may key on it, and one that reads the first of two `Host`
/// fields and a server that reads the last must not disagree about what was asked. HTTP/1.0
/// may name none, but not two. HTTP/2 names the host in `:authority`, which hyper has parsed; it must
/// not carry the user information RFC 9113 (§8.3.1) forbids, as a `Host` must not; a `Host`
/// field sent beside it (an intermediary may keep one) is held to HTTP/1.1's rules and must
/// name the same host, or a front reading one and a back reading the other would disagree.
/// The admin listener holds its requests to the same rule.
pub(crate) fn host_is_valid<B>(req: &Request<B>) -> bool {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (host, None) => host.map(HeaderValue::as_bytes),
        _ => return false,
    };
    let one_host = |host: &[u8]| {
        host.is_empty() || (!host.contains(&b'@') && http::uri::Authority::try_from(host).is_ok())
    };
    match req.version() {
        Version::HTTP_2 => {
            let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
            authority.is_none_or(|a| !a.contains(&b'@'))
                && host.is_none_or(|h| {
                    one_host(h) && authority.is_none_or(|a| a.eq_ignore_ascii_case(h))
                })
        }
        Version::HTTP_11 => host.is_some_and(one_host),
        _ => true,
    }
}

/// Whether the request carries a body (the public site takes none). A `Content-Length` of
/// zero written with more digits (`00`) announces none: hyper has read it as 0.
fn has_body(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes().iter().any(|b| *b != b'0'))
}

/// The response for one entry after its conditional and range headers.
async fn respond(
    site: &Site,
    entry: &Arc<Entry>,
    req: &Request<Incoming>,
    head: bool,
    client: IpAddr,
) -> Response<BoxedBody> {
    // Ranges are served from the file as it is; otherwise the client may get a variant.
    let chosen = match &entry.variants {
        Some(v) if !req.headers().contains_key(header::RANGE) => {
            negotiate::choose(req.headers(), v)
        }
        _ => None,
    };
    let (etag, len) = match chosen {
        Some((variant, _)) => (&variant.etag, variant.bytes.len() as u64),
        None => (&entry.etag, entry.len),
    };
    let validators = Validators {
        etag,
        modified: entry.modified,
        date_shared: entry.date_shared,
        len,
    };
    let (status, range) = match conditional::plan(req.headers(), &validators, !head) {
        Plan::NotModified => (StatusCode::NOT_MODIFIED, None),
        Plan::Full => (StatusCode::OK, Some(0..=len.saturating_sub(1))),
        Plan::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        Plan::Unsatisfiable => {
            let mut res = Response::new(full(Bytes::new()));
            *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            res.headers_mut().insert(header::CACHE_CONTROL, NO_STORE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", entry.len)) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return res;
        }
        Plan::PreconditionFailed => {
            return page(
                StatusCode::PRECONDITION_FAILED,
                "El archivo cambió",
                "El archivo ya no es la versión que indica la solicitud. Vuelva a descargarlo \
                 completo.",
            );
        }
    };
    let body = match (&range, chosen) {
        (Some(_), Some((variant, _))) if !head => memory_body(variant.bytes.clone()),
        (Some(r), None) if !head && entry.len > 0 => {
            match body_of(entry, r.clone(), client).await {
                Ok(body) => body,
                Err(Unreadable::Busy) => {
                    let mut res = page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Descargas ocupadas",
                        "Se están enviando demasiadas descargas en este momento. Intente de nuevo en unos segundos.",
                    );
                    res.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(ARCHIVE_BUSY_RETRY));
                    return res;
                }
                Err(Unreadable::Io(e)) => {
                    unreadable(entry, &e);
                    return page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Error interno",
                        "El archivo no está disponible en este momento.",
                    );
                }
            }
        }
        _ => full(Bytes::new()),
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    // Room for all of a file's headers and those `handle` adds, made once.
    h.reserve(16);
    h.insert(header::ETAG, etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some((_, coding)) = chosen {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    h.insert(header::LAST_MODIFIED, entry.last_modified.clone());
    h.insert(header::CACHE_CONTROL, entry.cache_control.clone());
    if let Some(corte) = site.corte_header() {
        h.insert(X_PREP_CORTE, corte.clone());
    }
    h.insert(X_PREP_PACKAGE, entry.package.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(r) = range {
        let sent = if len == 0 { 0 } else { r.end() - r.start() + 1 };
        h.insert(header::CONTENT_TYPE, entry.content_type.clone());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
        if status == StatusCode::PARTIAL_CONTENT
            && let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start(), r.end(), entry.len))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    res
}

/// `Retry-After` (seconds) of the 503 for an archived file asked for while every
/// [`limits::archive_files`] permit is held.
const ARCHIVE_BUSY_RETRY: u64 = 5;

/// Why an entry's body cannot be sent.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    /// As many archived files as may be open are being sent.
    #[error("as many archived files as may be open are being sent")]
    Busy,
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The bytes `range` (inclusive, within the entry) of an entry's body. An archived file is
/// opened only with a permit of [`limits::archive_files`] within `client`'s share, kept by
/// the body.
async fn body_of(
    entry: &Entry,
    range: RangeInclusive<u64>,
    client: IpAddr,
) -> Result<BoxedBody, Unreadable> {
    let (start, len) = (*range.start(), range.end() - range.start() + 1);
    match &entry.body {
        Body::Memory(bytes) => match (usize::try_from(start), usize::try_from(start + len)) {
            (Ok(a), Ok(b)) if b <= bytes.len() => Ok(memory_body(bytes.slice(a..b))),
            _ => Err(std::io::Error::other("range outside the file").into()),
        },
        Body::Archived { file, failing } => {
            use futures_util::StreamExt as _;
            use std::io::Seek as _;
            let permit = limits::archive_files()
                .try_acquire(client)
                .ok_or(Unreadable::Busy)?;
            let (archived, whole) = (file.clone(), entry.len);
            let opened = tokio::task::spawn_blocking(move || {
                let mut opened = unchanged(&archived, whole)?;
                opened.seek(std::io::SeekFrom::Start(start))?;
                Ok::<_, std::io::Error>(opened)
            })
            .await
            .map_err(std::io::Error::other)??;
            if failing.load(Ordering::Relaxed) && failing.swap(false, Ordering::Relaxed) {
                tracing::warn!(path = %file.path.display(), "the archived package that could not be sent is the verified file again, and sent");
            }
            let frames = futures_util::stream::try_unfold((opened, len), |(file, left)| {
                next_chunk(file, left)
            })
            .map(move |frame| {
                let _held = &permit;
                frame
            });
            Ok(BodyExt::boxed(StreamBody::new(frames)))
        }
    }
}

/// The next frame of an archived file being sent: at most [`ARCHIVE_CHUNK`] of the `left`
/// bytes still to send, read on a blocking thread straight into the frame, so that nothing
/// stays with the file between two reads (tokio's `File` keeps a buffer of a read's size for
/// as long as it is open, a chunk more for every download a client stops taking). `None`
/// once `left` is sent; an error if the file ends before.
async fn next_chunk(
    file: std::fs::File,
    left: u64,
) -> std::io::Result<Option<(Frame<Bytes>, (std::fs::File, u64))>> {
    use std::io::Read as _;
    if left == 0 {
        return Ok(None);
    }
    let want = usize::try_from(left).map_or(ARCHIVE_CHUNK, |left| left.min(ARCHIVE_CHUNK));
    let (file, mut chunk) = tokio::task::spawn_blocking(move || {
        let mut chunk = vec![0; want];
        let n = (&file).read(&mut chunk)?;
        chunk.truncate(n);
        Ok::<_, std::io::Error>((file, chunk))
    })
    .await
    .map_err(std::io::Error::other)??;
    if chunk.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the archived package ended before the length that was verified",
        ));
    }
    chunk.shrink_to_fit();
    let left = left - u64::try_from(chunk.len()).unwrap_or(left);
    Ok(Some((Frame::data(Bytes::from(chunk)), (file, left))))
}

/// Logs why `entry`'s body could not be sent: an archived file changed or gone is said at
/// `error` once per run of failures (until it is sent again), then at `debug`, so that a
/// visitor repeating the request cannot flood the log with it.
fn unreadable(entry: &Entry, e: &std::io::Error) {
    let first = match &entry.body {
        Body::Archived { failing, .. } => !failing.swap(true, Ordering::Relaxed),
        Body::Memory(_) => true,
    };
    if first {
        tracing::error!(error = %e, "a file of the live site could not be read; said again only once it has been sent");
    } else {
        tracing::debug!(error = %e, "a file of the live site could not be read");
    }
}

/// Opens an archived file to send it only if it is still the file whose hash was checked
/// when its corte was built: a regular file (never a link, FIFO or device put in its place),
/// of `len` bytes, not modified since. Anything else is an error naming what changed, so
/// that the public never gets other bytes under the package's ETag.
fn unchanged(archived: &ArchivedFile, len: u64) -> std::io::Result<std::fs::File> {
    let path = archived.path.display();
    let file = crate::intake::open_regular(&archived.path).map_err(|e| {
        std::io::Error::other(format!(
            "the archived package {path} cannot be opened as the file that was verified: \
             {e}; it is not served until the archive is repaired (its hash is checked again \
             at the next start)"
        ))
    })?;
    let meta = file.metadata()?;
    if meta.len() != len || meta.modified()? != archived.modified {
        return Err(std::io::Error::other(format!(
            "the archived package {path} changed on disk since its hash was checked ({} bytes \
             where {len} were verified, or written since); it is not served until the \
             archive is repaired (its hash is checked again at the next start)",
            meta.len()
        )));
    }
    Ok(file)
}

/// Most bytes of response body an HTTP/2 stream takes in to send while its client takes
/// none (h2's send buffer, 400 KiB a stream by hyper's default): one frame at the most
/// common frame size. A body's next frame is taken only once less than this is left to
/// send.
const SEND_BUFFER: usize = 16 * 1024;

/// Largest chunk of an archived file read at once to be sent. A download its client stops
/// taking holds at most the rest of the chunk being sent (under [`SEND_BUFFER`] over HTTP/2,
/// hyper's write buffer over HTTP/1.1), the next, and one more read ahead (hyper reads a
/// body's next frame before it waits for room for it): 144 KiB, 576 MiB in all with
/// [`limits::archive_files`] at its most.
const ARCHIVE_CHUNK: usize = 64 * 1024;

/// Largest frame of a body served from memory. A larger file goes out in frames of this
/// size, each handed over when the connection asks for it, so that the request stays in
/// flight until the client has taken (nearly) all of it and a client that takes nothing
/// is seen stalling ([`conn`]).
const MEMORY_FRAME: usize = 64 * 1024;

/// A body of `bytes` from memory, in frames of at most [`MEMORY_FRAME`] (without copying).
fn memory_body(bytes: Bytes) -> BoxedBody {
    if bytes.len() <= MEMORY_FRAME {
        return full(bytes);
    }
    let frames = (0..bytes.len()).step_by(MEMORY_FRAME).map(move |at| {
        let end = (at + MEMORY_FRAME).min(bytes.len());
        Ok(Frame::data(bytes.slice(at..end)))
    });
    BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

/// A body that streams `file` from disk in 256 KiB chunks.
pub(crate) fn file_body(file: tokio::fs::File) -> BoxedBody {
    reader_body(file)
}

fn reader_body(reader: impl tokio::io::AsyncRead + Send + Sync + 'static) -> BoxedBody {
    use futures_util::StreamExt as _;
    let frames =
        ReaderStream::with_capacity(reader, 256 * 1024).map(|chunk| chunk.map(Frame::data));
    BodyExt::boxed(StreamBody::new(frames))
}

/// 429: this address asked too often; `wait` until the next request is allowed.
fn too_many(wait: Duration) -> Response<BoxedBody> {
    let mut res = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Demasiadas solicitudes",
        "Se recibieron demasiadas solicitudes desde su dirección. Intente de nuevo en unos segundos.",
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}

/// 503 with no body for a request past the requests in flight an address, or everyone, may
/// have beside their connections' first ([`limits::Concurrency`]). Without a body it needs
/// no flow-control window: it leaves at once even to a client that takes no answer.
fn crowded() -> Response<BoxedBody> {
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = res.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    h.insert(header::CACHE_CONTROL, NO_STORE);
    res
}

/// Journals (under `refusals`' bounds) that a request of `peer` was answered [`crowded`]:
/// its address had `per_address` requests in flight beside their connections' first, or
/// everyone together `max_connections`.
fn crowded_refused(refusals: Option<&Refusals>, peer: SocketAddr, per_address: usize) {
    tracing::debug!(%peer, "request past the requests in flight allowed: 503");
    if let Some(refusals) = refusals {
        refusals.refused(
            peer.ip(),
            format!(
                "requests from {} answered 503: too many in flight at once beside their \
                 connections' first (at most {per_address} from one address), HTTP/2 streams \
                 whose answers were not taken",
                peer.ip()
            ),
            json!({"error": "requests_in_flight", "per_address": per_address}),
        );
    }
}

/// `Cache-Control` of every response that is not a file of the site.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// A small Spanish HTML page, never stored by caches.
pub(crate) fn page(status: StatusCode, title: &str, text: &str) -> Response<BoxedBody> {
    let html = maud::html! {
        (maud::DOCTYPE)
        html lang="es" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
            }
            body { h1 { (title) } p { (text) } }
        }
    }
    .into_string();
    let mut res = Response::new(full(html));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, NO_STORE);
    res
}

/// Percent-decodes and normalises a request path: `//` and `.` segments collapse; `..`,
/// backslashes, NUL and invalid UTF-8 make it unusable (`None`). A trailing `/` is kept, and
/// a trailing `.` segment is one (`/index.html/.` is `/index.html/`, as nginx reads it): a
/// file followed by either names no file, so it is never served at an address whose relative
/// links would resolve against the wrong folder, nor cached under a second one.
pub(crate) fn normalise(raw: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    if !decoded.starts_with('/') || decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in decoded.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." {
            return None;
        }
        out.push('/');
        out.push_str(segment);
    }
    if decoded.ends_with('/') || decoded.ends_with("/.") || out.is_empty() {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(normalise("/").as_deref(), Some("/"));
        assert_eq!(normalise("/a//b/./c").as_deref(), Some("/a/b/c"));
        assert_eq!(normalise("/datos/").as_deref(), Some("/datos/"));
        assert_eq!(normalise("/datos/.").as_deref(), Some("/datos/"));
        assert_eq!(normalise("/index.html/.").as_deref(), Some("/index.html/"));
        assert_eq!(normalise("/a/%2e").as_deref(), Some("/a/"));
        assert_eq!(normalise("/a.json").as_deref(), Some("/a.json"));
        assert_eq!(normalise("/a%20b.csv").as_deref(), Some("/a b.csv"));
        assert_eq!(normalise("/a/../etc/passwd"), None);
        assert_eq!(normalise("/%2e%2e/x"), None);
        assert_eq!(normalise("/a%5Cb"), None);
        assert_eq!(normalise("/a%00"), None);
        assert_eq!(normalise("/%ff"), None);
        assert_eq!(normalise("relative"), None);
    }
}
