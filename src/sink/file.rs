//! The file sink: one JSON object per line, exactly once across crashes.
//!
//! The database records the file's committed length with the sink's cursor. A batch is written,
//! flushed to disk (`fdatasync`), and only then is the cursor moved. On start, anything past the
//! committed length is a batch whose cursor never moved: it is cut off and written again.
//!
//! Rotation (`rotate_bytes`): after a batch leaves the file past the limit, it is renamed to
//! `.1` (older ones shift to `.2`…, at most `rotate_keep`) and a new file is started, as
//! tailing agents expect (they follow the rename by inode). A crash between the rename and the
//! next commit leaves a new file shorter than recorded, which is appended to: nothing is lost
//! or doubled. On SIGHUP the file is reopened at its path (after an external logrotate).

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
    rotate_bytes: Option<u64>,
    rotate_keep: u32,
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
            rotate_bytes: None,
            rotate_keep: 5,
        })
    }

    pub fn with_rotation(mut self, rotate_bytes: Option<u64>, rotate_keep: u32) -> Self {
        self.rotate_bytes = rotate_bytes;
        self.rotate_keep = rotate_keep.max(1);
        self
    }

    /// Opens the file at the path again, appending from its current end.
    pub fn reopen(&mut self) -> anyhow::Result<()> {
        let fresh = FileSink::open(&self.name, &self.path, None)?;
        self.file = fresh.file;
        self.len = fresh.len;
        self.dirty = false;
        tracing::info!(sink = %self.name, path = %self.path.display(), "reopened the file");
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// Rotates when the file has reached `rotate_bytes`; returns the new (empty) length.
    /// Called only after the batch that filled it was committed, so a crash between the rename
    /// and recording the new length leaves a file shorter than recorded, which is appended to:
    /// nothing is written twice.
    pub fn rotate_if_due(&mut self) -> Option<u64> {
        if self.rotate_bytes.is_none_or(|max| self.len < max) {
            return None;
        }
        match self.rotate() {
            Ok(()) => Some(0),
            Err(e) => {
                tracing::warn!(sink = %self.name, error = %e, "cannot rotate the file; will try again");
                None
            }
        }
    }

    /// Shifts `.1`… up, renames the file to `.1`, starts a new one.
    fn rotate(&mut self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.rotated(self.rotate_keep));
        for n in (1..self.rotate_keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        let fresh = FileSink::open(&self.name, &self.path, None).map_err(std::io::Error::other)?;
        self.file = fresh.file;
        self.len = 0;
        tracing::info!(sink = %self.name, path = %self.path.display(), "rotated the file");
        Ok(())
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
    fn rotates_past_the_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut s = FileSink::open("f", &path, None)
            .expect("open")
            .with_rotation(Some(10), 2);
        for i in 0..5 {
            s.append(format!("{{\"n\":{i}}}\n").as_bytes())
                .expect("append");
            // Rotation is separate from the append: the caller commits first.
            assert_eq!(
                s.rotate_if_due().is_some(),
                i % 2 == 1,
                "rotates after every second line"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&path).expect("current"),
            "{\"n\":4}\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("events.jsonl.1")).expect(".1"),
            "{\"n\":2}\n{\"n\":3}\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("events.jsonl.2")).expect(".2"),
            "{\"n\":0}\n{\"n\":1}\n"
        );
        assert!(!dir.path().join("events.jsonl.3").exists());
    }

    #[test]
    fn reopen_follows_an_external_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut s = FileSink::open("f", &path, None).expect("open");
        s.append(b"a\n").expect("append");
        std::fs::rename(&path, dir.path().join("moved")).expect("logrotate");
        s.reopen().expect("reopen");
        s.append(b"b\n").expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "b\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("moved")).expect("old"),
            "a\n"
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
