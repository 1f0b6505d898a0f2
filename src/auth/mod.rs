//! Token lifecycle for one tenant: the refresh-token grant (via the `oauth2` crate), the cached
//! access token refreshed ahead of expiry, and durable storage of a rotated refresh token
//! *before* the access token that came with it is used.
//!
//! Only this module (and `config`, which reads them) sees client secrets and refresh tokens.
//! It does not decide when to poll or what a 401 from the API means beyond "refresh once".

use crate::config::{ClientAuth, TenantConfig};
use crate::secret::Secret;
use crate::store::StoreHandle;
use crate::workday::client::error_chain;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, AsyncHttpClient, AuthType, Client, ClientId, ClientSecret, EndpointNotSet,
    EndpointSet, HttpClientError, HttpRequest, HttpResponse, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

/// What Workday means when `expires_in` is missing, zero or -1: "several hours", failing at any
/// time. We assume an hour and always refresh once on a 401.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `invalid_grant`, `invalid_client` and the like: only a person can fix it.
    #[error("{0}")]
    NeedsPerson(String),
    /// Network trouble, 5xx, a malformed answer: retry later.
    #[error("token request failed: {0}")]
    Transient(String),
    /// The rotated refresh token could not be stored; using it would risk losing it.
    #[error("cannot store the rotated refresh token: {0:#}")]
    Store(anyhow::Error),
}

/// Workday's token response. `expires_in` may be -1 or absent, which the `oauth2` crate's
/// standard response (an unsigned field) would refuse.
#[derive(Debug, Deserialize, Serialize)]
pub struct WorkdayTokenResponse {
    access_token: AccessToken,
    #[serde(default = "bearer")]
    token_type: BasicTokenType,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(skip)]
    scopes: Option<Vec<Scope>>,
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

impl WorkdayTokenResponse {
    /// The access token's lifetime; ≤ 0, missing or unreadable means [`DEFAULT_LIFETIME`].
    pub fn lifetime(&self) -> Duration {
        let secs = match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        match secs {
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            _ => DEFAULT_LIFETIME,
        }
    }

    pub fn expires_in_raw(&self) -> Option<&serde_json::Value> {
        self.expires_in.as_ref()
    }
}

impl TokenResponse for WorkdayTokenResponse {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        Some(self.lifetime())
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

pub type OAuthClient = Client<
    BasicErrorResponse,
    WorkdayTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

pub fn oauth_client(t: &TenantConfig) -> OAuthClient {
    Client::new(ClientId::new(t.client_id.clone()))
        .set_client_secret(ClientSecret::new(t.client_secret.expose().to_string()))
        .set_token_uri(TokenUrl::from_url(t.token_endpoint.clone()))
        .set_auth_type(match t.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Body => AuthType::RequestBody,
        })
}

/// Remembers the HTTP status of the token endpoint's answer, which `oauth2` does not report.
struct StatusRecorder {
    http: reqwest::Client,
    status: std::sync::Mutex<Option<u16>>,
}

impl<'c> AsyncHttpClient<'c> for StatusRecorder {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = self.http.call(request).await?;
            if let Ok(mut s) = self.status.lock() {
                *s = Some(resp.status().as_u16());
            }
            Ok(resp)
        })
    }
}

/// The result of one successful refresh grant.
pub struct Grant {
    pub access_token: Secret,
    pub lifetime: Duration,
    pub expires_in_raw: Option<serde_json::Value>,
    /// Present when Workday sent a refresh token different from the one used.
    pub rotated: Option<Secret>,
}

