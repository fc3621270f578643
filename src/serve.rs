//! `difusor serve`: the main job, wired together.
//!
//! Order matters and is part of the guarantees of [`crate::publisher`]: the data folder's
//! lock is taken ([`crate::store`]: a second server on the same folder stops here), the live
//! site is rebuilt from the archive and journal, the listeners (public, admin, replication
//! feed) are bound (so a busy port stops the program before anything else happens), and only
//! then is the publisher started (it first
//! takes again, or sets aside, what a crash interrupted, and removes expired rejected
//! packages, hourly after that) and the intake folder watched.
//!
//! The async threads serve visitors and wait on nothing slow: the publisher, the journal's
//! writer, the access log, the folder watcher and each pull run on threads of their own.
//!
//! If the publisher thread dies (a defect), the server's health turns red (`/health`,
//! `/status`, `difusor_publisher_up`), that is logged and journaled (`publisher-died`), and
//! after [`DEATH_GRACE`] the server stops as on SIGTERM and exits with status 2, so that its
//! service manager starts it again; the start takes again what was interrupted.
//!
//! On SIGTERM or SIGINT with `health_listen` set, the server drains first ([`drain`]): the
//! load balancer's health check answers 503 `draining` at once (journaled `draining`), the
//! public listeners go on serving for `drain_time`, and only then does the stop begin (open
//! requests get ten seconds). A second signal cuts the wait short.
//!
//! With `acme_domains` set, the HTTPS certificate is obtained and renewed over ACME
//! ([`crate::acme`]) in the background; SIGHUP does not touch it.
//!
//! With `purge_url` set, the caches in front are purged after each corte made live and each
//! change of the notice ([`crate::purge`]), in the background: nothing waits for it.
//!
//! The clock is checked against `ntp_servers` from the start ([`crate::clock`]); with `syslog`
//! set, every journal event from the opening of the journal to the stop is also sent to
//! syslog ([`crate::syslog`]), and the stop waits up to [`SYSLOG_FLUSH`] for what is queued.
//!
//! Under a service manager ([`systemd`]): `READY=1` just before the server waits for its end
//! (the live corte rebuilt, every listener serving), `STOPPING=1` when the stop begins, the
//! watchdog fed while the publisher lives. SIGHUP always reloads ([`reload`]): the
//! certificates, and the configuration read again and checked.

mod reload;
mod systemd;

pub(crate) use reload::Source;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::json;
use tokio::sync::{oneshot, watch};

use crate::acme::Acme;
use crate::admin::{self, Admin};
use crate::archive::clear_unfinished;
use crate::clock::Clock;
use crate::config::FeedSettings;
use crate::feed::{self, Feed};
use crate::http::gate::Gate;
use crate::http::health::{self, Health};
use crate::http::limits::{self, Limits};
use crate::http::refusals::Refusals;
use crate::http::tls::Tls;
use crate::http::{self, ConnectionRules, Public, access_log};
use crate::intake::pull::{Puller, Replica};
use crate::intake::sftp::{self, SftpServer};
use crate::intake::{self, WatchRules};
use crate::journal::{EventKind, Journal};
use crate::metrics::Metrics;
use crate::publisher::{Publisher, Running};
use crate::purge::Purger;
use crate::sections::Sections;
use crate::site::{self, Compressor, Live, Site};
use crate::store::{self, Busy, Store};
use crate::syslog::Syslog;

/// How long a server whose publisher died keeps answering (its health red) before it stops.
const DEATH_GRACE: Duration = Duration::from_secs(3);
/// How long the stop waits for journal events still queued for syslog.
const SYSLOG_FLUSH: Duration = Duration::from_secs(2);

