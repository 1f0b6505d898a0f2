//! Where rendered events go. Each sink type lives in its own file behind [`Sink`]; a delivery
//! returns only once the destination has the batch (for a file: written and flushed to disk).
//! It does not choose what to send or move cursors (see `forward`).

mod file;
mod stdout;

pub use file::FileSink;
pub use stdout::StdoutSink;

use crate::config::{SinkConfig, SinkKind};
use crate::store::SinkCursor;

/// What a sink acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// For file sinks: the file's committed length after the batch.
    pub file_len: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (disk full, a closed pipe that may come back…).
    #[error("{0}")]
    Transient(String),
}

pub enum Sink {
    File(FileSink),
    Stdout(StdoutSink),
}

impl Sink {
    /// Opens the sink and reconciles it with what the database says it holds.
    pub fn open(cfg: &SinkConfig, cursor: &SinkCursor) -> anyhow::Result<Sink> {
        Ok(match &cfg.kind {
            SinkKind::File { path } => {
                Sink::File(FileSink::open(&cfg.name, path, cursor.file_len)?)
            }
            SinkKind::Stdout => Sink::Stdout(StdoutSink::new()),
        })
    }

    /// Delivers `lines` (each ending in `\n`), holding `count` events.
    pub async fn deliver(&mut self, lines: &[u8], count: usize) -> Result<Delivered, SinkError> {
        let _ = count;
        match self {
            Sink::File(f) => tokio::task::block_in_place(|| f.append(lines)),
            Sink::Stdout(s) => tokio::task::block_in_place(|| s.write(lines)),
        }
    }
}