/// Performs one `grant_type=refresh_token` request.
pub async fn refresh_grant(
    tenant: &str,
    oauth: &OAuthClient,
    http: &reqwest::Client,
    refresh_token: &Secret,
) -> Result<Grant, AuthError> {
    let recorder = StatusRecorder {
        http: http.clone(),
        status: std::sync::Mutex::new(None),
    };
    let rt = RefreshToken::new(refresh_token.expose().to_string());
    let result = oauth
        .exchange_refresh_token(&rt)
        .request_async(&recorder)
        .await;
    let status = recorder.status.lock().ok().and_then(|s| *s);
    match result {
        Ok(resp) => {
            let rotated = resp
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone()))
                .filter(|r| r != refresh_token);
            Ok(Grant {
                access_token: Secret::new(resp.access_token().secret().clone()),
                lifetime: resp.lifetime(),
                expires_in_raw: resp.expires_in_raw().cloned(),
                rotated,
            })
        }
        Err(e) => Err(classify_token_error(tenant, status, e)),
    }
}

fn classify_token_error(
    tenant: &str,
    status: Option<u16>,
    e: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
) -> AuthError {
    let fix_token = format!(
        "generate a new refresh token in Workday (Manage Refresh Tokens for Integrations) and put \
         it in this tenant's refresh_token_file, then restart; tenant {tenant}"
    );
    let status_text = status.map(|s| format!(" ({s})")).unwrap_or_default();
    match e {
        RequestTokenError::ServerResponse(r) => {
            let desc = r.error_description().cloned().unwrap_or_default();
            match r.error() {
                BasicErrorResponseType::InvalidGrant => AuthError::NeedsPerson(format!(
                    "refresh token rejected by workday (invalid_grant{}): it was revoked, regenerated, \
                     expired, or the sandbox was refreshed from production; {fix_token}",
                    if desc.is_empty() { String::new() } else { format!(": {desc}") }
                )),
                BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                    AuthError::NeedsPerson(format!(
                        "client credentials rejected by workday ({}): check client_id and the \
                         client secret file against Workday's View API Clients screen; tenant {tenant}",
                        r.error().as_ref()
                    ))
                }
                other if status.is_some_and(|s| s >= 500) || other.as_ref() == "temporarily_unavailable" => {
                    AuthError::Transient(format!("token endpoint answered {}{status_text}", other.as_ref()))
                }
                other => AuthError::NeedsPerson(format!(
                    "token endpoint refused the request ({}{status_text}{}); tenant {tenant}",
                    other.as_ref(),
                    if desc.is_empty() { String::new() } else { format!(": {desc}") }
                )),
            }
        }
        RequestTokenError::Parse(_, body) => {
            let text = String::from_utf8_lossy(&body).to_ascii_lowercase();
            if text.contains("invalid tenant") {
                AuthError::NeedsPerson(format!(
                    "workday does not know this tenant{status_text}: check the tenant name in \
                     token_endpoint; tenant {tenant}"
                ))
            } else if status == Some(404) {
                AuthError::NeedsPerson(format!(
                    "token endpoint not found (404): check token_endpoint against Workday's View \
                     API Clients screen; tenant {tenant}"
                ))
            } else {
                AuthError::Transient(format!(
                    "token endpoint answered{status_text} with an unreadable body {}",
                    crate::workday::wire::preview(&body)
                ))
            }
        }
        RequestTokenError::Request(e) => AuthError::Transient(format!(
            "cannot reach the token endpoint: {}",
            error_chain(&e)
        )),
        RequestTokenError::Other(msg) => match status {
            Some(404) => AuthError::NeedsPerson(format!(
                "token endpoint not found (404): check token_endpoint; tenant {tenant}"
            )),
            _ => AuthError::Transient(format!("token endpoint answered{status_text}: {msg}")),
        },
    }
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

struct State {
    refresh_token: Secret,
    access: Option<Cached>,
}

