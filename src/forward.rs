//! Outbox → filter → sink → acknowledgement → cursor, for one sink.
//!
//! Every sink has its own cursor over the events table (in insertion order), so a sink that is
//! down holds back only its own queue. The cursor moves only after the sink acknowledged the
//! batch; a file sink's committed length, and any events the sink refused for good (dead
//! letters), move with it in the same transaction. Filtered events advance the cursor without
//! being sent. While a full batch is written and committed, the next one is already read and
//! rendered (a prefetch that is dropped if the cursor did not end where it starts). Memory is
//! two batches, whatever the backlog.

use crate::config::{Filter, SinkConfig};
use crate::normalize;
use crate::sink::{Ack, Batch, Sink, SinkError};
use crate::store::{SinkCursor, StoreHandle, StoredEvent};
use crate::telemetry::Stats;
use crate::workday::wire::parse_entry;
use anyhow::Result;
use std::sync::Arc;

pub struct Forwarder {
    pub cfg: SinkConfig,
    sink: Sink,
    cursor: SinkCursor,
    store: StoreHandle,
    stats: Arc<Stats>,
    pub delivered: u64,
    pub filtered: u64,
    pub dead_lettered: u64,
    /// Shrinks after a 413 and grows back one batch at a time.
    batch_limit: usize,
    prefetch: Option<Prefetch>,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("sink {sink}: {source:#}")]
    Store { sink: String, source: anyhow::Error },
}

/// Case-insensitive glob: `*` any run, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether an event passes a sink's filter.
pub fn passes(filter: &Filter, raw: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let e = parse_entry(raw);
    // A missing field is matched as "".
    let check = |include: &[String], exclude: &[String], value: Option<&str>| {
        let value = value.unwrap_or_default();
        (include.is_empty() || include.iter().any(|p| glob_match(p, value)))
            && !exclude.iter().any(|p| glob_match(p, value))
    };
    if filter.drop_own_api_calls
        && e.task_display_name
            .as_deref()
            .is_some_and(|t| t.starts_with("privacy/activityLogging"))
    {
        return false;
    }
    check(
        &filter.include_activity_actions,
        &filter.exclude_activity_actions,
        e.activity_action.as_deref(),
    ) && check(
        &filter.include_system_accounts,
        &filter.exclude_system_accounts,
        e.system_account.as_deref(),
    ) && check(
        &filter.include_task_display_names,
        &filter.exclude_task_display_names,
        e.task_display_name.as_deref(),
    )
}

/// Renders events into a batch, stopping at `max_batch_bytes` (always at least one). The
/// batch keeps the events it renders; the rest are dropped.
fn render_batch(cfg: &SinkConfig, mut events: Vec<StoredEvent>) -> (Batch, usize) {
    let estimate: usize = events.iter().map(|e| e.raw.len() * 3 + 300).sum();
    let mut batch = Batch::with_capacity(estimate.min(cfg.max_batch_bytes + 4096));
    for ev in &events {
        batch.push_line(|out| normalize::render(cfg.format, ev, out));
        if batch.len() > 1 && batch.bytes() > cfg.max_batch_bytes {
            batch.pop_line();
            break;
        }
    }
    let n = batch.len();
    events.truncate(n);
    batch.events = events;
    (batch, n)
}

/// A batch read from the outbox, filtered and rendered, ready to send.
struct Prepared {
    /// The seq of everything read (filtered events included), in order.
    seqs: Vec<i64>,
    /// The first `n` events that passed the filter, rendered (`batch.events`).
    batch: Batch,
    n: usize,
}

async fn prepare(
    store: &StoreHandle,
    cfg: &SinkConfig,
    after: i64,
    limit: usize,
) -> Result<Prepared> {
    let events = store.call(move |s| s.events_after(after, limit)).await?;
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let kept: Vec<StoredEvent> = if cfg.filter.is_empty() {
        events
    } else {
        events
            .into_iter()
            .filter(|e| passes(&cfg.filter, &e.raw))
            .collect()
    };
    let (batch, n) = render_batch(cfg, kept);
    Ok(Prepared { seqs, batch, n })
}

/// The next batch, read and rendered while the previous one is written and committed.
struct Prefetch {
    after: i64,
    limit: usize,
    task: tokio::task::JoinHandle<Result<Prepared>>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(p) = self.prefetch.take() {
            p.task.abort();
        }
    }
}

