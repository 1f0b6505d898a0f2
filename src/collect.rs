//! Per-tenant collection: which windows to read, reading them completely, and storing each with
//! the checkpoint that covers it.
//!
//! - First start covers `[now − backfill, now − lag]`; later polls `[checkpoint − overlap,
//!   now − lag]`. Long ranges are cut into windows of at most `max_window`, adjacent windows
//!   overlapping by a second, so an entry on a boundary is read whatever Workday's bounds mean.
//! - `from`/`to` stay fixed while paging; `offset` grows by the entries received.
//! - A window whose `total` reaches Workday's 10,000-entry cap is split (into as many parts as
//!   its total suggests) until each part fits. Only a single second holding more than the cap
//!   cannot be split; that is logged as an error and counted, never silent.
//! - A window is read completely, checked (same `total` on every page, every entry received),
//!   then stored in one transaction with its checkpoint. A crash loses at most the window in
//!   hand, which the next poll reads again.
//!
//! It does not deliver events (see `forward`) or decide when to poll (see `daemon`).

use crate::auth::{AuthError, TokenSource};
use crate::clock::{rfc3339_s, Clock};
use crate::config::TenantConfig;
use crate::secret::Secret;
use crate::store::{NewEvent, StoreHandle};
use crate::telemetry::Stats;
use crate::workday::client::{ceil_s, floor_s};
use crate::workday::wire::{self, Page};
use crate::workday::{ApiError, Query, WorkdayClient, ENTRY_CAP};
use futures_util::stream::{self, StreamExt};
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Adjacent windows share this much, so an entry on a boundary is in both.
const BOUNDARY_OVERLAP_MS: i64 = 1000;
/// A `Retry-After` is obeyed up to this; beyond it looks like a broken header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);
/// Re-reads of a window that changed while it was paged, before taking what came.
const CONSISTENCY_RETRIES: u32 = 3;

/// One Workday request, owning everything it needs.
type ApiFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Credentials or permissions: only a person can fix it. Retrying would not help.
    #[error("tenant {tenant}: {message}")]
    NeedsPerson {
        tenant: String,
        message: String,
        /// The credentials themselves were refused (retrying with the same token is pointless).
        credentials: bool,
    },
    /// Workday unavailable, rate limited or answering garbage; the checkpoint stays.
    #[error("tenant {tenant}: {message}")]
    Transient { tenant: String, message: String },
    /// The state database failed; the daemon cannot continue safely.
    #[error("tenant {tenant}: {source:#}")]
    Store {
        tenant: String,
        source: anyhow::Error,
    },
}

/// A window's events being worked out in the background.
type Identifying = tokio::task::JoinHandle<Vec<NewEvent>>;

/// A window being stored in the background.
struct PendingStore {
    w: Window,
    pages: u64,
    task: tokio::task::JoinHandle<anyhow::Result<crate::store::InsertOutcome>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Window {
    fn len_ms(&self) -> i64 {
        self.to_ms - self.from_ms
    }
}

/// What one poll did.
#[derive(Debug, Default, Clone)]
pub struct PollReport {
    pub from_ms: i64,
    pub to_ms: i64,
    pub windows: u64,
    pub pages: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub splits: u64,
}

/// Cuts `[from, to]` into windows of at most `max` that overlap their neighbours by a second.
pub fn plan_windows(from_ms: i64, to_ms: i64, max: Duration) -> Vec<Window> {
    let max = (max.as_millis() as i64).max(2 * BOUNDARY_OVERLAP_MS);
    let mut out = Vec::new();
    let mut start = from_ms;
    while start < to_ms {
        let end = (start + max).min(to_ms);
        out.push(Window {
            from_ms: start,
            to_ms: end,
        });
        if end == to_ms {
            break;
        }
        start = end - BOUNDARY_OVERLAP_MS;
    }
    out
}

/// Splits a window that holds `total` entries (at or above the cap) into parts of whole seconds
/// expected to hold about 80% of the cap each; at least two.
pub fn split_window(w: Window, total: u64) -> Vec<Window> {
    let target = ENTRY_CAP * 8 / 10;
    let parts = total.div_ceil(target).clamp(2, 64) as i64;
    let secs = (w.len_ms() + 999) / 1000;
    // Parts overlap by a second, so each must span at least two to make progress.
    // k parts of `step` seconds advancing by `step − 1` cover `(k − 1)(step − 1) + step`.
    let step_s = ((secs + 2 * parts - 2) / parts).max(2);
    let mut out = Vec::new();
    let mut start = w.from_ms;
    while start < w.to_ms {
        let end = (floor_s(start) + step_s * 1000).min(w.to_ms);
        let end = if end <= start { w.to_ms } else { end };
        out.push(Window {
            from_ms: start,
            to_ms: end,
        });
        if end == w.to_ms {
            break;
        }
        start = end - BOUNDARY_OVERLAP_MS;
    }
    out
}

/// Capped exponential backoff with jitter: the n-th wait (n ≥ 1) lies in `[d/2, d]` where
/// `d = initial · 2^(n−1)`, at most `max`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let d = exp.min(max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos() as u64)
        .unwrap_or(0);
    let jitter = crate::sim::dataset::mix(nanos ^ u64::from(attempt)) % 1000;
    d / 2 + d / 2 * (jitter as u32) / 1000
}