/// A publisher with the live site rebuilt from the archive and journal; with a
/// `compressor`, the compressed variants of every corte's files are made after each swap.
pub(crate) fn rebuilt_publisher(
    sections: &Sections,
    store: &Store,
    compressor: Option<Compressor>,
) -> Result<(Publisher, Live)> {
    let (live, swap) = site::live(Site::new(sections.site.cache.clone()));
    let mut publisher = Publisher::new(
        sections.publisher(),
        store.archive.clone(),
        store.journal.clone(),
        swap,
    );
    if let Some(compressor) = compressor {
        publisher = publisher.with_compressor(compressor);
    }
    let files = publisher
        .rebuild()
        .context("rebuilding the live site from the archive")?;
    if let Some(corte) = live.load().corte() {
        tracing::info!(corte = %corte.id, files, "live site rebuilt from the archive");
    }
    Ok((publisher, live))
}

/// Runs until SIGINT or SIGTERM; `source` is where the configuration is read again on SIGHUP.
pub(crate) async fn run(sections: Sections, source: Source) -> Result<()> {
    let config = &sections.config;
    if let Some(syslog) = &sections.syslog {
        syslog.target.check()?;
    }
    let lock = store::lock(&config.data_dir)?.map_err(|busy| Busy {
        hint: "only one server may use a data folder: stop that one first, or give this one \
               another data_dir"
            .to_owned(),
        ..busy
    })?;
    let store = Store::open(config, lock)?;
    let syslog = match &sections.syslog {
        Some(settings) => {
            let syslog = Syslog::start(settings, Arc::downgrade(&store.journal))
                .context("cannot start the syslog thread")?;
            store.journal.follow(syslog.follower());
            Some(syslog)
        }
        None => None,
    };
    let mut reload = reload::Reload::listen(source, &sections, store.journal.clone())
        .context("cannot take SIGHUP")?;
    for (setting, path) in crate::config::exposed_token_files(&config.settings) {
        let warning = format!(
            "{} (`{setting}`) can be read by other users of this machine, and so can its \
             token; `chmod 600 {}` and make it difusor's user's",
            path.display(),
            path.display()
        );
        tracing::warn!("{warning}");
        store.journal.post(
            EventKind::Warning,
            None,
            json!({"warning": warning, "check": "token-file", "setting": setting}),
        );
    }
    // What a crash left half-written: archive copies, and uploads never acknowledged.
    store.archive.clear_unfinished()?;
    clear_unfinished(&store.layout.tmp())?;
    let compressor = Compressor::start().context("cannot start the compressor thread")?;
    let (publisher, live) = rebuilt_publisher(&sections, &store, Some(compressor))?;
    // Told of every corte made live from here on, the publisher's first ones included.
    let purger = match &sections.purge {
        Some(settings) => Some((Purger::new(settings, store.journal.clone())?, live.swaps())),
        None => None,
    };

    // With `acme_domains` the certificate comes over ACME: a kept one is served at once.
    let acme = match &sections.acme {
        Some(settings) => Some(Acme::start(settings, &store.layout, store.journal.clone())?),
        None => None,
    };
    let tls = match (&config.tls_files, &acme) {
        (Some((cert, key)), _) => Some(
            Tls::load(cert, key)
                .context("cannot use the HTTPS certificate (settings `tls_cert`, `tls_key`)")?,
        ),
        (None, Some(acme)) => {
            Some(Tls::resolved(acme.answers()).context("cannot set up HTTPS for ACME")?)
        }
        (None, None) => None,
    };
    // (one listener per worker, HTTPS) for every public address.
    let workers = sections.http.workers;
    let mut public_listeners = Vec::new();
    for (addrs, https, setting) in [
        (&config.listen, false, "listen"),
        (&config.tls_listen, true, "tls_listen"),
    ] {
        for addr in addrs {
            let l = http::workers::listen_per_worker(*addr, workers).with_context(|| {
                format!(
                    "cannot listen on {addr} (setting `{setting}`): is another server using it?"
                )
            })?;
            if let Some(first) = l.first() {
                tracing::info!(address = %first.local_addr()?, https, workers, "serving the public site");
            }
            public_listeners.push((l, https));
        }
    }
    let admin_listener = http::listen(config.admin_listen).with_context(|| {
        format!(
            "cannot listen on {} (setting `admin_listen`): is another difusor running?",
            config.admin_listen
        )
    })?;
    tracing::info!(address = %admin_listener.local_addr()?, "admin listener ready");
    let mut health_listeners = Vec::new();
    for addr in sections.health.iter().flat_map(|h| &h.listen) {
        let l = http::listen(*addr).with_context(|| {
            format!(
                "cannot listen on {addr} (setting `health_listen`): is another server using it?"
            )
        })?;
        tracing::info!(address = %l.local_addr()?, "health check listener ready");
        health_listeners.push(l);
    }
    let mut feed_listeners = Vec::new();
    for addr in config.feed.iter().flat_map(|f| &f.listen) {
        let l = http::listen(*addr).with_context(|| {
            format!("cannot listen on {addr} (setting `feed_listen`): is another server using it?")
        })?;
        let https = config.feed.as_ref().is_some_and(|f| f.tls.is_some());
        tracing::info!(address = %l.local_addr()?, https, "replication feed ready");
        feed_listeners.push(l);
    }
    // Its certificate and client authority are read now: a file that does not load stops
    // the start.
    let feed_tls = match &config.feed {
        Some(FeedSettings {
            tls: Some((cert, key)),
            client_ca,
            ..
        }) => Some(
            Tls::with_client_ca(cert, key, client_ca.as_deref()).context(
                "cannot serve the replication feed over HTTPS (settings `tls_cert`, `tls_key`, \
                 `feed_client_ca`)",
            )?,
        ),
        _ => None,
    };
    let sftp_listener = match &sections.sftp {
        Some(settings) => Some(sftp::open(settings).await?),
        None => None,
    };
    if config.publish_start.is_none() {
        tracing::warn!("no publish_start is set: results are public as soon as they arrive");
    }

    let Running {
        handle: to_publisher,
        decided,
        died,
    } = publisher
        .spawn()
        .context("cannot start the publisher thread")?;
    let health = Arc::new(Health::new(
        config.replica_of.is_some(),
        sections
            .health
            .as_ref()
            .map(|h| h.max_lag)
            .unwrap_or_default(),
    ));
    let start_text = config
        .publish_start
        .map(|t| {
            t.to_zoned_datetime(config.timezone.clone())
                .strftime("%d/%m/%Y a las %H:%M (%Z)")
                .to_string()
        })
        .unwrap_or_default();
    let notice = store.journal.current_notice()?;
    if let Some(text) = &notice {
        tracing::warn!(%text, "the institute's notice is in force: results are not shown");
    }
    let gate = Arc::new(Gate::new(config.publish_start, start_text, notice));
    // Its token, certificate and authorities are read now: a missing file stops the start.
    let puller = match &sections.pull {
        Some(settings) => Some(Arc::new(Puller::new(
            settings.clone(),
            &store,
            sections.package.limits.max_package_bytes,
            to_publisher.clone(),
            Replica::new(gate.clone(), health.clone(), live.clone()),
        )?)),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    store
        .journal
        .record_async(
            EventKind::Start,
            None,
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "listen": config.settings.listen,
                "live_corte": live.load().corte().map(|c| c.id.clone()),
            }),
        )
        .await?;

    let (access_log, log_writer) = access_log::start(
        access_log::Writer {
            dir: config.log_dir.clone(),
            format: config.settings.access_log_format,
            timezone: config.timezone.clone(),
            journal: store.journal.clone(),
        },
        stop_rx.clone(),
    )
    .with_context(|| {
        format!(
            "cannot write the access log {} (setting `log_dir`); make the folder writable by \
             difusor's user",
            config.log_dir.join("access.log").display()
        )
    })?;
    let notices = gate.notice_changes();
    let limits = Limits::new(limits::within_descriptors(sections.http.limits.clone()));
    let metrics = Arc::new(if acme.is_some() {
        Metrics::new().with_acme()
    } else {
        Metrics::new()
    });
    let clock = Clock::new(sections.clock.clone());
    let public = Arc::new(Public {
        limits: limits.clone(),
        max_uri_bytes: sections.http.max_uri_bytes,
        hsts: sections.http.hsts.clone(),
        frame_ancestors: sections.http.frame_ancestors.clone(),
        metrics: metrics.clone(),
        live: live.clone(),
        gate: gate.clone(),
        access_log: access_log.clone(),
        acme: acme.as_ref().map(Acme::answers),
    });
    let admin = Arc::new(Admin {
        acme: acme.as_ref().map(Acme::board),
        pull: puller.as_ref().map(|p| p.board()),
        live: live.clone(),
        journal: store.journal.clone(),
        publisher: to_publisher.clone(),
        token: config.admin_token.clone(),
        // The address bound, not the one asked for: with port 0 the kernel picks the port.
        guard: admin::RequestGuard::new(admin_listener.local_addr()?, &sections.admin_hosts),
        tmp_dir: store.layout.tmp(),
        reserve: store.reserve.clone(),
        max_package_bytes: sections.package.limits.max_package_bytes,
        uploads: Arc::new(tokio::sync::Semaphore::new(admin::MAX_UPLOADS)),
        body_timeout: sections.http.send_timeout,
        max_site_bytes: sections.site.max_bytes,
        gate: gate.clone(),
        publish_start: config.publish_start,
        publish_end: config.publish_end,
        update_interval: config.update_interval,
        started_at: Timestamp::now(),
        access_log,
        limits: limits.clone(),
        metrics,
        health: health.clone(),
        clock: clock.clone(),
        syslog: syslog.clone(),
    });

    let max_header_bytes = sections.http.max_header_bytes;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(clock.run(store.journal.clone(), stop_rx.clone()));
    if config.rejected_retention.is_some() {
        // Rejected packages past their retention are removed by the publisher, hourly.
        let to_publisher = to_publisher.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            every.tick().await;
            loop {
                tokio::select! {
                    _ = every.tick() => { let _ = to_publisher.expire().await; }
                    _ = stop.changed() => return,
                }
            }
        });
    }
    {
        // Quiet addresses leave the rate table, so it cannot grow without bound.
        let limits = limits.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => limits.forget_quiet(),
                    _ = stop.changed() => return,
                }
            }
        });
    }
    // Refused TLS handshakes, of the public listeners and the feed's, journaled once a minute
    // per address.
    let handshake_refusals = Arc::new(Refusals::new(store.journal.clone(), "tls-handshake"));
    // Connections closed because their client broke HTTP, likewise.
    let protocol_refusals = Arc::new(Refusals::new(store.journal.clone(), "http-protocol"));
    let mut shared = Vec::new();
    for (listeners, https) in public_listeners {
        let public = public.clone();
        shared.push(http::workers::Shared {
            listeners,
            rules: ConnectionRules {
                limits: Some(limits.clone()),
                tls: if https { tls.clone() } else { None },
                header_timeout: sections.http.header_timeout,
                send_timeout: sections.http.send_timeout,
                max_header_bytes,
                handshake_refusals: https.then(|| handshake_refusals.clone()),
                protocol_refusals: Some(protocol_refusals.clone()),
            },
            handler: move |peer, req| http::handle(public.clone(), peer, https, req),
        });
    }
    let public_served = http::workers::start(shared, &stop_rx)
        .context("cannot start the threads that serve visitors")?;
    tasks.spawn(async move {
        let _ = public_served.await;
    });
    // The public listeners accept connections: the load balancer may send visitors.
    for listener in health_listeners {
        tasks.spawn(health::serve(
            listener,
            health.clone(),
            live.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some((purger, swaps)) = purger {
        tasks.spawn(purger.run(swaps, notices, stop_rx.clone()));
    }
    // Only files are reloaded: the ACME certificate is renewed by its own task.
    if let Some(tls) = tls
        && config.tls_files.is_some()
    {
        reload.certificates.push(("HTTPS", tls.clone()));
        tasks.spawn(reload_tls(tls, store.journal.clone(), stop_rx.clone()));
    }
    if let Some(acme) = acme {
        tasks.spawn(acme.run(stop_rx.clone()));
    }
    tasks.spawn(http::serve(
        admin_listener,
        ConnectionRules {
            limits: Some(Limits::private(
                admin::MAX_CONNECTIONS,
                admin::MAX_PER_ADDRESS,
            )),
            tls: None,
            header_timeout: sections.http.header_timeout,
            send_timeout: sections.http.send_timeout,
            max_header_bytes,
            handshake_refusals: None,
            protocol_refusals: None,
        },
        move |_peer, req| admin::handle(admin.clone(), req),
        stop_rx.clone(),
    ));
    if let Some(settings) = &config.feed {
        let feed = Feed::new(
            settings,
            feed::Sources {
                live: live.clone(),
                journal: store.journal.clone(),
                archive: store.archive.clone(),
                gate,
                decided,
                stop: stop_rx.clone(),
            },
        );
        for listener in feed_listeners {
            let feed = feed.clone();
            tasks.spawn(http::serve(
                listener,
                ConnectionRules {
                    limits: Some(Limits::private(
                        feed::MAX_CONNECTIONS,
                        feed::MAX_PER_ADDRESS,
                    )),
                    tls: feed_tls.clone(),
                    header_timeout: sections.http.header_timeout,
                    send_timeout: sections.http.send_timeout,
                    max_header_bytes,
                    handshake_refusals: feed_tls.is_some().then(|| handshake_refusals.clone()),
                    protocol_refusals: Some(protocol_refusals.clone()),
                },
                move |peer, req| feed::handle(feed.clone(), peer, req),
                stop_rx.clone(),
            ));
        }
        if let Some(tls) = feed_tls {
            reload.certificates.push(("replication feed", tls.clone()));
            tasks.spawn(reload_tls(tls, store.journal.clone(), stop_rx.clone()));
        }
    }
    let late_signatures = intake::SignatureCheck {
        keys: sections.package.evidence.public_keys.clone(),
        archive: store.archive.clone(),
        max_bytes: sections.package.limits.max_package_bytes,
    };
    let rules = WatchRules {
        dir: config.watch_dir.clone(),
        settle: config.settle,
        evidence_wait: config.evidence_wait,
        sidecar: sections.package.evidence.sidecar,
        signature: sections.package.evidence.signature,
        late_signatures: late_signatures.clone(),
    };
    if let (Some(settings), Some(listener)) = (&sections.sftp, sftp_listener) {
        let server = SftpServer {
            settings: settings.clone(),
            tmp_dir: store.layout.tmp(),
            space: store.reserve.uploads(),
            max_package_bytes: sections.package.limits.max_package_bytes,
            late_signatures,
            publisher: to_publisher.clone(),
            journal: store.journal.clone(),
        };
        let stop_sftp = stop_rx.clone();
        tasks.spawn(async move {
            if let Err(e) = sftp::serve(server, listener, stop_sftp).await {
                tracing::error!(error = %format!("{e:#}"), "the SFTP intake stopped");
            }
        });
    }
    if let Some(puller) = &puller {
        for url in puller.urls() {
            tracing::info!(%url, "pulling packages");
            let pulling = on_own_thread("pull", puller.clone().run(url, stop_rx.clone()))
                .context("cannot start a pull thread")?;
            tasks.spawn(async move {
                let _ = pulling.await;
            });
        }
    }
    let mut watcher = on_own_thread(
        "watch",
        intake::watch_folder(rules, to_publisher, store.journal.clone(), stop_rx.clone()),
    )
    .context("cannot start the intake folder's thread")?;

    // Rebuilt, bound and serving: the service manager may count this server as started.
    reload.status = match live.load().corte() {
        Some(corte) => format!("serving corte {}", corte.id),
        None => "serving; no corte published yet".to_owned(),
    };
    systemd::ready(&reload.status);
    systemd::feed_watchdog(health.clone());
    tasks.spawn(reload.run(stop_rx));

    let mut watching = true;
    let mut told_stopping = false;
    let result = tokio::select! {
        _ = shutdown_signal() => {
            systemd::stopping();
            told_stopping = true;
            if let Some(settings) = &sections.health {
                drain(&health, settings.drain_time, &store.journal).await;
            }
            Ok(())
        }
        ended = &mut watcher => {
            watching = false;
            match ended {
                Ok(Err(e)) => Err(e.context("the intake folder cannot be watched; no package could arrive")),
                Err(_) => Err(anyhow::anyhow!("the intake folder watcher panicked")),
                Ok(Ok(())) => Ok(()),
            }
        }
        Ok(why) = died => Err(publisher_died(&health, &store.journal, why).await),
    };
    tracing::info!("stopping: no new packages are taken; open requests get ten seconds");
    if !told_stopping {
        systemd::stopping();
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    if watching {
        let _ = watcher.await;
    }
    let _ = tokio::task::spawn_blocking(move || log_writer.join()).await;
    store
        .journal
        .record_async(EventKind::Stop, None, json!({}))
        .await?;
    if let Some(syslog) = &syslog {
        syslog.flush(SYSLOG_FLUSH).await;
    }
    result
}

/// Runs `task` on a thread of its own, driven by this runtime's timers and sockets: its file
/// work (reads, renames, journal writes) then never holds up the threads that serve visitors.
/// The answer is its result, or an error if it panicked.
fn on_own_thread<T: Send + 'static>(
    name: &str,
    task: impl Future<Output = T> + Send + 'static,
) -> std::io::Result<oneshot::Receiver<T>> {
    let runtime = tokio::runtime::Handle::current();
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(runtime.block_on(task));
        })?;
    Ok(rx)
}

