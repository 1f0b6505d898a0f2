//! Where rendered events go. Each sink type lives in its own file; a delivery returns only once
//! the destination has the batch (a file: written and flushed to disk; HTTP: a 2xx answer), and
//! says which events it refused for good (they go to the dead-letter table).
//! It does not choose what to send or move cursors (see `forward`).

mod elasticsearch;
mod file;
mod http;
mod splunk_hec;
mod stdout;
mod syslog;

pub use elasticsearch::EsSink;
pub use file::FileSink;
pub use http::HttpSink;
pub use splunk_hec::HecSink;
pub use stdout::StdoutSink;
pub use syslog::SyslogSink;

use crate::config::{SinkConfig, SinkKind};
use crate::store::SinkCursor;
use std::time::Duration;

/// What a sink acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// For file sinks: the file's committed length after the batch.
    pub file_len: Option<u64>,
    /// Events (indices into the batch) refused for good, with the reason.
    pub rejected: Vec<(usize, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (disk full, 5xx, 429, a network error…).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The batch is too large for the receiver: send fewer events at a time.
    #[error("{0}")]
    TooLarge(String),
    /// The receiver refuses our credentials or configuration: a person must act. The events
    /// stay queued.
    #[error("{0}")]
    NeedsPerson(String),
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Rendered events, one JSON document each, without newlines, with the events they render.
pub struct Batch {
    pub lines: Vec<Vec<u8>>,
    pub events: Vec<crate::store::StoredEvent>,
}

impl Batch {
    /// The events as newline-terminated lines.
    pub fn joined(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 1).sum());
        for l in &self.lines {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        out
    }
}

pub enum Sink {
    File(FileSink),
    Stdout(StdoutSink),
    Http(HttpSink),
    SplunkHec(HecSink),
    Elasticsearch(EsSink),
    Syslog(SyslogSink),
}

impl Sink {
    /// Opens the sink and reconciles it with what the database says it holds.
    pub fn open(cfg: &SinkConfig, cursor: &SinkCursor) -> anyhow::Result<Sink> {
        Ok(match &cfg.kind {
            SinkKind::File {
                path,
                rotate_bytes,
                rotate_keep,
            } => Sink::File(
                FileSink::open(&cfg.name, path, cursor.file_len)?
                    .with_rotation(*rotate_bytes, *rotate_keep),
            ),
            SinkKind::Stdout => Sink::Stdout(StdoutSink::new()),
            SinkKind::Http(h) => Sink::Http(HttpSink::new(&cfg.name, (**h).clone())?),
            SinkKind::SplunkHec(h) => Sink::SplunkHec(HecSink::new(&cfg.name, (**h).clone())?),
            SinkKind::Elasticsearch(e) => {
                Sink::Elasticsearch(EsSink::new(&cfg.name, (**e).clone())?)
            }
            SinkKind::Syslog(s) => Sink::Syslog(SyslogSink::new(&cfg.name, (**s).clone())?),
        })
    }

    /// After a batch was committed: rotates a full file; returns its new length to record.
    pub fn rotate_if_due(&mut self) -> Option<u64> {
        match self {
            Sink::File(f) => f.rotate_if_due(),
            _ => None,
        }
    }

    /// Reopens files at their configured path (after logrotate moved them: SIGHUP).
    pub fn reopen(&mut self) -> anyhow::Result<()> {
        match self {
            Sink::File(f) => f.reopen(),
            _ => Ok(()),
        }
    }

    pub async fn deliver(&mut self, batch: &Batch) -> Result<Ack, SinkError> {
        match self {
            Sink::File(f) => {
                let lines = batch.joined();
                tokio::task::block_in_place(|| f.append(&lines))
            }
            Sink::Stdout(s) => {
                let lines = batch.joined();
                tokio::task::block_in_place(|| s.write(&lines))
            }
            Sink::Http(h) => h.send(batch).await,
            Sink::SplunkHec(h) => h.send(batch).await,
            Sink::Elasticsearch(e) => e.send(batch).await,
            Sink::Syslog(s) => s.send(batch).await,
        }
    }
}
