//! Shared set-up: a simulator, a config in a temp dir, runs of the daemon, and ground truth.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use workday_collector::clock::{ms_to_datetime, Clock};
use workday_collector::config::Config;
use workday_collector::daemon::{self, RunOptions, RunSummary};
use workday_collector::sim::{SimConfig, SimHandle};

pub const MIN_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub clock: Clock,
    pub sim: SimHandle,
    /// The frozen clock's start, a whole second.
    pub t0: i64,
    pub config_path: PathBuf,
}

/// Knobs for the collector's config in tests.
pub struct Knobs {
    pub poll_interval: &'static str,
    pub lag: &'static str,
    pub max_attempts: u32,
    pub extra: String,
    /// Write `refresh_token_file` (an integration client); false for sign-in clients.
    pub refresh_token_file: bool,
    /// `metrics_listen`: "off" unless a test serves metrics.
    pub metrics_listen: String,
    pub page_size: u32,
    pub max_concurrent_requests: u32,
    /// 0: no limit (the simulator is local; tests that time the limiter set it).
    pub max_requests_per_second: u32,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            poll_interval: "1s",
            lag: "2m",
            max_attempts: 8,
            extra: String::new(),
            refresh_token_file: true,
            metrics_listen: "off".into(),
            page_size: 1000,
            max_concurrent_requests: 3,
            max_requests_per_second: 0,
        }
    }
}

/// The built binary.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_workday-collector"))
}

/// A whole-second "now" for frozen clocks.
pub fn whole_second_now() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % 1000
}

impl Env {
    /// A simulator on a frozen clock holding `events` over seven days plus a busy hour.
    pub async fn frozen(
        seed: u64,
        events: u64,
        busy: u64,
        tweak: impl FnOnce(&mut SimConfig),
    ) -> Env {
        let t0 = whole_second_now();
        let clock = Clock::frozen(ms_to_datetime(t0));
        let mut cfg = SimConfig::new(t0, seed, events, busy);
        tweak(&mut cfg);
        Self::start(cfg, clock, t0).await
    }

    /// Like `frozen`, at a given instant.
    pub async fn frozen_at(
        t0: i64,
        seed: u64,
        events: u64,
        tweak: impl FnOnce(&mut SimConfig),
    ) -> Env {
        let clock = Clock::frozen(ms_to_datetime(t0));
        let mut cfg = SimConfig::new(t0, seed, events, 0);
        tweak(&mut cfg);
        Self::start(cfg, clock, t0).await
    }

    /// A simulator on the system clock (for tests that run the binary).
    pub async fn live(
        seed: u64,
        events: u64,
        busy: u64,
        tweak: impl FnOnce(&mut SimConfig),
    ) -> Env {
        let clock = Clock::system();
        let t0 = clock.now_ms();
        let mut cfg = SimConfig::new(t0, seed, events, busy);
        tweak(&mut cfg);
        Self::start(cfg, clock, t0).await
    }