/// Bounds one tenant's activity-log requests: how many are in flight at once and how many
/// start per second. A permit is held for one request, never across a retry's wait.
pub struct RequestLimiter {
    slots: Arc<Semaphore>,
    spacing: Option<Duration>,
    next_start: std::sync::Mutex<tokio::time::Instant>,
}

impl RequestLimiter {
    pub fn new(concurrent: u32, per_second: Option<u32>) -> Self {
        RequestLimiter {
            slots: Arc::new(Semaphore::new(concurrent.max(1) as usize)),
            spacing: per_second.map(|r| Duration::from_secs(1) / r.max(1)),
            next_start: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    fn next_start(&self) -> std::sync::MutexGuard<'_, tokio::time::Instant> {
        // The guarded value is a plain instant; a panic elsewhere cannot leave it half-written.
        self.next_start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a free slot, then for the request's turn under the rate (and after any hold-off).
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        #[allow(clippy::expect_used)]
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the limiter's semaphore is never closed");
        let start = {
            let mut next = self.next_start();
            let start = (*next).max(tokio::time::Instant::now());
            if let Some(spacing) = self.spacing {
                *next = start + spacing;
            }
            start
        };
        tokio::time::sleep_until(start).await;
        permit
    }

    /// Workday said "too many requests": no request of this tenant starts before `wait` is over.
    pub fn hold_off(&self, wait: Duration) {
        let mut next = self.next_start();
        *next = (*next).max(tokio::time::Instant::now() + wait);
    }
}

pub struct Collector {
    pub tenant: TenantConfig,
    limiter: Arc<RequestLimiter>,
    client: WorkdayClient,
    tokens: TokenSource,
    store: StoreHandle,
    clock: Clock,
    stats: Arc<Stats>,
    stored: watch::Sender<u64>,
}

enum WindowRead {
    Complete(Vec<Box<RawValue>>, u64),
    Split(Vec<Window>),
}

impl Collector {
    pub fn new(
        tenant: TenantConfig,
        client: WorkdayClient,
        tokens: TokenSource,
        store: StoreHandle,
        clock: Clock,
        stats: Arc<Stats>,
        stored: watch::Sender<u64>,
    ) -> Self {
        Collector {
            limiter: Arc::new(RequestLimiter::new(
                tenant.max_concurrent_requests,
                tenant.max_requests_per_second,
            )),
            tenant,
            client,
            tokens,
            store,
            clock,
            stats,
            stored,
        }
    }

    /// How many windows, or pages of one window, are read at once (the limiter bounds the
    /// requests themselves).
    fn in_flight(&self) -> usize {
        self.tenant.max_concurrent_requests.max(1) as usize
    }