impl Forwarder {
    /// Opens the sink and reconciles it with its recorded cursor (a file sink cuts off a torn
    /// batch here).
    pub async fn open(cfg: SinkConfig, store: StoreHandle, stats: Arc<Stats>) -> Result<Forwarder> {
        let name = cfg.name.clone();
        let cursor = store.call(move |s| s.sink_cursor(&name)).await?;
        let sink_cfg = cfg.clone();
        let sink = tokio::task::spawn_blocking(move || Sink::open(&sink_cfg, &cursor)).await??;
        let batch_limit = cfg.batch_size;
        Ok(Forwarder {
            cfg,
            sink,
            cursor,
            store,
            stats,
            delivered: 0,
            filtered: 0,
            dead_lettered: 0,
            batch_limit,
            prefetch: None,
        })
    }

    fn store_err(&self, source: anyhow::Error) -> ForwardError {
        ForwardError::Store {
            sink: self.cfg.name.clone(),
            source,
        }
    }

    /// Delivers one batch; returns how many events it consumed (0: nothing pending).
    pub async fn deliver_batch(&mut self) -> Result<usize, ForwardError> {
        if self.replay_dead_letters().await? > 0 {
            return Ok(1);
        }
        let after = self.cursor.delivered_seq;
        let limit = self.batch_limit;
        // The batch prefetched while the last one was delivered, if it starts where the cursor
        // is now (a failed delivery or a smaller limit leaves it stale) and found something.
        let prefetched = match self.prefetch.take() {
            Some(p) if p.after == after && p.limit == limit => match p.task.await {
                Ok(Ok(prepared)) if !prepared.seqs.is_empty() => Some(prepared),
                Ok(Err(e)) => return Err(self.store_err(e)),
                _ => None,
            },
            Some(p) => {
                p.task.abort();
                None
            }
            None => None,
        };
        let prepared = match prefetched {
            Some(p) => p,
            None => prepare(&self.store, &self.cfg, after, limit)
                .await
                .map_err(|e| self.store_err(e))?,
        };
        let Prepared { seqs, batch, n } = prepared;
        if seqs.is_empty() {
            return Ok(0);
        }
        // The cursor may move past everything up to the last event sent (filtered ones
        // included), or past all fetched events when every one was filtered out.
        let last_seq = if n == 0 {
            seqs.last().copied().unwrap_or(after)
        } else {
            batch.events[n - 1].seq
        };
        let consumed = seqs.iter().filter(|s| **s <= last_seq).count();
        self.filtered += (consumed - n) as u64;
        // A full batch: more is likely queued. Read and render it while this one is written.
        if seqs.len() == limit {
            let (store, cfg) = (self.store.clone(), self.cfg.clone());
            self.prefetch = Some(Prefetch {
                after: last_seq,
                limit,
                task: tokio::spawn(async move { prepare(&store, &cfg, last_seq, limit).await }),
            });
        }
        let ack = if n == 0 {
            Ack::default()
        } else {
            match self.sink.deliver(&batch).await {
                Ok(a) => a,
                Err(SinkError::TooLarge(m)) if self.batch_limit > 1 => {
                    self.batch_limit = (n / 2).max(1);
                    tracing::warn!(sink = %self.cfg.name, error = %m, batch = self.batch_limit, "sending smaller batches");
                    return Ok(1);
                }
                Err(SinkError::TooLarge(m)) => Ack {
                    file_len: None,
                    rejected: vec![(0, m)],
                },
                Err(e) => return Err(e.into()),
            }
        };
        let dead: Vec<(StoredEvent, String)> = ack
            .rejected
            .iter()
            .filter_map(|(i, reason)| batch.events.get(*i).map(|e| (e.clone(), reason.clone())))
            .collect();
        let cursor = SinkCursor {
            delivered_seq: last_seq,
            file_len: ack.file_len.or(self.cursor.file_len),
        };
        let name = self.cfg.name.clone();
        let now = chrono::Utc::now().timestamp_millis();
        let dead_count = dead.len();
        if dead_count > 0 {
            tracing::warn!(sink = %self.cfg.name, events = dead_count, reason = %dead[0].1, "sink refused events for good; kept as dead letters (see 'workday-collector dead-letters')");
        }
        self.store
            .call(move |s| s.advance_sink_with_dead_letters(&name, cursor, &dead, now))
            .await
            .map_err(|e| self.store_err(e))?;
        self.cursor = cursor;
        // Rotation happens after the commit; see FileSink::rotate_if_due.
        if let Some(len) = tokio::task::block_in_place(|| self.sink.rotate_if_due()) {
            let cursor = SinkCursor {
                delivered_seq: last_seq,
                file_len: Some(len),
            };
            let name = self.cfg.name.clone();
            self.store
                .call(move |s| s.advance_sink(&name, cursor, now))
                .await
                .map_err(|e| self.store_err(e))?;
            self.cursor = cursor;
        }
        let sent = (n - dead_count) as u64;
        self.delivered += sent;
        self.dead_lettered += dead_count as u64;
        Stats::add(&self.stats.delivered, sent);
        let l = [("sink", self.cfg.name.as_str())];
        self.stats
            .count("workday_collector_delivered_total", &l, sent);
        self.stats.count(
            "workday_collector_dead_lettered_total",
            &l,
            dead_count as u64,
        );
        self.stats.count(
            "workday_collector_filtered_total",
            &l,
            (consumed - n) as u64,
        );
        if self.batch_limit < self.cfg.batch_size {
            self.batch_limit = (self.batch_limit * 2).min(self.cfg.batch_size);
        }
        tracing::debug!(sink = %self.cfg.name, events = n, up_to = last_seq, "batch delivered");
        Ok(consumed)
    }

