//! The HTTP sink: POSTs batches as NDJSON or a JSON array, optionally gzipped, with static
//! headers, bearer or basic auth, and an optional HMAC-SHA256 signature of the body.
//! 2xx is delivery; 408, 429, 5xx and network errors are retried (honouring `Retry-After`);
//! 401/403 need a person (events stay queued); 413 asks for smaller batches; any other 4xx
//! refuses the batch for good (dead letters). At least once: a retry after a lost answer
//! sends a batch again, and every event carries its stable id for the receiver to dedup.

use super::{Ack, Batch, SinkError};
use crate::config::{HttpAuth, HttpEncoding, HttpSinkConfig};
use crate::workday::client::{error_chain, retry_after};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;

pub struct HttpSink {
    name: String,
    cfg: HttpSinkConfig,
    http: reqwest::Client,
}

impl HttpSink {
    pub fn new(name: &str, cfg: HttpSinkConfig) -> anyhow::Result<HttpSink> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(cfg.timeout)
            .user_agent(concat!("workday-collector/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpSink {
            name: name.to_string(),
            cfg,
            http,
        })
    }

    /// The request body for a batch, uncompressed.
    pub fn body(&self, batch: &Batch) -> Vec<u8> {
        match self.cfg.encoding {
            HttpEncoding::Ndjson => batch.joined().to_vec(),
            HttpEncoding::JsonArray => {
                let mut out = Vec::with_capacity(batch.bytes() + 2);
                out.push(b'[');
                for (i, l) in batch.lines().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(l);
                }
                out.push(b']');
                out
            }
        }
    }

    pub async fn send(&self, batch: &Batch) -> Result<Ack, SinkError> {
        let body = self.body(batch);
        let mut req = self.http.post(self.cfg.url.clone());
        req = req.header(
            reqwest::header::CONTENT_TYPE,
            match self.cfg.encoding {
                HttpEncoding::Ndjson => "application/x-ndjson",
                HttpEncoding::JsonArray => "application/json",
            },
        );
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some((secret, header)) = &self.cfg.hmac {
            // A valid HMAC key can be any length, so this cannot fail.
            if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
                mac.update(&body);
                req = req.header(
                    header.as_str(),
                    format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
                );
            }
        }
        match &self.cfg.auth {
            HttpAuth::None => {}
            HttpAuth::Bearer(t) => req = req.bearer_auth(t.expose()),
            HttpAuth::Basic { username, password } => {
                req = req.basic_auth(username, Some(password.expose()))
            }
        }
        let (body, req) = if self.cfg.gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let gz = enc
                .write_all(&body)
                .and_then(|_| enc.finish())
                .map_err(|e| {
                    SinkError::transient(format!("sink {}: gzip failed: {e}", self.name))
                })?;
            (gz, req.header(reqwest::header::CONTENT_ENCODING, "gzip"))
        } else {
            (body, req)
        };
        let resp = req.body(body).send().await.map_err(|e| {
            SinkError::transient(format!(
                "sink {}: POST failed: {}",
                self.name,
                error_chain(&e)
            ))
        })?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let preview = crate::workday::wire::preview(text.as_bytes());
        match status.as_u16() {
            200..=299 => Ok(Ack::default()),
            408 | 429 | 500..=599 => Err(SinkError::Transient {
                message: format!("sink {}: receiver answered {status}: {preview}", self.name),
                retry_after: wait,
            }),
            401 | 403 => Err(SinkError::NeedsPerson(format!(
                "sink {}: receiver refused our credentials ({status}: {preview}); check token_file or username/password_file",
                self.name
            ))),
            413 => Err(SinkError::TooLarge(format!("sink {}: receiver says the batch is too large (413)", self.name))),
            _ => Ok(Ack {
                file_len: None,
                rejected: (0..batch.len())
                    .map(|i| (i, format!("HTTP {status}: {preview}")))
                    .collect(),
            }),
        }
    }
}