    /// The collector's clock (shared with tests' simulators).
    pub fn clock_now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    fn needs_person(&self, message: String) -> CollectError {
        CollectError::NeedsPerson {
            tenant: self.tenant.name.clone(),
            message,
            credentials: false,
        }
    }

    fn transient(&self, message: String) -> CollectError {
        CollectError::Transient {
            tenant: self.tenant.name.clone(),
            message,
        }
    }

    fn store_err(&self, source: anyhow::Error) -> CollectError {
        CollectError::Store {
            tenant: self.tenant.name.clone(),
            source,
        }
    }

    /// Reads everything from the checkpoint (less the overlap) up to now − lag.
    pub async fn poll(&self) -> Result<PollReport, CollectError> {
        let t = &self.tenant;
        let now = self.clock.now_ms();
        let end = now - t.lag.as_millis() as i64;
        let start = floor_s(now - t.backfill.as_millis() as i64);
        let name = t.name.clone();
        let cp = self
            .store
            .call(move |s| s.init_checkpoint(&name, start, now))
            .await
            .map_err(|e| self.store_err(e))?;
        let from = match cp.collected_until_ms {
            Some(until) => (until - t.overlap.as_millis() as i64).max(cp.start_ms),
            None => cp.start_ms,
        };
        let mut report = PollReport {
            from_ms: from,
            to_ms: end,
            ..PollReport::default()
        };
        if end - from < BOUNDARY_OVERLAP_MS {
            return Ok(report);
        }
        let backfilling = cp
            .collected_until_ms
            .is_none_or(|u| end - u > 2 * t.poll_interval.as_millis() as i64 + 3_600_000);
        // Windows are read in parallel (bounded by the limiter and by holding at most
        // `max_concurrent_requests` windows), and stored strictly in time order, so the
        // checkpoint never passes a window that is not stored.
        //
        // A window that must be split is handled with the parallel reads stopped: reads that
        // are not polled can hold request slots, and the split's own requests would wait for
        // them forever. Reads ahead of it are dropped and asked again afterwards (splits are
        // rare: only windows at Workday's 10,000-entry cap).
        let ahead = self.in_flight();
        let windows = plan_windows(from, end, t.max_window);
        let mut next = 0;
        let mut last_progress = tokio::time::Instant::now();
        // While a window is stored (ids, insert, commit), the next ones are still read: at most
        // one store is under way, and each starts after the one before it finished.
        let mut storing: Option<PendingStore> = None;
        while next < windows.len() {
            let mut split = None;
            let mut reads = stream::iter(windows[next..].iter().copied())
                .map(|w| async move { (w, self.read_window(w).await) })
                .buffered(ahead);
            while let Some((w, read)) = reads.next().await {
                next += 1;
                let read = match read {
                    Ok(read) => read,
                    Err(e) => {
                        if let Some(p) = storing.take() {
                            self.finish_store(p, &mut report).await?;
                        }
                        return Err(e);
                    }
                };
                // A complete window's ids are worked out while the one before is inserted.
                let read = match read {
                    WindowRead::Complete(entries, pages) => {
                        Ok((self.identify_window(entries), pages))
                    }
                    WindowRead::Split(parts) => Err(parts),
                };
                if let Some(p) = storing.take() {
                    self.finish_store(p, &mut report).await?;
                }
                match read {
                    Err(parts) => {
                        split = Some((w, parts));
                        break;
                    }
                    Ok((events, pages)) => {
                        storing = Some(self.start_store(w, events, pages));
                    }
                }
                if backfilling && last_progress.elapsed() >= Duration::from_secs(5) {
                    last_progress = tokio::time::Instant::now();
                    let done = (w.to_ms - from) as f64 / (end - from).max(1) as f64;
                    tracing::info!(
                        tenant = %t.name,
                        covered_until = %rfc3339_s(w.to_ms),
                        progress = %format!("{:.0}%", done * 100.0),
                        events = report.inserted,
                        "backfill progress"
                    );
                }
            }
            drop(reads);
            if let Some(p) = storing.take() {
                self.finish_store(p, &mut report).await?;
            }
            if let Some((w, parts)) = split {
                self.collect_parts(w, parts, &mut report).await?;
            }
        }
        Ok(report)
    }

