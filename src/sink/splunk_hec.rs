//! Splunk HTTP Event Collector: `POST /services/collector/event` with `Authorization: Splunk
//! <token>`, a body of concatenated JSON envelopes (`time`, `host`, `source`, `sourcetype`,
//! `index`, `event`). With `indexer_ack`, requests carry a channel GUID and an event counts as
//! delivered only once `/services/collector/ack` reports its ack id indexed.
//!
//! Status mapping (Splunk's HEC reference): 200 success; 400 code 6 with
//! `invalid-event-number` N: events before N were indexed, N is refused for good (dead letter),
//! the rest are sent again; other 400s refuse the batch; 401/403 (token missing, invalid or
//! disabled) and channel/ack-disabled errors need a person; 503 (busy), 429 and 5xx retry.

use super::{Ack, Batch, SinkError};
use crate::config::HecSinkConfig;
use crate::workday::client::{error_chain, retry_after};
use serde_json::Value;
use std::time::Duration;

pub struct HecSink {
    name: String,
    cfg: HecSinkConfig,
    http: reqwest::Client,
    channel: String,
}

/// A channel GUID for this process (HEC channels identify a client's ack stream).
fn new_channel(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = Sha256::digest(format!("{name}/{}/{nanos}", std::process::id()).as_bytes());
    let x = hex::encode(&h[..16]);
    format!(
        "{}-{}-4{}-a{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

#[derive(Debug)]
enum Outcome {
    /// Everything accepted; `ack_id` when indexer acknowledgement is on.
    Accepted(Option<u64>),
    /// Events before `n` were indexed; `n` is refused.
    Partial(usize, String),
}

impl HecSink {
    pub fn new(name: &str, cfg: HecSinkConfig) -> anyhow::Result<HecSink> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(cfg.timeout)
            .build()?;
        Ok(HecSink {
            name: name.to_string(),
            channel: new_channel(name),
            cfg,
            http,
        })
    }

    fn endpoint(&self, path: &str) -> url::Url {
        let mut u = self.cfg.url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}{path}"));
        u
    }

    /// One HEC envelope around a rendered event.
    pub fn envelope(&self, line: &[u8]) -> Vec<u8> {
        let event: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        // The event's own time when the rendering has one (ocsf: ms; ecs/raw: RFC 3339).
        let time_ms = event["time"]
            .as_i64()
            .or_else(|| {
                event["@timestamp"]
                    .as_str()
                    .and_then(crate::clock::parse_rfc3339_ms)
            })
            .or_else(|| {
                event["event"]["requestTime"]
                    .as_str()
                    .and_then(crate::clock::parse_rfc3339_ms)
            });
        let host = self.cfg.host.clone().or_else(|| {
            event["metadata"]["tenant_uid"]
                .as_str()
                .or(event["organization"]["id"].as_str())
                .or(event["tenant"].as_str())
                .map(str::to_string)
        });
        let mut env = serde_json::json!({
            "source": self.cfg.source,
            "sourcetype": self.cfg.sourcetype,
            "event": event,
        });
        if let Some(t) = time_ms {
            env["time"] = serde_json::json!(t as f64 / 1000.0);
        }
        if let Some(h) = host {
            env["host"] = serde_json::json!(h);
        }
        if let Some(i) = &self.cfg.index {
            env["index"] = serde_json::json!(i);
        }
        serde_json::to_vec(&env).unwrap_or_default()
    }

    async fn post(&self, batch: &Batch, start: usize) -> Result<Outcome, SinkError> {
        let mut body = Vec::new();
        for l in batch.lines_from(start) {
            body.extend_from_slice(&self.envelope(l));
            body.push(b'\n');
        }
        let mut req = self
            .http
            .post(self.endpoint("/services/collector/event"))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Splunk {}", self.cfg.token.expose()),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if self.cfg.indexer_ack {
            req = req.header("X-Splunk-Request-Channel", &self.channel);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            SinkError::transient(format!(
                "sink {}: HEC request failed: {}",
                self.name,
                error_chain(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let wait = retry_after(resp.headers());
        let v: Value = resp
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let code = v["code"].as_i64();
        let text = v["text"].as_str().unwrap_or("").to_string();
        let what = format!(
            "HEC {status} code {}: {text}",
            code.map(|c| c.to_string()).unwrap_or("-".into())
        );
        match (status, code) {
            (200, _) => Ok(Outcome::Accepted(v["ackId"].as_u64())),
            // Invalid data format, event field required or blank…: HEC names the first bad event.
            (400, _) if v["invalid-event-number"].as_u64().is_some() => Ok(Outcome::Partial(
                v["invalid-event-number"].as_u64().unwrap_or(0) as usize,
                what,
            )),
            (400, Some(10 | 11 | 14)) | (401, _) | (403, _) => Err(SinkError::NeedsPerson(format!(
                "sink {}: Splunk refused the request ({what}); check token_file, that the token is enabled, and indexer_ack against the token's settings",
                self.name
            ))),
            (429 | 500..=599, _) => Err(SinkError::Transient {
                message: format!("sink {}: Splunk is busy or failing ({what})", self.name),
                retry_after: wait,
            }),
            (413, _) => Err(SinkError::TooLarge(format!("sink {}: {what}", self.name))),
            _ => Ok(Outcome::Partial(0, what)),
        }
    }

    /// Polls until `ack_id` is indexed, or gives up (the batch is then sent again).
    async fn wait_for_ack(&self, ack_id: u64) -> Result<(), SinkError> {
        let started = tokio::time::Instant::now();
        loop {
            let resp = self
                .http
                .post(self.endpoint("/services/collector/ack"))
                .query(&[("channel", &self.channel)])
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Splunk {}", self.cfg.token.expose()),
                )
                .header("X-Splunk-Request-Channel", &self.channel)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::json!({ "acks": [ack_id] }).to_string())
                .send()
                .await;
            if let Ok(r) = resp {
                let status = r.status().as_u16();
                let v: Value = r
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null);
                if status == 200 && v["acks"][ack_id.to_string()].as_bool() == Some(true) {
                    return Ok(());
                }
                if status == 401 || status == 403 {
                    return Err(SinkError::NeedsPerson(format!(
                        "sink {}: Splunk refused the ack request ({status})",
                        self.name
                    )));
                }
            }
            if started.elapsed() > self.cfg.ack_timeout {
                return Err(SinkError::transient(format!(
                    "sink {}: Splunk did not acknowledge indexing within {}s; the batch is sent again",
                    self.name,
                    self.cfg.ack_timeout.as_secs()
                )));
            }
            tokio::time::sleep(self.cfg.ack_poll_interval).await;
        }
    }

    pub async fn send(&self, batch: &Batch) -> Result<Ack, SinkError> {
        let mut rejected = Vec::new();
        let mut start = 0;
        while start < batch.len() {
            match self.post(batch, start).await? {
                Outcome::Accepted(ack_id) => {
                    if self.cfg.indexer_ack {
                        let id = ack_id.ok_or_else(|| {
                            SinkError::NeedsPerson(format!(
                                "sink {}: indexer_ack is on but Splunk returned no ackId: enable indexer acknowledgement on the HEC token",
                                self.name
                            ))
                        })?;
                        self.wait_for_ack(id).await?;
                    }
                    break;
                }
                Outcome::Partial(n, why) => {
                    // Events before n were indexed; n is refused; resend the rest.
                    let bad = start + n.min(batch.len() - start - 1);
                    rejected.push((bad, why));
                    start = bad + 1;
                }
            }
        }
        Ok(Ack {
            file_len: None,
            rejected,
        })
    }
}
