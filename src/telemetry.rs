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

/// What the daemon has done since it started: plain totals for summaries, labelled series for
/// metrics, and the current health of each tenant and sink for `/readyz`.
#[derive(Debug, Default)]
pub struct Stats {
    series: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    gauges: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Late-event delays per tenant: bucket counts (per `LATE_BUCKETS_S`, then +Inf), sum, count.
    late: std::sync::Mutex<std::collections::BTreeMap<String, LateHistogram>>,
    problems: std::sync::Mutex<std::collections::BTreeMap<String, Option<String>>>,
    pub collected: AtomicU64,
    pub duplicates: AtomicU64,
    pub pages: AtomicU64,
    pub windows: AtomicU64,
    pub splits: AtomicU64,
    pub truncated_windows: AtomicU64,
    pub delivered: AtomicU64,
    pub pruned: AtomicU64,
}

/// Bucket counts (per `LATE_BUCKETS_S`, then +Inf), sum of seconds, count.
type LateHistogram = (Vec<u64>, f64, u64);

/// Upper bounds (seconds) of the late-event histogram's buckets.
pub const LATE_BUCKETS_S: &[f64] = &[
    60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 86400.0,
];

/// Prometheus label-value escaping.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One series name with labels, as the exposition format writes it.
pub fn series_name(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let l: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{name}{{{}}}", l.join(","))
}

impl Stats {
    /// Adds to a labelled counter.
    pub fn count(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        if let Ok(mut s) = self.series.lock() {
            *s.entry(series_name(name, labels)).or_default() += n;
        }
    }

    /// Every labelled counter, sorted.
    pub fn counters(&self) -> Vec<(String, u64)> {
        self.series
            .lock()
            .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// Records how late an event was found (seconds after its `requestTime`).
    pub fn observe_late(&self, tenant: &str, delay_s: f64) {
        if let Ok(mut l) = self.late.lock() {
            let e = l
                .entry(tenant.to_string())
                .or_insert_with(|| (vec![0; LATE_BUCKETS_S.len() + 1], 0.0, 0));
            let i = LATE_BUCKETS_S
                .iter()
                .position(|b| delay_s <= *b)
                .unwrap_or(LATE_BUCKETS_S.len());
            e.0[i] += 1;
            e.1 += delay_s;
            e.2 += 1;
        }
    }

    /// The late-event histogram in the Prometheus text format.
    pub fn render_late(&self, out: &mut String) {
        let Ok(l) = self.late.lock() else { return };
        if l.is_empty() {
            return;
        }
        let name = "workday_collector_late_event_delay_seconds";
        out.push_str(&format!("# TYPE {name} histogram\n"));
        for (tenant, (buckets, sum, count)) in l.iter() {
            let mut cumulative = 0;
            for (i, n) in buckets.iter().enumerate() {
                cumulative += n;
                let le = LATE_BUCKETS_S
                    .get(i)
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "+Inf".into());
                out.push_str(&format!(
                    "{} {cumulative}\n",
                    series_name(
                        &format!("{name}_bucket"),
                        &[("tenant", tenant), ("le", &le)]
                    )
                ));
            }
            out.push_str(&format!(
                "{} {sum}\n",
                series_name(&format!("{name}_sum"), &[("tenant", tenant)])
            ));
            out.push_str(&format!(
                "{} {count}\n",
                series_name(&format!("{name}_count"), &[("tenant", tenant)])
            ));
        }
    }

    /// Sets a gauge series (full series name, labels included).
    pub fn set_gauge(&self, series: &str, value: u64) {
        if let Ok(mut s) = self.gauges.lock() {
            s.insert(series.to_string(), value);
        }
    }

    pub fn gauges(&self) -> Vec<(String, u64)> {
        self.gauges
            .lock()
            .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// Records whether a component (`tenant/acme`, `sink/siem`) is healthy; `Some(problem)` if not.
    pub fn set_health(&self, component: &str, problem: Option<String>) {
        if let Ok(mut p) = self.problems.lock() {
            p.insert(component.to_string(), problem);
        }
    }

    /// Components that are not healthy, with their problem.
    pub fn unhealthy(&self) -> Vec<(String, String)> {
        self.problems
            .lock()
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Serves `/metrics` (Prometheus text exposition), `/healthz` and `/readyz` until `stop`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    stats: std::sync::Arc<Stats>,
    config: std::sync::Arc<crate::config::Config>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let metrics = {
        let (stats, config) = (stats.clone(), config.clone());
        move || {
            let (stats, config) = (stats.clone(), config.clone());
            async move {
                let snapshot = tokio::task::spawn_blocking(move || {
                    let store = crate::store::Store::open(&config.database_path())?;
                    crate::status::snapshot(&config, &store, chrono::Utc::now().timestamp_millis())
                })
                .await;
                let mut out = String::new();
                let mut last = String::new();
                for (series, v) in stats.counters() {
                    let name = series.split('{').next().unwrap_or(&series).to_string();
                    if name != last {
                        out.push_str(&format!("# TYPE {name} counter\n"));
                        last = name;
                    }
                    out.push_str(&format!("{series} {v}\n"));
                }
                for (series, v) in stats.gauges() {
                    let name = series.split('{').next().unwrap_or(&series).to_string();
                    out.push_str(&format!("# TYPE {name} gauge\n{series} {v}\n"));
                }
                stats.render_late(&mut out);
                match snapshot {
                    Ok(Ok(s)) => s.render_prometheus(&mut out),
                    _ => out.push_str("# the state database could not be read for gauges\n"),
                }
                ([("content-type", "text/plain; version=0.0.4")], out)
            }
        }
    };
    let ready = move || {
        let stats = stats.clone();
        async move {
            let bad = stats.unhealthy();
            if bad.is_empty() {
                (StatusCode::OK, "ready\n".to_string())
            } else {
                let lines: Vec<String> =
                    bad.into_iter().map(|(c, p)| format!("{c}: {p}")).collect();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{}\n", lines.join("\n")),
                )
            }
        }
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready));
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            crate::daemon::stopped(&mut stop).await;
        })
        .await;
}

/// systemd's notify protocol (`sd_notify`): a datagram to `$NOTIFY_SOCKET`; a no-op without it.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let path = path.to_string_lossy().to_string();
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
}