    /// Sends dead letters marked for replay; returns how many were handled.
    async fn replay_dead_letters(&mut self) -> Result<usize, ForwardError> {
        let name = self.cfg.name.clone();
        let limit = self.batch_limit;
        let items = self
            .store
            .call(move |s| s.dead_letters_to_replay(&name, limit))
            .await
            .map_err(|e| self.store_err(e))?;
        if items.is_empty() {
            return Ok(0);
        }
        let events: Vec<StoredEvent> = items.iter().map(|(_, e)| e.clone()).collect();
        let (batch, n) = render_batch(&self.cfg, events);
        let ack = self.sink.deliver(&batch).await?;
        let refused: Vec<(i64, String)> = ack
            .rejected
            .iter()
            .filter_map(|(i, r)| items.get(*i).map(|(id, _)| (*id, r.clone())))
            .collect();
        let delivered: Vec<i64> = items[..n]
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !refused.iter().any(|(r, _)| r == id))
            .collect();
        let count = delivered.len();
        self.store
            .call(move |s| s.finish_replay(&delivered, &refused))
            .await
            .map_err(|e| self.store_err(e))?;
        self.delivered += count as u64;
        Stats::add(&self.stats.delivered, count as u64);
        tracing::info!(sink = %self.cfg.name, events = count, "replayed dead letters");
        Ok(n)
    }

    /// Delivers until nothing is pending.
    pub async fn deliver_pending(&mut self) -> Result<u64, ForwardError> {
        let mut n = 0;
        loop {
            let k = self.deliver_batch().await?;
            if k == 0 {
                return Ok(n);
            }
            n += k as u64;
        }
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Reopens file sinks at their paths.
    pub fn reopen(&mut self) -> Result<()> {
        tokio::task::block_in_place(|| self.sink.reopen())
    }

    pub fn cursor(&self) -> SinkCursor {
        self.cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("ISU_*", "isu_siem_integration"));
        assert!(glob_match("*compensation*", "Request Compensation Change"));
        assert!(glob_match("?ead", "READ"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("WRITE", "READ"));
        assert!(!glob_match("a*b", "acb c"));
    }

    #[test]
    fn filters() {
        let read = r#"{"activityAction":"READ","systemAccount":"lmcneil","taskDisplayName":"View Worker"}"#;
        let write = r#"{"activityAction":"WRITE","systemAccount":"ISU_SIEM","taskDisplayName":"Change Job"}"#;
        let own = r#"{"activityAction":"READ","systemAccount":"ISU_SIEM","taskDisplayName":"privacy/activityLogging/userActivity (GET) (v1 -  )"}"#;
        let mut f = Filter::default();
        assert!(passes(&f, read) && passes(&f, own));
        f.drop_own_api_calls = true;
        assert!(passes(&f, read) && !passes(&f, own));
        f.include_activity_actions = vec!["write".into()];
        assert!(!passes(&f, read) && passes(&f, write));
        f.exclude_system_accounts = vec!["ISU_*".into()];
        assert!(!passes(&f, write));
        let f = Filter {
            include_task_display_names: vec!["*job*".into()],
            ..Filter::default()
        };
        assert!(passes(&f, write) && !passes(&f, read));
    }
}