    /// Reads and stores the parts of a window that reached the cap, in order, splitting again
    /// where a part still does.
    async fn collect_parts(
        &self,
        w: Window,
        parts: Vec<Window>,
        report: &mut PollReport,
    ) -> Result<(), CollectError> {
        let mut queue: VecDeque<Window> = VecDeque::new();
        let mut split = Some((w, parts));
        loop {
            if let Some((whole, parts)) = split.take() {
                report.splits += 1;
                Stats::add(&self.stats.splits, 1);
                self.stats.count(
                    "workday_collector_window_splits_total",
                    &[("tenant", self.tenant.name.as_str())],
                    1,
                );
                tracing::debug!(tenant = %self.tenant.name, from = %rfc3339_s(whole.from_ms), to = %rfc3339_s(whole.to_ms), parts = parts.len(), "window reaches workday's 10,000-entry cap; splitting");
                for p in parts.into_iter().rev() {
                    queue.push_front(p);
                }
            }
            let Some(part) = queue.pop_front() else {
                break;
            };
            match self.read_window(part).await? {
                WindowRead::Split(sub) => split = Some((part, sub)),
                WindowRead::Complete(entries, pages) => {
                    self.store_window(part, entries, pages, report).await?;
                }
            }
        }
        Ok(())
    }

    /// Stores a window read completely (in `pages` pages) with the checkpoint that covers it.
    async fn store_window(
        &self,
        w: Window,
        entries: Vec<Box<RawValue>>,
        pages: u64,
        report: &mut PollReport,
    ) -> Result<(), CollectError> {
        let events = self.identify_window(entries);
        let p = self.start_store(w, events, pages);
        self.finish_store(p, report).await
    }

    /// Starts working out a complete window's events (ids, time order) on the blocking pool.
    fn identify_window(&self, entries: Vec<Box<RawValue>>) -> Identifying {
        let tenant = self.tenant.name.clone();
        tokio::task::spawn_blocking(move || {
            let ids = wire::identify(&tenant, &entries);
            // The entries' text moves into the events (no copy): a window is in memory once.
            let mut events: Vec<NewEvent> = entries
                .into_iter()
                .zip(ids)
                .map(|(raw, ident)| NewEvent {
                    id: ident.id,
                    request_time_ms: ident.request_time_ms,
                    raw: Box::<str>::from(raw).into_string(),
                })
                .collect();
            // Workday's pages come in no order. Stored in time order (as the dedup index is),
            // a window's inserts fill index pages one after another instead of rewriting every
            // page of the window's range in each transaction (a third of all bytes written in
            // a backfill), and sinks receive each window in time order.
            events.sort_unstable_by_key(|e| (e.request_time_ms.unwrap_or(0), e.id));
            events
        })
    }

