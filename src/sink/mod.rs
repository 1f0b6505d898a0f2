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
/// The lines sit in one buffer, each followed by a newline, so a file sink writes it as is.
#[derive(Default)]
pub struct Batch {
    text: Vec<u8>,
    /// Where each line ends (before its newline).
    ends: Vec<usize>,
    pub events: Vec<crate::store::StoredEvent>,
}

impl Batch {
    pub fn with_capacity(bytes: usize) -> Batch {
        Batch {
            text: Vec::with_capacity(bytes),
            ..Batch::default()
        }
    }

    /// Appends the line `write` puts into the buffer (it must not write a newline).
    pub fn push_line(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.text);
        self.ends.push(self.text.len());
        self.text.push(b'\n');
    }

    /// Drops the last line (it made the batch too large).
    pub fn pop_line(&mut self) {
        self.ends.pop();
        let end = self.ends.last().map_or(0, |e| e + 1);
        self.text.truncate(end);
    }

    /// Bytes of the lines with their newlines.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Line `i`, without its newline.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        &self.text[start..self.ends[i]]
    }

    /// The lines from `start` on, without newlines.
    pub fn lines_from(&self, start: usize) -> impl Iterator<Item = &[u8]> + '_ {
        (start..self.len()).map(|i| self.line(i))
    }

    pub fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.lines_from(0)
    }

    /// The events as newline-terminated lines.
    pub fn joined(&self) -> &[u8] {
        &self.text
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
            Sink::File(f) => tokio::task::block_in_place(|| f.append(batch.joined())),
            Sink::Stdout(s) => tokio::task::block_in_place(|| s.write(batch.joined())),
            Sink::Http(h) => h.send(batch).await,
            Sink::SplunkHec(h) => h.send(batch).await,
            Sink::Elasticsearch(e) => e.send(batch).await,
            Sink::Syslog(s) => s.send(batch).await,
        }
    }
}
