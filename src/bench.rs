//! `bench`: the end-to-end benchmark. A simulated tenant (this binary's `simulate`, in a child
//! process so the figures are the collector's alone) holds N events over seven days; the
//! collector backfills them through SQLite into a file sink and reports events/s, peak RSS,
//! database size and CPU per event, then idles between polls and reports what that costs.
//! With `--latency`, every page answer is delayed and the backfill's wall time is set against
//! the ideal for the configured request concurrency and rate.

use crate::config::{Config, Format};
use crate::daemon::{self, RunOptions};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub events: u64,
    pub format: Format,
    /// Delay before every activity-log answer; `None` for the throughput run.
    pub page_latency: Option<Duration>,
    pub max_concurrent_requests: u32,
    /// `None`: no rate limit.
    pub max_requests_per_second: Option<u32>,
    pub idle: Duration,
    pub dir: PathBuf,
    pub keep: bool,
}

/// The simulator child; killed when dropped, whatever happened.
struct SimChild(Child);

impl Drop for SimChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) of a process, from /proc (Linux).
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture that matters here.
    Some(Duration::from_millis(ticks * 10))
}

/// A memory figure of a process from /proc/<pid>/status (Linux), in bytes: `VmHWM` is its peak
/// resident set, `VmRSS` the current one.
pub fn proc_memory(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn start_simulator(opts: &BenchOptions) -> Result<SimChild> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--log-level",
        "warn",
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--seed",
        "7",
    ])
    .arg("--events")
    .arg(opts.events.to_string())
    .arg("--write-config")
    .arg(&opts.dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if let Some(l) = opts.page_latency {
        cmd.arg("--page-latency-ms").arg(l.as_millis().to_string());
    }
    let mut child = SimChild(cmd.spawn().context("cannot start the simulator")?);
    let stdout = child.0.stdout.take().context("simulator stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // The first line comes once the dataset is generated and the config written.
    match lines.next() {
        Some(Ok(line)) if line.starts_with("Workday simulator") => {}
        other => bail!("the simulator did not start: {other:?}"),
    }
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(child)
}

pub async fn bench(opts: BenchOptions) -> Result<()> {
    if opts.dir.exists() {
        std::fs::remove_dir_all(&opts.dir)
            .with_context(|| format!("cannot clear {}", opts.dir.display()))?;
    }
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    eprintln!(
        "generating a simulated tenant with {} events over seven days (plus a busy hour of 26,000)…",
        opts.events
    );
    let sim = start_simulator(&opts)?;
    let sim_pid = sim.0.id().to_string();
    let mut config = Config::load(&opts.dir.join("config.toml"))?;
    config.metrics_listen = None;
    for t in &mut config.tenants {
        t.max_concurrent_requests = opts.max_concurrent_requests;
        t.max_requests_per_second = opts.max_requests_per_second;
    }
    for s in &mut config.sinks {
        s.format = opts.format;
    }
    let state_dir = config.state_dir.clone();
    let sink_path = opts.dir.join("events.jsonl");

    let me = std::process::id().to_string();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let cpu0 = cpu_time(&me).unwrap_or_default();
    let sim_cpu0 = cpu_time(&sim_pid).unwrap_or_default();
    let started = Instant::now();
    let summary = daemon::run(config.clone(), RunOptions::new(true, stop_rx)).await?;
    let wall = started.elapsed();
    let cpu = cpu_time(&me).unwrap_or_default().saturating_sub(cpu0);
    let sim_cpu = cpu_time(&sim_pid)
        .unwrap_or_default()
        .saturating_sub(sim_cpu0);
    let rss = proc_memory(&me, "VmHWM").unwrap_or(0);
    let db = dir_size(&state_dir);
    let out = std::fs::metadata(&sink_path).map(|m| m.len()).unwrap_or(0);
    let n = summary.collected.max(1);

    // Idle: the daemon restarted on the same state, polling on its schedule with little to do.
    // Measured after a settling time that covers start-up and the first (catch-up) poll.
    let (idle_tx, idle_rx) = watch::channel(false);
    let db_path = config.database_path();
    let tenant = config
        .tenants
        .first()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let restarted_ms = chrono::Utc::now().timestamp_millis();
    let idle_run = tokio::spawn(daemon::run(config, RunOptions::new(false, idle_rx)));
    // Settled: start-up (the integrity check reads the whole database) and the first poll,
    // which catches up on what arrived during the backfill, are over.
    let settle_deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (path, tenant) = (db_path.clone(), tenant.clone());
        let polled = tokio::task::spawn_blocking(move || {
            crate::store::Store::open(&path)
                .and_then(|s| s.tenant_health(&tenant))
                .map(|h| h.and_then(|h| h.last_success_ms))
        })
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
        if polled.is_some_and(|t| t >= restarted_ms) || Instant::now() > settle_deadline {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_cpu0 = cpu_time(&me).unwrap_or_default();
    let idle_started = Instant::now();
    tokio::time::sleep(opts.idle).await;
    let idle_wall = idle_started.elapsed();
    let idle_cpu = cpu_time(&me).unwrap_or_default().saturating_sub(idle_cpu0);
    let _ = idle_tx.send(true);
    let idle_summary = idle_run.await.context("idle run")??;
    drop(sim);

    let format = match opts.format {
        Format::Raw => "raw",
        Format::Ocsf => "ocsf",
        Format::Ecs => "ecs",
    };
    println!("events collected:        {}", summary.collected);
    println!("delivered:               {:?}", summary.delivered);
    println!(
        "pages / windows / splits: {} / {} / {}",
        summary.pages, summary.windows, summary.splits
    );
    println!("wall time:               {:.2} s", wall.as_secs_f64());
    println!(
        "throughput:              {:.0} events/s (format {format}, file sink)",
        summary.collected as f64 / wall.as_secs_f64()
    );
    println!("peak RSS (collector):    {}", mb(rss));
    println!("database size:           {}", mb(db));
    println!("file sink size:          {}", mb(out));
    println!(
        "CPU per event:           {:.2} µs collector, {:.2} µs simulator",
        cpu.as_secs_f64() * 1e6 / n as f64,
        sim_cpu.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "idle:                    {:.0} ms CPU over {:.1} s after the first poll ({:.2}% of a core; {} new events in the run)",
        idle_cpu.as_secs_f64() * 1e3,
        idle_wall.as_secs_f64(),
        idle_cpu.as_secs_f64() * 100.0 / idle_wall.as_secs_f64(),
        idle_summary.collected
    );
    if let Some(latency) = opts.page_latency {
        let c = f64::from(opts.max_concurrent_requests);
        let by_concurrency = summary.pages as f64 * latency.as_secs_f64() / c;
        let by_rate = opts
            .max_requests_per_second
            .map_or(0.0, |r| summary.pages as f64 / f64::from(r));
        let ideal = by_concurrency.max(by_rate);
        println!(
            "latency-bound ideal:     {:.2} s ({} requests × {} ms / {} in flight{})",
            ideal,
            summary.pages,
            latency.as_millis(),
            opts.max_concurrent_requests,
            opts.max_requests_per_second
                .map_or(String::new(), |r| format!(", at most {r}/s"))
        );
        println!(
            "wall / ideal:            {:.2}×",
            wall.as_secs_f64() / ideal.max(f64::EPSILON)
        );
    }
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&opts.dir);
    } else {
        println!("kept:                    {}", opts.dir.display());
    }
    Ok(())
}
