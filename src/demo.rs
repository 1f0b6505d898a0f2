//! `demo` and `simulate`: the collector against the built-in simulated tenant, and the
//! simulator on its own. Everything stays on loopback.

use crate::clock::Clock;
use crate::config::Config;
use crate::daemon::{self, RunOptions, RunSummary};
use crate::sim::{ExpiresIn, SimConfig, SimHandle};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use tokio::sync::watch;

const DAY_MS: i64 = 86_400_000;

/// A simulated tenant whose log runs from seven days ago to a day ahead, so new events keep
/// appearing while the demo runs.
fn demo_tenant(now_ms: i64, seed: u64, events: u64, busy_hour_events: u64) -> SimConfig {
    let mut cfg = SimConfig::new(now_ms, seed, events, busy_hour_events);
    cfg.dataset.end_ms = now_ms + DAY_MS;
    cfg.dataset.events = events + events / 7;
    cfg.log_own_requests = true;
    cfg
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a collector config for `sim` into `dir`, with its secrets in files beside it.
pub fn write_config(
    dir: &Path,
    sim: &SimHandle,
    poll_interval: &str,
    lag: &str,
) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_private(&dir.join("client-secret"), &sim.config().client_secret)?;
    write_private(&dir.join("refresh-token"), &sim.config().refresh_token)?;
    let config = format!(
        r#"# Written by `workday-collector demo` for its simulated tenant (the port changes each run).
state_dir = "state"

[[tenant]]
name = "{tenant}"
rest_api_endpoint = "{rest}"
token_endpoint = "{token}"
authorization_endpoint = "{authz}"
client_id = "{client_id}"
client_secret_file = "client-secret"
refresh_token_file = "refresh-token"
backfill = "7d"
poll_interval = "{poll_interval}"
lag = "{lag}"
overlap = "15m"
page_size = 1000
# The simulator is on loopback; against a real tenant keep the defaults (3 and 10 requests/s).
max_concurrent_requests = 4
max_requests_per_second = 0

[[sink]]
name = "siem-file"
type = "file"
path = "events.jsonl"
format = "raw"
"#,
        tenant = sim.tenant(),
        rest = sim.rest_api_endpoint(),
        token = sim.token_endpoint(),
        authz = sim.authorization_endpoint(),
        client_id = sim.config().client_id,
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub async fn demo(
    dir: &Path,
    once: bool,
    events: u64,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary> {
    // A demo starts afresh: its simulated tenant is new each run.
    for stale in ["state", "events.jsonl"] {
        let p = dir.join(stale);
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("cannot remove {}", p.display()))?;
        } else if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let clock = Clock::system();
    let sim_cfg = demo_tenant(clock.now_ms(), 42, events, 26_000);
    let sim = SimHandle::start(sim_cfg, clock.clone(), "127.0.0.1:0".parse()?).await?;
    let config_path = write_config(dir, &sim, "30s", "1m")?;
    eprintln!("simulated Workday tenant \"{}\" at {} ({} events over seven days, a busy hour above the 10,000 cap, late events, identical twins)", sim.tenant(), sim.base_url(), sim.generated_events());
    eprintln!("config:  {}", config_path.display());
    eprintln!("events:  {}", dir.join("events.jsonl").display());
    if !once {
        eprintln!("backfilling seven days, then polling every 30s; Ctrl-C stops");
    }
    let config = Config::load(&config_path)?;
    let mut opts = RunOptions::new(once, shutdown);
    opts.clock = clock;
    let summary = daemon::run(config, opts).await?;
    sim.stop().await;
    Ok(summary)
}

pub fn print_summary(s: &RunSummary) {
    println!("events collected:     {}", s.collected);
    println!("duplicates absorbed:  {}", s.duplicates);
    for (sink, n) in &s.delivered {
        println!("delivered to {sink}: {n}");
    }
    println!(
        "pages read:           {} ({} windows, {} split at the 10,000 cap)",
        s.pages, s.windows, s.splits
    );
    println!("time taken:           {:.2}s", s.elapsed.as_secs_f64());
    if s.elapsed.as_secs_f64() > 0.0 {
        println!(
            "throughput:           {:.0} events/s",
            s.collected as f64 / s.elapsed.as_secs_f64()
        );
    }
}

pub struct SimulateOptions {
    pub listen: SocketAddr,
    pub seed: u64,
    pub events: u64,
    pub busy_hour_events: u64,
    pub rotate: bool,
    pub expires_in: i64,
    /// Write a collector config for this simulator into this folder.
    pub write_config: Option<std::path::PathBuf>,
    pub page_latency_ms: u64,
}

pub async fn simulate(o: SimulateOptions, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let listen = o.listen;
    let clock = Clock::system();
    let mut cfg = demo_tenant(clock.now_ms(), o.seed, o.events, o.busy_hour_events);
    cfg.rotate_refresh_tokens = o.rotate;
    cfg.expires_in = if o.expires_in == 0 {
        ExpiresIn::Missing
    } else {
        ExpiresIn::Seconds(o.expires_in)
    };
    let sim = SimHandle::start(cfg, clock, listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    sim.faults()
        .delay_ms
        .store(o.page_latency_ms, std::sync::atomic::Ordering::Relaxed);
    if let Some(dir) = &o.write_config {
        write_config(dir, &sim, "30s", "1m")?;
    }
    println!(
        "Workday simulator for tenant \"{}\" listening on {}",
        sim.tenant(),
        sim.base_url()
    );
    println!("rest_api_endpoint      = \"{}\"", sim.rest_api_endpoint());
    println!("token_endpoint         = \"{}\"", sim.token_endpoint());
    println!(
        "authorization_endpoint = \"{}\"",
        sim.authorization_endpoint()
    );
    println!("client_id              = \"{}\"", sim.config().client_id);
    println!("client secret          : {}", sim.config().client_secret);
    println!("refresh token          : {}", sim.config().refresh_token);
    println!("({} events; Ctrl-C stops)", sim.generated_events());
    daemon::stopped(&mut shutdown).await;
    sim.stop().await;
    Ok(())
}
