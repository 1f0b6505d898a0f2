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
    },
}
