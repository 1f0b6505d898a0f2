//! The supervisor: one task per tenant (collect) and one per sink (forward), the shutdown
//! sequence, and the once-mode used by `run --once` and `demo --once`.
//!
//! - One poll in flight per tenant; a missed tick is skipped, not queued.
//! - One tenant's failure never stalls another; a sink's never stalls the others.
//! - A tenant whose credentials or permissions need a person logs one error line, is marked so
//!   in the database, and is checked again every `credential_recheck` (a new refresh token from
//!   `authorize` or the configured file is picked up then, without a restart). With `--once` it
//!   ends the run with that message instead.
//! - Shutdown abandons in-flight requests (stored windows are whole transactions), then gives
//!   the sinks `drain_timeout` to deliver what is queued. What is left stays in the database.

use crate::auth::TokenSource;
use crate::clock::{rfc3339_s, Clock};
use crate::collect::{backoff, CollectError, Collector};
use crate::config::Config;
use crate::forward::{ForwardError, Forwarder};
use crate::sink::SinkError;
use crate::store::{Store, StoreHandle};
use crate::telemetry::Stats;
use crate::workday::client::http_client;
use crate::workday::WorkdayClient;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct RunOptions {
    /// Collect every tenant once, deliver everything, return.
    pub once: bool,
    pub clock: Clock,
    /// Becomes `true` when the daemon should stop (SIGTERM, SIGINT, a test).
    pub shutdown: watch::Receiver<bool>,
    /// How long sinks may take to deliver what is queued after a shutdown request.
    pub drain_timeout: Duration,
    /// Bumped on SIGHUP: file sinks reopen their paths (after logrotate) and, with
    /// `config_path`, the configuration is reloaded.
    pub reopen: watch::Receiver<u64>,
    /// Where the configuration came from, for reloading on SIGHUP (continuous mode).
    pub config_path: Option<std::path::PathBuf>,
}

impl RunOptions {
    pub fn new(once: bool, shutdown: watch::Receiver<bool>) -> Self {
        RunOptions {
            once,
            clock: Clock::system(),
            shutdown,
            drain_timeout: Duration::from_secs(30),
            reopen: watch::channel(0).1,
            config_path: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub collected: u64,
    pub duplicates: u64,
    pub pages: u64,
    pub windows: u64,
    pub splits: u64,
    pub truncated_windows: u64,
    pub delivered: Vec<(String, u64)>,
    pub elapsed: Duration,
}

/// A `watch<bool>` that becomes true; resolves at once if it already is.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the daemon until shutdown (or, with `once`, one full cycle).
///
/// With a `config_path`, SIGHUP reloads the configuration: a valid new one replaces the running
/// tenants and sinks (their state is all in the database, so nothing queued is lost and added
/// sinks start from the oldest retained event); an invalid one is refused with a log line and
/// the running configuration stays.
pub async fn run(config: Config, opts: RunOptions) -> Result<RunSummary> {
    // Once per start (not per reload): a damaged database is refused before anything runs.
    let db = config.database_path();
    tokio::task::spawn_blocking(move || Store::open_verified(&db).map(drop))
        .await
        .context("database check")??;
    let Some(path) = opts.config_path.clone().filter(|_| !opts.once) else {
        return run_generation(config, opts).await;
    };
    let mut config = config;
    let mut hup = opts.reopen.clone();
    let mut hup_open = true;
    let mut ext = opts.shutdown.clone();
    loop {
        let (gen_tx, gen_rx) = watch::channel(false);
        let gen_opts = RunOptions {
            once: false,
            clock: opts.clock.clone(),
            shutdown: gen_rx,
            drain_timeout: opts.drain_timeout,
            reopen: opts.reopen.clone(),
            config_path: None,
        };
        let mut generation = tokio::spawn(run_generation(config.clone(), gen_opts));
        let next = loop {
            tokio::select! {
                r = &mut generation => return r.context("the daemon task failed")?,
                _ = stopped(&mut ext) => {
                    let _ = gen_tx.send(true);
                    return generation.await.context("the daemon task failed")?;
                }
                changed = hup.changed(), if hup_open => {
                    if changed.is_err() {
                        hup_open = false;
                        continue;
                    }
                    match Config::load(&path) {
                        Ok(new) => break new,
                        Err(e) => tracing::error!(error = %e, "SIGHUP: the new configuration is refused; the running one stays"),
                    }
                }
            }
        };
        crate::telemetry::sd_notify("RELOADING=1");
        tracing::info!(
            tenants = next.tenants.len(),
            sinks = next.sinks.len(),
            "SIGHUP: configuration reloaded; restarting tenants and sinks"
        );
        let _ = gen_tx.send(true);
        match generation.await {
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "the previous configuration ended with an error")
            }
            Err(e) => tracing::warn!(error = %e, "the previous configuration's task failed"),
            Ok(Ok(_)) => {}
        }
        config = next;
    }
}

