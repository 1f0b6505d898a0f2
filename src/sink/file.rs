//! The file sink: one JSON object per line, exactly once across crashes.
//!
//! The database records the file's committed length with the sink's cursor. A batch is written,
//! flushed to disk (`fdatasync`), and only then is the cursor moved. On start, anything past the
//! committed length is a batch whose cursor never moved: it is cut off and written again.

use super::{Ack, SinkError};
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct FileSink {
    name: String,
    path: PathBuf,
    file: File,
    /// Length of the file up to the last acknowledged batch.
    len: u64,
    /// A write failed part-way: cut back to `len` before the next one.
    dirty: bool,
}

impl FileSink {
    pub fn open(name: &str, path: &Path, committed: Option<u64>) -> anyhow::Result<FileSink> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("sink {name}: cannot create directory {}", dir.display())
                })?;
            }
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        let mut file = opts
            .open(path)
            .with_context(|| format!("sink {name}: cannot open {}", path.display()))?;
        let actual = file
            .metadata()
            .with_context(|| format!("sink {name}: cannot stat {}", path.display()))?
            .len();
        let len = match committed {
            Some(c) if actual > c => {
                tracing::info!(sink = %name, path = %path.display(), bytes = actual - c, "cutting off a batch that was written but not acknowledged; it is written again");
                file.set_len(c)
                    .and_then(|_| file.sync_data())
                    .with_context(|| format!("sink {name}: cannot truncate {}", path.display()))?;
                c
            }
            Some(c) if actual < c => {
                tracing::warn!(sink = %name, path = %path.display(), expected = c, found = actual, "file is shorter than what was delivered to it (rotated or truncated by something else?); appending from its current end");
                actual
            }
            _ => actual,
        };
        file.seek(SeekFrom::Start(len))
            .with_context(|| format!("sink {name}: cannot seek in {}", path.display()))?;
        Ok(FileSink {
            name: name.to_string(),
            path: path.to_path_buf(),
            file,
            len,
            dirty: false,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn append(&mut self, lines: &[u8]) -> Result<Ack, SinkError> {
        let err = |what: &str, e: std::io::Error| {
            SinkError::transient(format!(
                "sink {}: cannot {what} {}: {e}",
                self.name,
                self.path.display()
            ))
        };
        if self.dirty {
            self.file
                .set_len(self.len)
                .map_err(|e| err("truncate", e))?;
            self.file
                .seek(SeekFrom::Start(self.len))
                .map_err(|e| err("seek in", e))?;
            self.dirty = false;
        }
        self.dirty = true;
        self.file.write_all(lines).map_err(|e| err("write to", e))?;
        self.file.sync_data().map_err(|e| err("flush", e))?;
        self.dirty = false;
        self.len += lines.len() as u64;
        Ok(Ack {
            file_len: Some(self.len),
            rejected: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unacknowledged_tail_is_cut_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/events.jsonl");
        let mut s = FileSink::open("f", &path, None).expect("open");
        let d = s.append(b"{\"a\":1}\n").expect("append");
        assert_eq!(d.file_len, Some(8));
        s.append(b"{\"b\":2}\n{\"c\"").expect("append");
        drop(s);
        // Only the first batch was acknowledged.
        let mut s = FileSink::open("f", &path, Some(8)).expect("reopen");
        assert_eq!(s.len(), 8);
        s.append(b"{\"b\":2}\n").expect("append");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"a\":1}\n{\"b\":2}\n"
        );
    }

    #[test]
    fn shorter_file_appends_from_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, b"x\n").expect("write");
        let s = FileSink::open("f", &path, Some(100)).expect("open");
        assert_eq!(s.len(), 2);
    }
}
