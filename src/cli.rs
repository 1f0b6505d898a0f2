//! Subcommands and flags: the public command-line interface.

use crate::telemetry::LogFormat;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "workday-collector",
    version,
    about = "Collects a Workday tenant's user activity log into your SIEM, exactly once"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: text (no timestamps under journald) or json.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect and deliver until SIGTERM/SIGINT.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// One full cycle: every tenant collected up to now − lag, everything delivered, exit.
        #[arg(long)]
        once: bool,
    },
    /// Sign in to Workday once (authorization code with PKCE) or import a refresh token, store
    /// it where the daemon reads it, and test the connection.
    Authorize {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
        /// The URL the browser was sent to after Allow (or just its code), to finish a sign-in
        /// started earlier without waiting at a prompt.
        #[arg(long, conflicts_with = "import_refresh_token")]
        code: Option<String>,
        /// A refresh token generated in Workday (Manage Refresh Tokens for Integrations): a file,
        /// or - for standard input.
        #[arg(long, value_name = "FILE")]
        import_refresh_token: Option<PathBuf>,
    },
    /// Check config, state, endpoints, credentials, permissions, clock and sinks; say what to fix.
    Doctor {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        tenant: Option<String>,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per tenant: checkpoint, lag, last success and error, credential state; per sink: queue
    /// depth, oldest undelivered, dead letters. Safe while the daemon runs.
    Status {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List events a sink refused for good, or mark them to be sent again.
    DeadLetters {
        #[arg(long)]
        config: PathBuf,
        /// Only this sink.
        #[arg(long)]
        sink: Option<String>,
        /// Send them again (a running daemon does so within seconds; or run --once).
        #[arg(long)]
        replay: bool,
    },
    /// Validate a config file and report every problem at once.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run against a built-in simulated tenant on loopback, writing into a local folder.
    Demo {
        /// One cycle, then a summary.
        #[arg(long)]
        once: bool,
        /// Where the config, state and events go (wiped of earlier demo state first).
        #[arg(long, default_value = "demo-output")]
        dir: PathBuf,
        /// Events in the simulated tenant's last seven days (a busy hour of 26,000 comes on top).
        #[arg(long, default_value_t = 200_000)]
        events: u64,
    },
    /// Run the Workday simulator alone and print its endpoints and credentials.
    Simulate {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Events in the last seven days.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Events in one busy hour three days ago (above Workday's 10,000 cap by default).
        #[arg(long, default_value_t = 26_000)]
        busy_hour_events: u64,
        /// Issue a new refresh token on every refresh and invalidate the old one.
        #[arg(long)]
        rotate_refresh_tokens: bool,
        /// `expires_in` in token responses; -1 as some Workday clients send, 0 to omit it.
        #[arg(long, default_value_t = 3600, allow_hyphen_values = true)]
        expires_in: i64,
        /// Also write a collector config for this simulator (and its secrets) into this folder.
        #[arg(long, value_name = "DIR")]
        write_config: Option<PathBuf>,
        /// Delay every activity-log answer by this much, as a distant tenant would.
        #[arg(long, default_value_t = 0)]
        page_latency_ms: u64,
    },
    /// End-to-end benchmark: backfill a simulated tenant through SQLite into a file sink and
    /// report events/s, peak RSS, database size, CPU per event and idle CPU.
    Bench {
        /// Events in the simulated tenant's last seven days (a busy hour of 26,000 on top).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Output format of the file sink: raw, ocsf or ecs.
        #[arg(long, default_value = "ocsf")]
        format: String,
        /// Latency-bound mode: every page answer is delayed (see --page-latency-ms) and the
        /// backfill is set against the ideal for the request concurrency and rate.
        #[arg(long)]
        latency: bool,
        /// The delay per page in latency-bound mode.
        #[arg(long, default_value_t = 300)]
        page_latency_ms: u64,
        /// Requests in flight (default: 4 for throughput, the config default 3 with --latency).
        #[arg(long)]
        max_concurrent_requests: Option<u32>,
        /// Requests started per second, 0 for no limit (default: none for throughput, the config
        /// default 10 with --latency).
        #[arg(long)]
        max_requests_per_second: Option<u32>,
        /// How long to watch the daemon idle between polls after the backfill.
        #[arg(long, default_value_t = 10)]
        idle_seconds: u64,
        /// Working folder (cleared first; removed afterwards unless --keep).
        #[arg(long, default_value = "bench-output")]
        dir: PathBuf,
        #[arg(long)]
        keep: bool,
    },
}