    async fn start(cfg: SimConfig, clock: Clock, t0: i64) -> Env {
        let sim = SimHandle::start(cfg, clock.clone(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        let env = Env {
            dir,
            clock,
            sim,
            t0,
            config_path,
        };
        env.write_config(&Knobs::default());
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self, k: &Knobs) {
        std::fs::write(self.path("client-secret"), &self.sim.config().client_secret)
            .expect("write");
        if !self.path("refresh-token").exists() {
            std::fs::write(self.path("refresh-token"), &self.sim.config().refresh_token)
                .expect("write");
        }
        let text = format!(
            r#"state_dir = "state"
metrics_listen = "{metrics}"

[[tenant]]
name = "acme"
rest_api_endpoint = "{rest}"
token_endpoint = "{token}"
client_id = "{client_id}"
client_secret_file = "client-secret"
{refresh}authorization_endpoint = "{authz}"
backfill = "7d"
poll_interval = "{poll}"
lag = "{lag}"
overlap = "15m"
page_size = {page_size}
retry_initial = "20ms"
retry_max = "200ms"
max_attempts = {attempts}
max_concurrent_requests = {concurrency}
max_requests_per_second = {rate}
{extra}

[[sink]]
name = "siem-file"
type = "file"
path = "events.jsonl"
format = "raw"
"#,
            rest = self.sim.rest_api_endpoint(),
            token = self.sim.token_endpoint(),
            client_id = self.sim.config().client_id,
            poll = k.poll_interval,
            lag = k.lag,
            attempts = k.max_attempts,
            extra = k.extra,
            refresh = if k.refresh_token_file {
                "refresh_token_file = \"refresh-token\"\n"
            } else {
                ""
            },
            authz = self.sim.authorization_endpoint(),
            metrics = k.metrics_listen,
            page_size = k.page_size,
            concurrency = k.max_concurrent_requests,
            rate = k.max_requests_per_second,
        );
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// Replaces `from`, which must be in the config file, with `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let cfg = std::fs::read_to_string(&self.config_path).expect("read config");
        assert!(cfg.contains(from), "config has no {from:?}");
        std::fs::write(&self.config_path, cfg.replace(from, to)).expect("write config");
    }

    /// Appends a TOML fragment (a sink, a tenant) to the config file.
    pub fn append_config(&self, toml: &str) {
        let cfg = std::fs::read_to_string(&self.config_path).expect("read config");
        std::fs::write(&self.config_path, format!("{cfg}\n{toml}\n")).expect("write config");
    }

    /// The built binary running `args --config <this env's config>` in the background, its
    /// output discarded.
    pub fn spawn_binary(&self, args: &[&str]) -> std::process::Child {
        bin()
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the binary")
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).expect("config loads")
    }

    /// One `run --once` in-process, on this env's clock.
    pub async fn run_once(&self) -> anyhow::Result<RunSummary> {
        let (_tx, rx) = watch::channel(false);
        let mut opts = RunOptions::new(true, rx);
        opts.clock = self.clock.clone();
        daemon::run(self.config(), opts).await
    }

    /// The daemon in continuous mode, in-process, on this env's clock; send `true` to stop it.
    pub fn spawn_daemon(
        &self,
    ) -> (
        watch::Sender<bool>,
        tokio::task::JoinHandle<anyhow::Result<RunSummary>>,
    ) {
        let (tx, rx) = watch::channel(false);
        let mut opts = RunOptions::new(false, rx);
        opts.clock = self.clock.clone();
        (tx, tokio::spawn(daemon::run(self.config(), opts)))
    }

    /// `run --once` with the built binary; it must succeed.
    pub fn run_binary_once(&self) -> std::process::Output {
        let out = bin()
            .args(["run", "--once", "--config"])
            .arg(&self.config_path)
            .output()
            .expect("run the binary");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The `event` of every line of the file sink, exactly as written, checking each line.
    pub fn delivered(&self) -> Vec<String> {
        read_events(&self.path("events.jsonl"))
    }

    /// What the file sink must hold after collecting up to `t0 + advanced − lag`.
    pub fn truth(&self, lag_ms: i64) -> Vec<String> {
        let now = self.clock.now_ms();
        self.sim.visible_entries(self.t0 - 7 * DAY_MS, now - lag_ms)
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    id: String,
    tenant: String,
    source: String,
    collected_at: String,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// Parses the file sink, checking every line's shape and that ids are unique.
pub fn read_events(path: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "file ends in a torn line"
    );
    let mut ids = HashSet::new();
    text.lines()
        .map(|l| {
            let line: Line =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
            assert_eq!(line.id.len(), 64);
            assert_eq!(line.tenant, "acme");
            assert_eq!(line.source, "workday.activity");
            assert!(workday_collector::clock::parse_rfc3339_ms(&line.collected_at).is_some());
            assert!(
                ids.insert(line.id.clone()),
                "event id {} delivered twice",
                line.id
            );
            line.event.get().to_string()
        })
        .collect()
}

/// Complete lines in a file another task may be appending to (a tailing agent's view).
pub fn complete_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Compares two collections as multisets, reporting the difference briefly.
pub fn assert_same_multiset(got: &[String], want: &[String]) {
    fn count(xs: &[String]) -> BTreeMap<&str, i64> {
        let mut m: BTreeMap<&str, i64> = BTreeMap::new();
        for x in xs {
            *m.entry(x.as_str()).or_default() += 1;
        }
        m
    }
    let (g, w) = (count(got), count(want));
    if g != w {
        let missing: Vec<_> = w
            .iter()
            .filter(|(k, n)| g.get(*k).copied().unwrap_or(0) < **n)
            .take(3)
            .collect();
        let extra: Vec<_> = g
            .iter()
            .filter(|(k, n)| w.get(*k).copied().unwrap_or(0) < **n)
            .take(3)
            .collect();
        panic!(
            "delivered {} events, ground truth has {}; missing (first 3): {missing:?}; extra (first 3): {extra:?}",
            got.len(),
            want.len()
        );
    }
}

/// Waits for `cond` with a deadline: no sleep-and-hope.
pub async fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Byte-identical entries: how many entries have a twin.
pub fn twins(events: &[String]) -> usize {
    let mut m: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events {
        *m.entry(e.as_str()).or_default() += 1;
    }
    m.values().filter(|n| **n > 1).count()
}

pub fn request_time(entry: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(entry).expect("entry json");
    v["requestTime"]
        .as_str()
        .and_then(workday_collector::clock::parse_rfc3339_ms)
        .expect("requestTime")
}