    /// Starts storing a window (its events, then the checkpoint that covers it) in the
    /// background; [`Self::finish_store`] waits for it and accounts for it.
    fn start_store(&self, w: Window, events: Identifying, pages: u64) -> PendingStore {
        let tenant = self.tenant.name.clone();
        let collected_at = self.clock.now_ms();
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            let events = events
                .await
                .map_err(|e| anyhow::anyhow!("working out a window's ids failed: {e}"))?;
            store
                .call(move |s| s.insert_window(&tenant, &events, collected_at, Some(w.to_ms)))
                .await
        });
        PendingStore { w, pages, task }
    }

    async fn finish_store(
        &self,
        p: PendingStore,
        report: &mut PollReport,
    ) -> Result<(), CollectError> {
        let PendingStore { w, pages, task } = p;
        let out = task
            .await
            .map_err(|e| self.store_err(anyhow::anyhow!("storing a window failed: {e}")))?
            .map_err(|e| self.store_err(e))?;
        report.pages += pages;
        report.windows += 1;
        report.inserted += out.inserted;
        report.duplicates += out.duplicates;
        Stats::add(&self.stats.collected, out.inserted);
        Stats::add(&self.stats.duplicates, out.duplicates);
        let t = [("tenant", self.tenant.name.as_str())];
        self.stats
            .count("workday_collector_events_collected_total", &t, out.inserted);
        self.stats.count(
            "workday_collector_duplicates_absorbed_total",
            &t,
            out.duplicates,
        );
        self.stats.count("workday_collector_windows_total", &t, 1);
        self.stats.count(
            "workday_collector_late_events_total",
            &t,
            out.late_delays_ms.len() as u64,
        );
        for d in &out.late_delays_ms {
            self.stats
                .observe_late(&self.tenant.name, *d as f64 / 1000.0);
        }
        Stats::add(&self.stats.windows, 1);
        if out.inserted > 0 {
            self.stored.send_modify(|g| *g += 1);
        }
        tracing::debug!(tenant = %self.tenant.name, from = %rfc3339_s(w.from_ms), to = %rfc3339_s(w.to_ms), new = out.inserted, duplicates = out.duplicates, "window stored");
        Ok(())
    }

    /// Reads one window completely, or says how to split it.
    async fn read_window(&self, w: Window) -> Result<WindowRead, CollectError> {
        let limit = self.tenant.page_size;
        let q = |offset: u64| Query {
            from_ms: w.from_ms,
            to_ms: w.to_ms,
            limit,
            offset,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let first = self.page(q(0)).await?;
            let mut pages = 1;
            let total = first.total;
            if let Some(total) = total {
                if total >= ENTRY_CAP {
                    if ceil_s(w.to_ms) - floor_s(w.from_ms) > 2 * BOUNDARY_OVERLAP_MS {
                        return Ok(WindowRead::Split(split_window(w, total)));
                    }
                    Stats::add(&self.stats.truncated_windows, 1);
                    tracing::error!(
                        tenant = %self.tenant.name, from = %rfc3339_s(w.from_ms), to = %rfc3339_s(w.to_ms), total,
                        "one second holds more entries than workday serves for a query ({ENTRY_CAP}); {} entries of it cannot be read",
                        total - ENTRY_CAP
                    );
                }
            }
            let reachable = total.map(|t| t.min(ENTRY_CAP));
            let mut entries = first.entries;
            let mut changed = false;
            let full_page = u64::from(limit);
            match reachable {
                // The total is known and pages come full: every offset is known, so the rest
                // of the window is fetched in parallel and put together in offset order.
                Some(r) if entries.len() as u64 == full_page && r > full_page => {
                    let offsets = (1..).map(|i| i * full_page).take_while(|o| *o < r);
                    let mut rest = stream::iter(offsets)
                        .map(|offset| self.page(q(offset)))
                        .buffered(self.in_flight());
                    while let Some(page) = rest.next().await {
                        let page = page?;
                        pages += 1;
                        if page.total != total {
                            changed = true;
                            break;
                        }
                        entries.extend(page.entries);
                    }
                }
                _ => {
                    let mut last_len = entries.len();
                    loop {
                        let got = entries.len() as u64;
                        let more = match reachable {
                            Some(r) => got < r && last_len > 0,
                            // No total: page until a short page.
                            None => last_len as u64 == full_page,
                        };
                        if !more {
                            break;
                        }
                        let page = self.page(q(got)).await?;
                        pages += 1;
                        if page.total != total {
                            changed = true;
                            break;
                        }
                        last_len = page.entries.len();
                        entries.extend(page.entries);
                    }
                }
            }
            let short = reachable.is_some_and(|r| (entries.len() as u64) < r);
            if (changed || short) && attempt < CONSISTENCY_RETRIES {
                tracing::debug!(tenant = %self.tenant.name, from = %rfc3339_s(w.from_ms), to = %rfc3339_s(w.to_ms), changed, short, "window changed while paging; reading it again");
                continue;
            }
            if changed || short {
                tracing::warn!(
                    tenant = %self.tenant.name, from = %rfc3339_s(w.from_ms), to = %rfc3339_s(w.to_ms),
                    received = entries.len(), total = ?total,
                    "workday's answer for this window kept changing while it was paged; keeping what was received, the next poll's overlap reads it again"
                );
            }
            return Ok(WindowRead::Complete(entries, pages));
        }
    }

    async fn page(&self, q: Query) -> Result<Page, CollectError> {
        let client = self.client.clone();
        let limiter = self.limiter.clone();
        let page = self
            .with_retries(move |token| {
                let client = client.clone();
                let limiter = limiter.clone();
                Box::pin(async move {
                    let _slot = limiter.acquire().await;
                    client.page(&token, &q).await
                }) as ApiFuture<Page>
            })
            .await?;
        Stats::add(&self.stats.pages, 1);
        Ok(page)
    }

    /// Runs one request with a fresh token: a 401 refreshes once and retries; 429 waits for
    /// `Retry-After`; transient failures back off (capped, jittered) up to `max_attempts`.
    async fn with_retries<T, F>(&self, call: F) -> Result<T, CollectError>
    where
        F: Fn(Secret) -> ApiFuture<T>,
    {
        let t = &self.tenant;
        let mut attempt = 0u32;
        let mut refreshed = false;
        let tn = t.name.as_str();
        let api = |status: &str| {
            self.stats.count(
                "workday_collector_api_requests_total",
                &[("tenant", tn), ("status", status)],
                1,
            )
        };
        let refresh = |result: &str| {
            self.stats.count(
                "workday_collector_token_refreshes_total",
                &[("tenant", tn), ("result", result)],
                1,
            )
        };
        loop {
            let before = self.tokens.refresh_count();
            let token = self.tokens.access_token().await;
            match &token {
                Ok(_) if self.tokens.refresh_count() > before => refresh("ok"),
                Err(AuthError::NeedsPerson(_)) => refresh("rejected"),
                Err(_) => refresh("error"),
                Ok(_) => {}
            }
            let failure = match token {
                Err(AuthError::NeedsPerson(message)) => {
                    return Err(CollectError::NeedsPerson {
                        tenant: t.name.clone(),
                        message,
                        credentials: true,
                    })
                }
                Err(AuthError::Store(e)) => return Err(self.store_err(e.context("storing a rotated refresh token"))),
                Err(AuthError::Transient(m)) => (m, None),
                Ok(token) => match call(token.clone()).await.inspect(|_| api("200")).inspect_err(|e| {
                    api(match e {
                        ApiError::Unauthorized(_) => "401",
                        ApiError::RateLimited { .. } => "429",
                        ApiError::Transient(_) => "error",
                        ApiError::NeedsPerson(_) => "refused",
                    })
                }) {
                    Ok(v) => return Ok(v),
                    Err(ApiError::Unauthorized(m)) if !refreshed => {
                        tracing::debug!(tenant = %t.name, "workday answered 401 ({m}); refreshing the access token once");
                        refreshed = true;
                        self.tokens.invalidate(&token).await;
                        continue;
                    }
                    Err(ApiError::Unauthorized(m)) => {
                        return Err(self.needs_person(format!(
                            "workday rejected a freshly issued access token (401: {m}): check that the API client has the System scope"
                        )))
                    }
                    Err(ApiError::NeedsPerson(m)) => return Err(self.needs_person(m)),
                    Err(e @ ApiError::RateLimited { retry_after }) => (e.to_string(), retry_after),
                    Err(ApiError::Transient(m)) => (m, None),
                },
            };
            let (message, retry_after) = failure;
            attempt += 1;
            if attempt >= t.max_attempts {
                return Err(self.transient(format!("{message} (gave up after {attempt} attempts; the checkpoint stays where it was)")));
            }
            let wait = retry_after
                .map(|d| d.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| backoff(t.retry_initial, t.retry_max, attempt));
            if retry_after.is_some() {
                // A 429 is about the tenant, not this request: the parallel ones wait too.
                self.limiter.hold_off(wait);
            }
            if attempt == 1 {
                tracing::warn!(tenant = %t.name, error = %message, retry_in = ?wait, "workday request failed; retrying");
            } else {
                tracing::debug!(tenant = %t.name, error = %message, attempt, retry_in = ?wait, "workday request failed again");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Records how a poll ended, for `doctor` and `status`.
    pub async fn record(&self, result: Result<(), String>) {
        let tenant = self.tenant.name.clone();
        let now = self.clock.now_ms();
        let r = self
            .store
            .call(move |s| {
                s.poll_result(
                    &tenant,
                    result.as_ref().map(|_| ()).map_err(String::as_str),
                    now,
                )
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(tenant = %self.tenant.name, error = %format!("{e:#}"), "cannot record the poll result");
        }
    }

    /// Deletes events every sink has and that no future poll can read again.
    pub async fn prune(&self, sink_names: Vec<String>) -> Result<u64, CollectError> {
        let t = &self.tenant;
        let now = self.clock.now_ms();
        let horizon = (t.backfill + t.overlap).as_millis() as i64;
        let overlap = t.overlap.as_millis() as i64;
        let name = t.name.clone();
        let n = self
            .store
            .call(move |s| {
                let Some(cp) = s.checkpoint(&name)? else {
                    return Ok(0);
                };
                let Some(until) = cp.collected_until_ms else {
                    return Ok(0);
                };
                // Never below what the next poll re-reads, with an hour to spare.
                let before = (now - horizon).min(until - overlap - 3_600_000);
                let mut delivered = i64::MAX;
                for sink in &sink_names {
                    delivered = delivered.min(s.sink_cursor(sink)?.delivered_seq);
                }
                s.prune(&name, before, delivered)
            })
            .await
            .map_err(|e| self.store_err(e))?;
        Stats::add(&self.stats.pruned, n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_and_overlap_by_a_second() {
        let ws = plan_windows(0, 10_000_000, Duration::from_secs(3600));
        assert_eq!(ws.first().map(|w| w.from_ms), Some(0));
        assert_eq!(ws.last().map(|w| w.to_ms), Some(10_000_000));
        for pair in ws.windows(2) {
            assert_eq!(pair[1].from_ms, pair[0].to_ms - 1000);
        }
        assert!(ws.iter().all(|w| w.len_ms() <= 3_600_000));
        assert_eq!(plan_windows(5, 5, Duration::from_secs(60)), vec![]);
    }

    #[test]
    fn split_parts_fit_and_overlap() {
        let w = Window {
            from_ms: 1_000_000,
            to_ms: 1_000_000 + 3_600_000,
        };
        let parts = split_window(w, 26_000);
        assert!(parts.len() >= 4, "{parts:?}");
        assert_eq!(parts[0].from_ms, w.from_ms);
        assert_eq!(parts.last().map(|p| p.to_ms), Some(w.to_ms));
        for pair in parts.windows(2) {
            assert_eq!(pair[1].from_ms, pair[0].to_ms - 1000);
            assert!(pair[0].to_ms % 1000 == 0);
        }
        // A capped total (unknown true size) halves.
        assert_eq!(split_window(w, ENTRY_CAP).len(), 2);
        // Three seconds split into two-second parts that overlap, and always make progress.
        let tiny = split_window(
            Window {
                from_ms: 0,
                to_ms: 3000,
            },
            50_000,
        );
        assert_eq!(
            tiny,
            vec![
                Window {
                    from_ms: 0,
                    to_ms: 2000
                },
                Window {
                    from_ms: 1000,
                    to_ms: 3000
                }
            ]
        );
        let odd = split_window(
            Window {
                from_ms: 1500,
                to_ms: 9700,
            },
            90_000,
        );
        assert!(odd
            .windows(2)
            .all(|p| p[1].from_ms > p[0].from_ms && p[1].from_ms == p[0].to_ms - 1000));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let i = Duration::from_secs(1);
        let m = Duration::from_secs(60);
        let b1 = backoff(i, m, 1);
        assert!(b1 >= Duration::from_millis(500) && b1 <= i);
        let b10 = backoff(i, m, 10);
        assert!(b10 >= Duration::from_secs(30) && b10 <= m);
        assert!(backoff(i, m, 1000) <= m);
    }
}
