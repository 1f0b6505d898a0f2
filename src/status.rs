//! What `status` prints and what metrics expose from the database: per tenant its checkpoint,
//! lag, last success, last error and credential state; per sink its queue depth, oldest
//! undelivered event and dead letters. Reading is safe while the daemon runs (WAL).

use crate::clock::rfc3339_s;
use crate::config::Config;
use crate::store::Store;
use anyhow::Result;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub tenant: String,
    /// Everything before this has been collected (RFC 3339), if anything has.
    pub checkpoint: Option<String>,
    pub lag_seconds: Option<i64>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// `ok`, `needs_person` or `unknown`.
    pub credential_state: String,
    pub credential_message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SinkStatus {
    pub sink: String,
    pub queue_depth: i64,
    pub oldest_undelivered_seconds: Option<i64>,
    pub dead_letters: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub tenants: Vec<TenantStatus>,
    pub sinks: Vec<SinkStatus>,
}

pub fn snapshot(config: &Config, store: &Store, now_ms: i64) -> Result<Snapshot> {
    let dead = store.dead_letter_summary()?;
    let mut tenants = Vec::new();
    for t in &config.tenants {
        let cp = store.checkpoint(&t.name)?;
        let h = store.tenant_health(&t.name)?.unwrap_or_default();
        let until = cp.and_then(|c| c.collected_until_ms);
        tenants.push(TenantStatus {
            tenant: t.name.clone(),
            checkpoint: until.map(rfc3339_s),
            lag_seconds: until.map(|u| (now_ms - u) / 1000),
            last_success: h.last_success_ms.map(rfc3339_s),
            last_error: h.last_error.clone(),
            last_error_at: h.last_error_ms.map(rfc3339_s),
            credential_state: if h.credential_state.is_empty() {
                "unknown".into()
            } else {
                h.credential_state.clone()
            },
            credential_message: h.credential_message.clone(),
        });
    }
    let mut sinks = Vec::new();
    for s in &config.sinks {
        let (depth, oldest) = store.sink_backlog(&s.name)?;
        sinks.push(SinkStatus {
            sink: s.name.clone(),
            queue_depth: depth,
            oldest_undelivered_seconds: oldest.map(|o| ((now_ms - o) / 1000).max(0)),
            dead_letters: dead
                .iter()
                .find(|(n, _, _)| n == &s.name)
                .map(|(_, c, _)| *c)
                .unwrap_or(0),
        });
    }
    Ok(Snapshot { tenants, sinks })
}

impl Snapshot {
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for t in &self.tenants {
            out.push_str(&format!(
                "tenant {}: credentials {}, checkpoint {}, lag {}, last success {}\n",
                t.tenant,
                t.credential_state,
                t.checkpoint.as_deref().unwrap_or("none yet"),
                t.lag_seconds
                    .map(|s| format!("{s}s"))
                    .unwrap_or_else(|| "-".into()),
                t.last_success.as_deref().unwrap_or("never"),
            ));
            if let Some(e) = &t.last_error {
                out.push_str(&format!(
                    "  last error ({}): {e}\n",
                    t.last_error_at.as_deref().unwrap_or("?")
                ));
            }
            if let Some(m) = &t.credential_message {
                out.push_str(&format!("  needs a person: {m}\n"));
            }
        }
        for s in &self.sinks {
            out.push_str(&format!(
                "sink {}: {} queued{}, {} dead letter(s)\n",
                s.sink,
                s.queue_depth,
                s.oldest_undelivered_seconds
                    .map(|a| format!(" (oldest {a}s)"))
                    .unwrap_or_default(),
                s.dead_letters
            ));
        }
        out
    }

    /// The snapshot as Prometheus gauges.
    pub fn render_prometheus(&self, out: &mut String) {
        use crate::telemetry::series_name as n;
        out.push_str("# TYPE workday_collector_checkpoint_lag_seconds gauge\n");
        for t in &self.tenants {
            if let Some(l) = t.lag_seconds {
                out.push_str(&format!(
                    "{} {l}\n",
                    n(
                        "workday_collector_checkpoint_lag_seconds",
                        &[("tenant", &t.tenant)]
                    )
                ));
            }
        }
        out.push_str("# TYPE workday_collector_credentials_ok gauge\n");
        for t in &self.tenants {
            let v = u8::from(t.credential_state != "needs_person");
            out.push_str(&format!(
                "{} {v}\n",
                n("workday_collector_credentials_ok", &[("tenant", &t.tenant)])
            ));
        }
        out.push_str("# TYPE workday_collector_queue_depth gauge\n");
        for s in &self.sinks {
            out.push_str(&format!(
                "{} {}\n",
                n("workday_collector_queue_depth", &[("sink", &s.sink)]),
                s.queue_depth
            ));
        }
        out.push_str("# TYPE workday_collector_oldest_undelivered_seconds gauge\n");
        for s in &self.sinks {
            out.push_str(&format!(
                "{} {}\n",
                n(
                    "workday_collector_oldest_undelivered_seconds",
                    &[("sink", &s.sink)]
                ),
                s.oldest_undelivered_seconds.unwrap_or(0)
            ));
        }
        out.push_str("# TYPE workday_collector_dead_letters gauge\n");
        for s in &self.sinks {
            out.push_str(&format!(
                "{} {}\n",
                n("workday_collector_dead_letters", &[("sink", &s.sink)]),
                s.dead_letters
            ));
        }
    }
}