/// Hands out a valid access token for one tenant.
pub struct TokenSource {
    tenant: String,
    oauth: OAuthClient,
    http: reqwest::Client,
    store: StoreHandle,
    /// Fingerprint of the configured refresh token a stored (rotated) token descends from.
    origin_fp: String,
    state: tokio::sync::Mutex<State>,
    refreshes: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    /// Chooses the refresh token: a rotated one stored in the database wins, unless the operator
    /// has since configured a different token (then that newer one is used).
    pub async fn new(
        t: &TenantConfig,
        http: reqwest::Client,
        store: StoreHandle,
    ) -> anyhow::Result<TokenSource> {
        let origin_fp = t.refresh_token.fingerprint();
        let tenant = t.name.clone();
        let stored = store.call(move |s| s.refresh_token(&tenant)).await?;
        let refresh_token = match stored {
            Some((token, fp)) if fp == origin_fp => {
                tracing::debug!(tenant = %t.name, "using the rotated refresh token from the state database");
                Secret::new(token)
            }
            Some(_) => {
                tracing::info!(tenant = %t.name, "the configured refresh token changed since the stored one; using the configured token");
                t.refresh_token.clone()
            }
            None => t.refresh_token.clone(),
        };
        Ok(TokenSource {
            tenant: t.name.clone(),
            oauth: oauth_client(t),
            http,
            store,
            origin_fp,
            state: tokio::sync::Mutex::new(State {
                refresh_token,
                access: None,
            }),
            refreshes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A valid access token, refreshing first when it is near (or past) its expiry.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let mut state = self.state.lock().await;
        if let Some(c) = &state.access {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let grant =
            refresh_grant(&self.tenant, &self.oauth, &self.http, &state.refresh_token).await?;
        self.refreshes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(new) = grant.rotated {
            // Durable first: Workday may already have invalidated the token we just used.
            let (tenant, token, fp) = (
                self.tenant.clone(),
                new.expose().to_string(),
                self.origin_fp.clone(),
            );
            let now = chrono::Utc::now().timestamp_millis();
            state.refresh_token = new;
            self.store
                .call(move |s| s.save_refresh_token(&tenant, &token, &fp, now))
                .await
                .map_err(AuthError::Store)?;
            tracing::info!(tenant = %self.tenant, "workday rotated the refresh token; stored the new one");
        }
        if !matches!(grant.expires_in_raw, Some(serde_json::Value::Number(ref n)) if n.as_i64().is_some_and(|s| s > 0))
        {
            tracing::debug!(tenant = %self.tenant, "token response has no usable expires_in; assuming {}s", DEFAULT_LIFETIME.as_secs());
        }
        // Refresh a fifth of the lifetime early (at most 5 minutes), so a poll never starts with
        // a token about to lapse.
        let margin = (grant.lifetime / 5).min(Duration::from_secs(300));
        let token = grant.access_token;
        state.access = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + grant.lifetime - margin,
        });
        Ok(token)
    }

    /// Forgets the cached access token after Workday answered 401 with it.
    pub async fn invalidate(&self, rejected: &Secret) {
        let mut state = self.state.lock().await;
        if state.access.as_ref().is_some_and(|c| &c.token == rejected) {
            state.access = None;
        }
    }

    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> WorkdayTokenResponse {
        serde_json::from_str(s).expect("token response")
    }

    #[test]
    fn expires_in_forms() {
        assert_eq!(
            parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#).lifetime(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":-1}"#).lifetime(),
            DEFAULT_LIFETIME
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":0}"#).lifetime(),
            DEFAULT_LIFETIME
        );
        assert_eq!(
            parse(r#"{"access_token":"a","refresh_token":"r","token_type":"Bearer"}"#).lifetime(),
            DEFAULT_LIFETIME
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":"1800"}"#).lifetime(),
            Duration::from_secs(1800)
        );
    }

    #[test]
    fn debug_of_a_token_response_hides_tokens() {
        let r = parse(
            r#"{"access_token":"SECRETACCESS","refresh_token":"SECRETREFRESH","token_type":"Bearer"}"#,
        );
        let d = format!("{r:?}");
        assert!(
            !d.contains("SECRETACCESS") && !d.contains("SECRETREFRESH"),
            "{d}"
        );
    }
}