async fn run_generation(config: Config, opts: RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let db = config.database_path();
    // Opened (and migrated) once up front, so a bad database fails before anything starts.
    drop(StoreHandle::open(&db)?);
    let stats = Arc::new(Stats::default());
    let (stored_tx, stored_rx) = watch::channel(0u64);
    // Internal stop: external shutdown, or a fatal error in any task.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let mut ext = opts.shutdown.clone();
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            stopped(&mut ext).await;
            let _ = stop_tx.send(true);
        });
    }
    let sink_names: Vec<String> = config.sinks.iter().map(|s| s.name.clone()).collect();

    // Sinks first: a file sink that cannot be opened is a config problem, found before polling.
    let mut forwarders = Vec::new();
    for s in &config.sinks {
        let f = Forwarder::open(s.clone(), StoreHandle::open(&db)?, stats.clone())
            .await
            .with_context(|| format!("cannot start sink {}", s.name))?;
        forwarders.push(f);
    }

    let mut collectors = Vec::new();
    for t in &config.tenants {
        let http = http_client(t.request_timeout).context("cannot build the HTTP client")?;
        let tenant_store = StoreHandle::open(&db)?;
        let tokens = TokenSource::new(t, http.clone(), tenant_store.clone()).await?;
        let client = WorkdayClient::new(http, t.activity_url.clone());
        collectors.push(Arc::new(Collector::new(
            t.clone(),
            client,
            tokens,
            tenant_store,
            opts.clock.clone(),
            stats.clone(),
            stored_tx.clone(),
        )));
    }
    drop(stored_tx);
    tracing::info!(
        tenants = config.tenants.len(),
        sinks = config.sinks.len(),
        database = %db.display(),
        mode = if opts.once { "once" } else { "continuous" },
        "workday-collector started"
    );

    // Metrics, readiness and systemd's notify protocol (continuous mode only).
    let mut side_tasks = JoinSet::new();
    if !opts.once {
        if let Some(addr) = config.metrics_listen {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics, /healthz and /readyz");
                    side_tasks.spawn(crate::telemetry::serve_metrics(
                        listener,
                        stats.clone(),
                        Arc::new(config.clone()),
                        stop_rx.clone(),
                    ));
                }
                Err(e) => {
                    tracing::error!(address = %addr, error = %e, "cannot serve metrics (is the address in use?); collecting without them")
                }
            }
        }
        let (stats, mut stop, tenants) = (stats.clone(), stop_rx.clone(), config.tenants.len());
        side_tasks.spawn(async move {
            crate::telemetry::sd_notify("READY=1");
            // Half the watchdog interval, as systemd recommends; STATUS= on the same beat.
            let beat = crate::telemetry::watchdog_interval()
                .map(|d| d / 2)
                .unwrap_or(Duration::from_secs(10));
            let watchdog = crate::telemetry::watchdog_interval().is_some();
            loop {
                let unhealthy = stats
                    .unhealthy()
                    .iter()
                    .filter(|(c, _)| c.starts_with("tenant/"))
                    .count();
                crate::telemetry::sd_notify(&format!(
                    "STATUS={} of {tenants} tenant(s) healthy; {} collected, {} delivered",
                    tenants - unhealthy.min(tenants),
                    Stats::get(&stats.collected),
                    Stats::get(&stats.delivered)
                ));
                if watchdog {
                    crate::telemetry::sd_notify("WATCHDOG=1");
                }
                tokio::select! {
                    _ = tokio::time::sleep(beat) => {}
                    _ = stopped(&mut stop) => {
                        crate::telemetry::sd_notify("STOPPING=1");
                        return;
                    }
                }
            }
        });
    }

    let (done_tx, done_rx) = watch::channel(false);
    let mut sink_tasks = JoinSet::new();
    for f in forwarders {
        let retry = config
            .tenants
            .first()
            .map(|t| (t.retry_initial, t.retry_max, t.max_attempts))
            .unwrap_or((Duration::from_secs(1), Duration::from_secs(300), 8));
        sink_tasks.spawn(forward_loop(
            f,
            stored_rx.clone(),
            done_rx.clone(),
            opts.once,
            retry,
            stop_tx.clone(),
            opts.reopen.clone(),
        ));
    }

    let mut tenant_tasks = JoinSet::new();
    for c in &collectors {
        tenant_tasks.spawn(tenant_loop(
            c.clone(),
            opts.once,
            stop_rx.clone(),
            sink_names.clone(),
            stop_tx.clone(),
            stats.clone(),
        ));
    }
    let mut failures = Vec::new();
    while let Some(r) = tenant_tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(e) => failures.push(format!("a tenant task failed: {e}")),
        }
    }
    let _ = done_tx.send(true);

    let drain = async {
        let mut delivered = Vec::new();
        while let Some(r) = sink_tasks.join_next().await {
            match r {
                Ok(Ok((name, n))) => delivered.push((name, n)),
                Ok(Err(e)) => failures.push(e.to_string()),
                Err(e) => failures.push(format!("a sink task failed: {e}")),
            }
        }
        delivered
    };
    let delivered = if opts.once {
        drain.await
    } else {
        match tokio::time::timeout(opts.drain_timeout, drain).await {
            Ok(d) => d,
            Err(_) => {
                tracing::warn!(timeout = ?opts.drain_timeout, "sinks did not finish delivering in time; the rest stays queued and is delivered after restart");
                Vec::new()
            }
        }
    };
    for c in &collectors {
        if let Err(e) = c.prune(sink_names.clone()).await {
            tracing::warn!(error = %e, "pruning delivered events failed");
        }
    }
    let _ = stop_tx.send(true);
    while side_tasks.join_next().await.is_some() {}
    let summary = RunSummary {
        collected: Stats::get(&stats.collected),
        duplicates: Stats::get(&stats.duplicates),
        pages: Stats::get(&stats.pages),
        windows: Stats::get(&stats.windows),
        splits: Stats::get(&stats.splits),
        truncated_windows: Stats::get(&stats.truncated_windows),
        delivered,
        elapsed: started.elapsed(),
    };
    if !failures.is_empty() {
        anyhow::bail!(failures.join("\n"));
    }
    tracing::info!(
        collected = summary.collected,
        duplicates = summary.duplicates,
        "workday-collector stopped"
    );
    Ok(summary)
}

