//! The stdout sink: one line per event, for `journalctl` and containers. Delivered means
//! written and flushed to the pipe; what reads it may still lose it (at least once at best).

use super::{Ack, SinkError};
use std::io::Write;

#[derive(Default)]
pub struct StdoutSink;

impl StdoutSink {
    pub fn new() -> Self {
        StdoutSink
    }

    pub fn write(&mut self, lines: &[u8]) -> Result<Ack, SinkError> {
        let mut out = std::io::stdout().lock();
        out.write_all(lines)
            .and_then(|_| out.flush())
            .map_err(|e| SinkError::transient(format!("cannot write to stdout: {e}")))?;
        Ok(Ack::default())
    }
}
