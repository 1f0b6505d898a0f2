//! Outbox → sink → acknowledgement → cursor, for one sink.
//!
//! Every sink has its own cursor over the events table (in insertion order), so a sink that is
//! down holds back only its own queue. The cursor moves only after the sink acknowledged the
//! batch; a file sink's committed length moves with it, in the same transaction.
//! Memory is one batch, whatever the backlog.

use crate::config::SinkConfig;
use crate::normalize;
use crate::sink::{Sink, SinkError};
use crate::store::{SinkCursor, StoreHandle};
use crate::telemetry::Stats;
use anyhow::Result;
use std::sync::Arc;

pub struct Forwarder {
    pub cfg: SinkConfig,
    sink: Sink,
    cursor: SinkCursor,
    store: StoreHandle,
    stats: Arc<Stats>,
    pub delivered: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("sink {sink}: {source:#}")]
    Store { sink: String, source: anyhow::Error },
}

impl Forwarder {
    /// Opens the sink and reconciles it with its recorded cursor (a file sink cuts off a torn
    /// batch here).
    pub async fn open(cfg: SinkConfig, store: StoreHandle, stats: Arc<Stats>) -> Result<Forwarder> {
        let name = cfg.name.clone();
        let cursor = store.call(move |s| s.sink_cursor(&name)).await?;
        let sink_cfg = cfg.clone();
        let sink = tokio::task::spawn_blocking(move || Sink::open(&sink_cfg, &cursor)).await??;
        Ok(Forwarder {
            cfg,
            sink,
            cursor,
            store,
            stats,
            delivered: 0,
        })
    }

    /// Delivers one batch; returns how many events it held (0: nothing pending).
    pub async fn deliver_batch(&mut self) -> Result<usize, ForwardError> {
        let after = self.cursor.delivered_seq;
        let limit = self.cfg.batch_size;
        let store_err = |sink: &str, source| ForwardError::Store {
            sink: sink.to_string(),
            source,
        };
        let events = self
            .store
            .call(move |s| s.events_after(after, limit))
            .await
            .map_err(|e| store_err(&self.cfg.name, e))?;
        let Some(last) = events.last() else {
            return Ok(0);
        };
        let last_seq = last.seq;
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.raw.len() + 160).sum());
        for ev in &events {
            normalize::render(self.cfg.format, ev, &mut buf);
            buf.push(b'\n');
        }
        let ack = self.sink.deliver(&buf, events.len()).await?;
        let cursor = SinkCursor {
            delivered_seq: last_seq,
            file_len: ack.file_len.or(self.cursor.file_len),
        };
        let name = self.cfg.name.clone();
        let now = chrono::Utc::now().timestamp_millis();
        self.store
            .call(move |s| s.advance_sink(&name, cursor, now))
            .await
            .map_err(|e| store_err(&self.cfg.name, e))?;
        self.cursor = cursor;
        self.delivered += events.len() as u64;
        Stats::add(&self.stats.delivered, events.len() as u64);
        tracing::debug!(sink = %self.cfg.name, events = events.len(), up_to = last_seq, "batch delivered");
        Ok(events.len())
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

    pub fn cursor(&self) -> SinkCursor {
        self.cursor
    }
}