async fn tenant_loop(
    c: Arc<Collector>,
    once: bool,
    mut stop: watch::Receiver<bool>,
    sink_names: Vec<String>,
    stop_tx: Arc<watch::Sender<bool>>,
    stats: Arc<Stats>,
) -> Result<(), CollectError> {
    let t = &c.tenant;
    let mut interval = tokio::time::interval(t.poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A cron `schedule` replaces the interval: tokio-cron-scheduler fires, and a tick that finds
    // a poll in flight is skipped, not queued.
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (cron_tx, mut cron_rx) = tokio::sync::mpsc::channel::<()>(1);
    let _scheduler = SchedulerGuard(match (&t.schedule, once) {
        (Some(expr), false) => Some(start_schedule(expr, cron_tx, busy.clone(), &t.name).await?),
        _ => None,
    });
    let first = std::sync::atomic::AtomicBool::new(true);
    let mut needs_person: Option<String> = None;
    let mut expiry_warned: Option<Instant> = None;
    let mut continue_without_tick = false;
    let in_maintenance = |t: &crate::config::TenantConfig| {
        t.maintenance_window
            .and_then(|w| w.end_if_inside(c.clock_now_ms()))
    };
    loop {
        if needs_person.is_none() && !std::mem::take(&mut continue_without_tick) {
            if _scheduler.0.is_some() && !first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                tokio::select! {
                    _ = cron_rx.recv() => {}
                    _ = stopped(&mut stop) => return Ok(()),
                }
            } else {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stopped(&mut stop) => return Ok(()),
                }
            }
        }
        busy.store(true, std::sync::atomic::Ordering::SeqCst);
        warn_refresh_token_expiry(t, &mut expiry_warned);
        let result = tokio::select! {
            r = c.poll() => r,
            _ = stopped(&mut stop) => return Ok(()),
        };
        busy.store(false, std::sync::atomic::Ordering::SeqCst);
        match result {
            Ok(r) => {
                if needs_person.take().is_some() {
                    tracing::info!(tenant = %t.name, "tenant recovered: collecting again");
                }
                c.record(Ok(())).await;
                stats.set_health(&format!("tenant/{}", t.name), None);
                let now_s = chrono::Utc::now().timestamp() as u64;
                stats.count(
                    "workday_collector_polls_total",
                    &[("tenant", t.name.as_str()), ("result", "ok")],
                    1,
                );
                stats.set_gauge(
                    &format!(
                        "workday_collector_last_successful_poll_timestamp_seconds{{tenant=\"{}\"}}",
                        t.name
                    ),
                    now_s,
                );
                tracing::info!(
                    tenant = %t.name,
                    from = %rfc3339_s(r.from_ms),
                    to = %rfc3339_s(r.to_ms),
                    windows = r.windows,
                    pages = r.pages,
                    new = r.inserted,
                    duplicates = r.duplicates,
                    splits = r.splits,
                    "poll complete"
                );
                if !once {
                    if let Err(e) = c.prune(sink_names.clone()).await {
                        tracing::warn!(tenant = %t.name, error = %e, "pruning delivered events failed");
                    }
                }
            }
            Err(e @ CollectError::Transient { .. }) if !once && in_maintenance(t).is_some() => {
                // Expected during Workday's weekly maintenance: quiet, not unhealthy, retried
                // after it (checking every credential_recheck meanwhile).
                c.record(Err(e.to_string())).await;
                let end = in_maintenance(t).unwrap_or_default();
                tracing::info!(tenant = %t.name, until = %rfc3339_s(end), error = %e, "workday is in its weekly maintenance window; retrying after it");
                let wait = Duration::from_millis((end - c.clock_now_ms()).max(1000) as u64)
                    .min(t.credential_recheck);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped(&mut stop) => return Ok(()),
                }
                interval.reset();
                continue_without_tick = true;
            }
            Err(e @ CollectError::Transient { .. }) if !once => {
                c.record(Err(e.to_string())).await;
                stats.set_health(&format!("tenant/{}", t.name), Some(e.to_string()));
                stats.count(
                    "workday_collector_polls_total",
                    &[("tenant", t.name.as_str()), ("result", "failed")],
                    1,
                );
                tracing::warn!(error = %e, next_poll_in = ?t.poll_interval, "poll failed; the next poll resumes from the checkpoint");
            }
            Err(CollectError::NeedsPerson {
                message,
                credentials,
                ..
            }) if !once => {
                let line = format!("tenant {}: {message}", t.name);
                c.record(Err(line.clone())).await;
                stats.set_health(&format!("tenant/{}", t.name), Some(line.clone()));
                stats.count(
                    "workday_collector_polls_total",
                    &[("tenant", t.name.as_str()), ("result", "needs_person")],
                    1,
                );
                // One error line per distinct problem, then quiet rechecks.
                if needs_person.as_deref() != Some(line.as_str()) {
                    tracing::error!(error = %line, recheck_every = ?t.credential_recheck, "tenant needs a person; collection resumes by itself once it is fixed");
                }
                needs_person = Some(line);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(t.credential_recheck) => {}
                        _ = stopped(&mut stop) => return Ok(()),
                    }
                    match c.tokens().reload().await {
                        Ok(true) => {
                            tracing::info!(tenant = %t.name, "found a new refresh token; trying it");
                            break;
                        }
                        // The same rejected token would be rejected again: wait for a new one.
                        Ok(false) if credentials => continue,
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(tenant = %t.name, error = %format!("{e:#}"), "cannot look for a new refresh token");
                            continue;
                        }
                    }
                }
                continue;
            }
            Err(e @ CollectError::NeedsPerson { .. }) => {
                tracing::error!(error = %e, "tenant stopped: it needs a person");
                return Err(e);
            }
            Err(e) => {
                tracing::error!(error = %e, "tenant stopped");
                if matches!(e, CollectError::Store { .. }) {
                    let _ = stop_tx.send(true);
                }
                return Err(e);
            }
        }
        if once {
            return Ok(());
        }
    }
}

