//! Elasticsearch / OpenSearch `_bulk`: every event a `create` with `_id` = the event id, so a
//! retried batch is idempotent (an item answering 409 is already stored). Per item: 2xx and 409
//! are delivered; 429 and 5xx make the batch retry (whole, which the ids make harmless); other
//! errors refuse that event for good (dead letter, with Elasticsearch's reason). Works against
//! an index, an alias or a data stream (`create` is what data streams require).

use super::{Ack, Batch, SinkError};
use crate::config::{EsAuth, EsSinkConfig};
use crate::workday::client::{error_chain, retry_after};
use serde_json::Value;
use std::time::Duration;

pub struct EsSink {
    name: String,
    cfg: EsSinkConfig,
    http: reqwest::Client,
}

/// The event id of a rendered event, whatever its format.
fn event_id(doc: &Value) -> Option<&str> {
    doc["metadata"]["uid"]
        .as_str()
        .or(doc["event"]["id"].as_str())
        .or(doc["id"].as_str())
}

impl EsSink {
    pub fn new(name: &str, cfg: EsSinkConfig) -> anyhow::Result<EsSink> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(cfg.timeout)
            .build()?;
        Ok(EsSink {
            name: name.to_string(),
            cfg,
            http,
        })
    }

    pub fn body(&self, batch: &Batch) -> Vec<u8> {
        let mut body = Vec::new();
        for line in batch.lines() {
            let doc: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
            let mut action = serde_json::json!({ "create": { "_index": self.cfg.index } });
            if let Some(id) = event_id(&doc) {
                action["create"]["_id"] = Value::String(id.to_string());
            }
            body.extend_from_slice(action.to_string().as_bytes());
            body.push(b'\n');
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        body
    }

    pub async fn send(&self, batch: &Batch) -> Result<Ack, SinkError> {
        let mut url = self.cfg.url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/_bulk"));
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson");
        match &self.cfg.auth {
            EsAuth::None => {}
            EsAuth::Basic { username, password } => {
                req = req.basic_auth(username, Some(password.expose()))
            }
            EsAuth::ApiKey(k) => {
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("ApiKey {}", k.expose()),
                )
            }
        }
        let resp = req.body(self.body(batch)).send().await.map_err(|e| {
            SinkError::transient(format!(
                "sink {}: _bulk failed: {}",
                self.name,
                error_chain(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let wait = retry_after(resp.headers());
        let bytes = resp.bytes().await.unwrap_or_default();
        let preview = crate::workday::wire::preview(&bytes);
        match status {
            200..=299 => {}
            401 | 403 => {
                return Err(SinkError::NeedsPerson(format!(
                    "sink {}: Elasticsearch refused our credentials ({status}: {preview}); check username/password_file or api_key_file and the index privileges (create_doc)",
                    self.name
                )))
            }
            413 => return Err(SinkError::TooLarge(format!("sink {}: request too large (413)", self.name))),
            429 | 500..=599 => {
                return Err(SinkError::Transient {
                    message: format!("sink {}: Elasticsearch answered {status}: {preview}", self.name),
                    retry_after: wait,
                })
            }
            _ => {
                return Ok(Ack {
                    file_len: None,
                    rejected: (0..batch.len()).map(|i| (i, format!("_bulk {status}: {preview}"))).collect(),
                })
            }
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            SinkError::transient(format!(
                "sink {}: unreadable _bulk answer ({e}): {preview}",
                self.name
            ))
        })?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() != batch.len() {
            return Err(SinkError::transient(format!(
                "sink {}: _bulk answered {} items for {} events",
                self.name,
                items.len(),
                batch.len()
            )));
        }
        let mut rejected = Vec::new();
        let mut retry = 0;
        for (i, item) in items.iter().enumerate() {
            let r = item
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            match r["status"].as_u64().unwrap_or(0) {
                200..=299 | 409 => {}
                429 | 500..=599 => retry += 1,
                s => rejected.push((
                    i,
                    format!(
                        "_bulk item {s}: {}: {}",
                        r["error"]["type"].as_str().unwrap_or("error"),
                        r["error"]["reason"].as_str().unwrap_or("")
                    ),
                )),
            }
        }
        if retry > 0 {
            // Resending the whole batch is harmless: stored events answer 409.
            return Err(SinkError::transient(format!(
                "sink {}: Elasticsearch rejected {retry} event(s) for now (429/5xx); retrying the batch",
                self.name
            )));
        }
        Ok(Ack {
            file_len: None,
            rejected,
        })
    }
}