/// Turns the server's health red, says so in the log and the journal, and gives open
/// requests [`DEATH_GRACE`]; the error to exit with.
async fn publisher_died(health: &Health, journal: &Journal, why: String) -> anyhow::Error {
    tracing::error!(error = %why, "the publisher stopped unexpectedly: nothing can be published; the server exits so that it is started again");
    health.publisher_died(why.clone());
    if let Err(e) = journal
        .record_async(EventKind::PublisherDied, None, json!({"error": why}))
        .await
    {
        tracing::error!(error = %e, "cannot journal that the publisher stopped");
    }
    tokio::time::sleep(DEATH_GRACE).await;
    anyhow::anyhow!(
        "the publisher stopped unexpectedly ({why}); exiting so that the service manager starts \
         difusor again"
    )
}

/// Fails the load balancer's health check (`draining`, logged and journaled) and lets the
/// public listeners serve for `drain_time`, so that the load balancer moves visitors away
/// before the stop; a second SIGTERM or SIGINT ends the wait.
async fn drain(health: &Health, drain_time: Duration, journal: &Journal) {
    health.drain();
    tracing::info!(
        ?drain_time,
        "draining: the health check answers 503; the public site is served until the stop"
    );
    let detail =
        json!({"drain_time_ms": u64::try_from(drain_time.as_millis()).unwrap_or(u64::MAX)});
    if let Err(e) = journal
        .record_async(EventKind::Draining, None, detail)
        .await
    {
        tracing::error!(error = %e, "cannot journal that draining began");
    }
    tokio::select! {
        () = tokio::time::sleep(drain_time) => {}
        () = shutdown_signal() => tracing::warn!("asked again to stop: draining cut short"),
    }
}

/// Loads the HTTPS certificate again when its files change (checked every five seconds; on
/// SIGHUP [`reload`] does it at once); a pair that does not load is journaled and the old
/// one kept.
async fn reload_tls(tls: Arc<Tls>, journal: Arc<Journal>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        };
        match tls.reload(false) {
            Ok(true) => tracing::info!("HTTPS certificate reloaded; new connections use it"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "the new HTTPS certificate cannot be used; the old one stays");
                journal.post(
                    EventKind::Warning,
                    None,
                    json!({"warning": format!("HTTPS certificate not reloaded: {e}")}),
                );
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