/// Shuts a tenant's scheduler down when its loop ends, whichever way it ends.
struct SchedulerGuard(Option<tokio_cron_scheduler::JobScheduler>);

impl Drop for SchedulerGuard {
    fn drop(&mut self) {
        if let Some(mut s) = self.0.take() {
            tokio::spawn(async move {
                let _ = s.shutdown().await;
            });
        }
    }
}

/// Starts a cron job that nudges a tenant's loop; ticks while a poll runs are skipped.
async fn start_schedule(
    expr: &str,
    tx: tokio::sync::mpsc::Sender<()>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    tenant: &str,
) -> Result<tokio_cron_scheduler::JobScheduler, CollectError> {
    let fail = |e: tokio_cron_scheduler::JobSchedulerError| CollectError::Transient {
        tenant: tenant.to_string(),
        message: format!("cannot start the poll schedule: {e}"),
    };
    let sched = tokio_cron_scheduler::JobScheduler::new()
        .await
        .map_err(fail)?;
    let name = tenant.to_string();
    let job = tokio_cron_scheduler::Job::new_async(expr, move |_, _| {
        let (tx, busy, name) = (tx.clone(), busy.clone(), name.clone());
        Box::pin(async move {
            if busy.load(std::sync::atomic::Ordering::SeqCst) || tx.try_send(()).is_err() {
                tracing::debug!(tenant = %name, "scheduled poll skipped: the previous one is still running");
            }
        })
    })
    .map_err(fail)?;
    sched.add(job).await.map_err(fail)?;
    sched.start().await.map_err(fail)?;
    Ok(sched)
}

