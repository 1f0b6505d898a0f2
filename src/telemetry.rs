//! Logging set-up and the counters the daemon keeps about itself.
//!
//! Logs go to stderr: human-readable on a terminal, without our own timestamps under journald
//! (`JOURNAL_STREAM`), or JSON for shippers. Counters are plain atomics read by the `demo --once`
//! summary (and, later, metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; `RUST_LOG` overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},hyper=warn,reqwest=warn,h2=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            builder.without_time().with_ansi(false).try_init()
        }
        LogFormat::Text => builder.try_init(),
    };
}

/// What the daemon has done since it started.
#[derive(Debug, Default)]
pub struct Stats {
    pub collected: AtomicU64,
    pub duplicates: AtomicU64,
    pub pages: AtomicU64,
    pub windows: AtomicU64,
    pub splits: AtomicU64,
    pub truncated_windows: AtomicU64,
    pub delivered: AtomicU64,
    pub pruned: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
