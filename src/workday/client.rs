//! HTTP client for `GET …/ccx/api/privacy/v1/{tenant}/activityLogging`.
//!
//! It sends one request and classifies the answer; retry policy lives in `collect`, token
//! refresh in `auth`. Redirects are never followed, so a bearer token never travels to another
//! host.

use super::wire::{self, Page};
use crate::clock::rfc3339_s;
use crate::secret::Secret;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use std::time::Duration;
use url::Url;

/// Bodies above this are refused: a 1000-entry page is well under 2 MB.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What a failed request means for the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: refresh the access token once and retry.
    #[error("workday rejected the access token (401): {0}")]
    Unauthorized(String),
    /// 429: wait (for `Retry-After` when given) and retry.
    #[error("workday is rate limiting (429){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, broken or truncated bodies: back off and retry.
    #[error("{0}")]
    Transient(String),
    /// 400, 403, 404 and the like: retrying cannot fix it.
    #[error("{0}")]
    NeedsPerson(String),
}

/// One `activityLogging` request. Bounds are whole seconds: `from` floored, `to` ceiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub from_ms: i64,
    pub to_ms: i64,
    pub limit: u32,
    pub offset: u64,
}

#[derive(Clone)]
pub struct WorkdayClient {
    http: reqwest::Client,
    url: Url,
}

/// The HTTP client every Workday request uses: no redirects, bounded time, TLS verified.
pub fn http_client(request_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(request_timeout)
        .user_agent(concat!("workday-collector/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub fn floor_s(ms: i64) -> i64 {
    ms.div_euclid(1000) * 1000
}

pub fn ceil_s(ms: i64) -> i64 {
    -floor_s(-ms)
}

impl WorkdayClient {
    pub fn new(http: reqwest::Client, activity_url: Url) -> Self {
        WorkdayClient {
            http,
            url: activity_url,
        }
    }

    fn base_params(q: &Query) -> Vec<(&'static str, String)> {
        vec![
            ("type", "userActivity".into()),
            ("from", rfc3339_s(floor_s(q.from_ms))),
            ("to", rfc3339_s(ceil_s(q.to_ms))),
            ("instancesReturned", "1".into()),
        ]
    }

    /// One page of the window `q`.
    pub async fn page(&self, token: &Secret, q: &Query) -> Result<Page, ApiError> {
        let mut params = Self::base_params(q);
        params.push(("limit", q.limit.to_string()));
        params.push(("offset", q.offset.to_string()));
        let body = self.get(token, &params).await?;
        wire::parse_page(&body).map_err(ApiError::Transient)
    }

    /// How many entries the window holds, without fetching them.
    pub async fn count(&self, token: &Secret, q: &Query) -> Result<u64, ApiError> {
        let mut params = Self::base_params(q);
        params.push(("returnUserActivityEntryCount", "true".into()));
        let body = self.get(token, &params).await?;
        wire::parse_count(&body).map_err(ApiError::Transient)
    }

    /// One page, plus the server's `Date` header (epoch ms) whenever Workday answered at all:
    /// what `doctor` needs to judge permissions and clock skew.
    pub async fn probe(&self, token: &Secret, q: &Query) -> (Option<i64>, Result<Page, ApiError>) {
        let mut params = Self::base_params(q);
        params.push(("limit", q.limit.to_string()));
        params.push(("offset", q.offset.to_string()));
        let mut date = None;
        let body = self.get_inner(token, &params, &mut date).await;
        (
            date,
            body.and_then(|b| wire::parse_page(&b).map_err(ApiError::Transient)),
        )
    }

    async fn get(&self, token: &Secret, params: &[(&str, String)]) -> Result<Vec<u8>, ApiError> {
        self.get_inner(token, params, &mut None).await
    }

    async fn get_inner(
        &self,
        token: &Secret,
        params: &[(&str, String)],
        date: &mut Option<i64>,
    ) -> Result<Vec<u8>, ApiError> {
        let resp = self
            .http
            .get(self.url.clone())
            .query(params)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                ApiError::Transient(format!(
                    "request to {} failed: {}",
                    self.url,
                    error_chain(&e)
                ))
            })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        *date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.timestamp_millis());
        // Only where a redirect points (scheme, host, port), never its path or query.
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url::Url::parse(v).ok())
            .map(|u| u.origin().ascii_serialization());
        let body = read_limited(resp).await?;
        classify(status, retry_after, location, body)
    }
}

fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    location: Option<String>,
    body: Vec<u8>,
) -> Result<Vec<u8>, ApiError> {
    if status.is_success() {
        return Ok(body);
    }
    let msg = wire::error_message(&body);
    Err(match status.as_u16() {
        401 => ApiError::Unauthorized(msg),
        429 => ApiError::RateLimited { retry_after },
        403 => ApiError::NeedsPerson(format!(
            "workday refused the activity log (403: {msg}): the integration user needs the System \
             Auditing domain (Get/View), the API client the System scope, and the tenant \
             'Enable User Activity Logging' turned on"
        )),
        404 => ApiError::NeedsPerson(format!(
            "activity log endpoint not found (404: {msg}): check rest_api_endpoint against \
             Workday's View API Clients screen"
        )),
        503 if msg.to_ascii_lowercase().contains("invalid tenant") => ApiError::NeedsPerson(format!(
            "workday does not know this tenant (503: {msg}): check the tenant name in rest_api_endpoint"
        )),
        408 | 500..=599 => ApiError::Transient(format!("workday answered {status}: {msg}")),
        // Not followed (the token would go wherever Location says). A proxy or maintenance
        // page can redirect for a while, so it is retried; one that persists ends the poll with
        // this message, and `doctor` shows it.
        300..=399 => ApiError::Transient(format!(
            "workday redirected the request ({status}{}); redirects are not followed with \
             credentials: if it persists, check rest_api_endpoint",
            location.map(|l| format!(" to {l}")).unwrap_or_default()
        )),
        _ => ApiError::NeedsPerson(format!("workday refused the request ({status}): {msg}")),
    })
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::Transient(format!(
                        "workday response body exceeds {} MiB; refused",
                        MAX_BODY_BYTES / (1024 * 1024)
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(ApiError::Transient(format!(
                    "reading workday's response failed: {}",
                    error_chain(&e)
                )))
            }
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(delta.max(0) as u64))
}

/// A reqwest error with its causes, which never include the URL's query or headers' values.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_whole_seconds() {
        assert_eq!(floor_s(1_500), 1_000);
        assert_eq!(ceil_s(1_500), 2_000);
        assert_eq!(ceil_s(2_000), 2_000);
        assert_eq!(floor_s(-1), -1000);
    }

    #[test]
    fn status_classification() {
        let c = |s: u16, body: &str| {
            classify(
                StatusCode::from_u16(s).expect("status"),
                None,
                Some("https://elsewhere.example".to_string()),
                body.as_bytes().to_vec(),
            )
        };
        assert!(c(200, "{}").is_ok());
        assert!(matches!(c(401, ""), Err(ApiError::Unauthorized(_))));
        assert!(matches!(c(429, ""), Err(ApiError::RateLimited { .. })));
        assert!(matches!(c(500, "<html>"), Err(ApiError::Transient(_))));
        assert!(matches!(
            c(503, r#"{"error":"Service Unavailable"}"#),
            Err(ApiError::Transient(_))
        ));
        assert!(matches!(
            c(503, r#"{"error":"Invalid Tenant Name"}"#),
            Err(ApiError::NeedsPerson(_))
        ));
        // Retried (a proxy can redirect for a while), never followed; says where it pointed.
        match c(302, "") {
            Err(ApiError::Transient(m)) => assert!(m.contains("https://elsewhere.example"), "{m}"),
            other => panic!("{other:?}"),
        }
        match c(403, r#"{"error":"The task submitted is not authorized."}"#) {
            Err(ApiError::NeedsPerson(m)) => {
                assert!(m.contains("System Auditing") && m.contains("not authorized"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().expect("hv"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("hv"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().expect("hv"));
        assert_eq!(retry_after(&h), None);
    }
}