/// Warns (daily) as a refresh token with a known expiry nears it.
fn warn_refresh_token_expiry(t: &crate::config::TenantConfig, last: &mut Option<Instant>) {
    let Some(expires) = t.refresh_token_expires_ms else {
        return;
    };
    if last.is_some_and(|l| l.elapsed() < Duration::from_secs(86_400)) {
        return;
    }
    let left_ms = expires - chrono::Utc::now().timestamp_millis();
    if left_ms > t.refresh_token_warn_before.as_millis() as i64 {
        return;
    }
    *last = Some(Instant::now());
    let fix = "generate a new refresh token in Workday (Manage Refresh Tokens for Integrations) or run authorize, then update refresh_token_expires";
    if left_ms <= 0 {
        tracing::error!(tenant = %t.name, expired = %rfc3339_s(expires), "the refresh token has expired (refresh_token_expires): {fix}");
    } else {
        tracing::warn!(tenant = %t.name, expires = %rfc3339_s(expires), days_left = left_ms / 86_400_000, "the refresh token expires soon (refresh_token_expires): {fix}");
    }
}

async fn forward_loop(
    mut f: Forwarder,
    mut stored: watch::Receiver<u64>,
    mut done: watch::Receiver<bool>,
    once: bool,
    (retry_initial, retry_max, max_attempts): (Duration, Duration, u32),
    stop_tx: Arc<watch::Sender<bool>>,
    mut reopen: watch::Receiver<u64>,
) -> Result<(String, u64), ForwardError> {
    let mut attempt = 0u32;
    let mut reopened = *reopen.borrow();
    let mut needs_person: Option<String> = None;
    loop {
        // Read `done` before delivering: if collection had finished by then, an empty queue
        // afterwards really is the end.
        let finishing = *done.borrow_and_update();
        let generation = *reopen.borrow();
        if generation != reopened {
            reopened = generation;
            if let Err(e) = f.reopen() {
                tracing::error!(sink = %f.cfg.name, error = %format!("{e:#}"), "cannot reopen the sink");
            }
        }
        match f.deliver_pending().await {
            Ok(_) => {
                attempt = 0;
                f.stats().set_health(&format!("sink/{}", f.cfg.name), None);
                if needs_person.take().is_some() {
                    tracing::info!(sink = %f.cfg.name, "sink recovered");
                }
            }
            Err(e @ ForwardError::Store { .. }) => {
                tracing::error!(error = %e, "sink stopped: the state database failed");
                let _ = stop_tx.send(true);
                return Err(e);
            }
            Err(ForwardError::Sink(SinkError::NeedsPerson(m))) => {
                if once {
                    return Err(ForwardError::Sink(SinkError::NeedsPerson(m)));
                }
                f.stats()
                    .set_health(&format!("sink/{}", f.cfg.name), Some(m.clone()));
                if needs_person.as_deref() != Some(m.as_str()) {
                    tracing::error!(sink = %f.cfg.name, error = %m, "sink needs a person; its events stay queued and are retried");
                    needs_person = Some(m);
                }
                tokio::select! {
                    _ = tokio::time::sleep(retry_max) => {}
                    Ok(()) = done.changed(), if !finishing => {}
                }
                continue;
            }
            Err(e) => {
                attempt += 1;
                f.stats()
                    .set_health(&format!("sink/{}", f.cfg.name), Some(e.to_string()));
                if once && attempt >= max_attempts {
                    return Err(e);
                }
                let wait = match &e {
                    ForwardError::Sink(SinkError::Transient {
                        retry_after: Some(d),
                        ..
                    }) => (*d).min(Duration::from_secs(900)),
                    _ => backoff(retry_initial, retry_max, attempt),
                };
                if attempt == 1 {
                    tracing::warn!(sink = %f.cfg.name, error = %e, retry_in = ?wait, "delivery failed; events stay queued and are retried");
                } else {
                    tracing::debug!(sink = %f.cfg.name, error = %e, attempt, "delivery failed again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    Ok(()) = done.changed(), if !finishing => {}
                }
                continue;
            }
        }
        if finishing {
            return Ok((f.cfg.name.clone(), f.delivered));
        }
        tokio::select! {
            Ok(()) = stored.changed() => {}
            Ok(()) = done.changed() => {}
            Ok(()) = reopen.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Let a batch fill before sending a partial one.
        if !f.cfg.linger.is_zero() && !*done.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(f.cfg.linger) => {}
                Ok(()) = done.changed() => {}
            }
        }
    }
}

/// What the signal thread reports.
pub struct Signals {
    /// Becomes true on SIGTERM or SIGINT; a second one exits at once.
    pub shutdown: watch::Receiver<bool>,
    /// Bumped on SIGHUP.
    pub reopen: watch::Receiver<u64>,
}

/// Installs the handlers (signal-hook) and a thread that turns signals into channel updates.
pub fn signals() -> Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let (tx, rx) = watch::channel(false);
    let (hup_tx, hup_rx) = watch::channel(0u64);
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    tracing::info!("SIGHUP: reopening file sinks and reloading the configuration");
                    hup_tx.send_modify(|n| *n += 1);
                    continue;
                }
                seen += 1;
                if seen == 1 {
                    tracing::info!(signal = sig, "stopping: finishing the current step and delivering what is queued (signal again to exit at once)");
                    let _ = tx.send(true);
                } else {
                    eprintln!("second signal: exiting now; undelivered events stay queued in the database");
                    std::process::exit(130);
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(Signals {
        shutdown: rx,
        reopen: hup_rx,
    })
}
