//! Token lifecycle for one tenant: the refresh-token grant (via the `oauth2` crate), the cached
//! access token refreshed ahead of expiry, and durable storage of a rotated refresh token
//! *before* the access token that came with it is used.
//!
//! Only this module (and `config`, which reads them) sees client secrets and refresh tokens.
//! It does not decide when to poll or what a 401 from the API means beyond "refresh once".
//! The one-time authorization-code sign-in lives in `authorize`.

pub mod authorize;

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
pub(crate) struct StatusRecorder {
    pub(crate) http: reqwest::Client,
    pub(crate) status: std::sync::Mutex<Option<u16>>,
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
        Err(e) => Err(classify_token_error(tenant, status, e, false)),
    }
}

pub(crate) fn classify_token_error(
    tenant: &str,
    status: Option<u16>,
    e: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
    code_exchange: bool,
) -> AuthError {
    let fix_token = format!(
        "generate a new refresh token in Workday (Manage Refresh Tokens for Integrations) and put \
         it in this tenant's refresh_token_file, or sign in again with 'workday-collector authorize \
         --config FILE --tenant {tenant}'; tenant {tenant}"
    );
    let status_text = status.map(|s| format!(" ({s})")).unwrap_or_default();
    match e {
        RequestTokenError::ServerResponse(r) => {
            let desc = r.error_description().cloned().unwrap_or_default();
            match r.error() {
                BasicErrorResponseType::InvalidGrant if code_exchange => AuthError::NeedsPerson(format!(
                    "workday rejected the authorization code (invalid_grant{}): it expired, was used \
                     already, or the redirect URI or PKCE verifier did not match; run authorize again",
                    if desc.is_empty() { String::new() } else { format!(": {desc}") }
                )),
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
                other if other.as_ref().to_ascii_lowercase().contains("invalid tenant") => AuthError::NeedsPerson(format!(
                    "workday does not know this tenant{status_text}: check the tenant name in \
                     token_endpoint; tenant {tenant}"
                )),
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
    refresh_token: Option<Secret>,
    /// Fingerprint of the configured token that the current lineage descends from ("" for none).
    origin_fp: String,
    access: Option<Cached>,
}

/// The message for a tenant that has no refresh token at all.
pub fn no_token_message(tenant: &str) -> String {
    format!(
        "tenant {tenant} has no refresh token: sign in with 'workday-collector authorize --config FILE \
         --tenant {tenant}' (API Client), or set refresh_token_file (API Client for Integrations)"
    )
}

/// Picks the refresh token to use: a stored (rotated or signed-in) one wins unless the
/// configured token changed since it was stored.
fn choose(
    configured: Option<&Secret>,
    stored: Option<(String, String)>,
) -> (Option<Secret>, String, bool) {
    let configured_fp = configured.map(Secret::fingerprint).unwrap_or_default();
    match stored {
        Some((token, fp)) if fp == configured_fp => (Some(Secret::new(token)), configured_fp, true),
        _ => (configured.cloned(), configured_fp, false),
    }
}

/// Hands out a valid access token for one tenant.
pub struct TokenSource {
    tenant: String,
    config: TenantConfig,
    oauth: OAuthClient,
    http: reqwest::Client,
    store: StoreHandle,
    state: tokio::sync::Mutex<State>,
    refreshes: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    pub async fn new(
        t: &TenantConfig,
        http: reqwest::Client,
        store: StoreHandle,
    ) -> anyhow::Result<TokenSource> {
        let tenant = t.name.clone();
        let stored = store.call(move |s| s.refresh_token(&tenant)).await?;
        let (refresh_token, origin_fp, from_store) =
            choose(t.refresh_token.as_ref(), stored.clone());
        if from_store {
            tracing::debug!(tenant = %t.name, "using the refresh token from the state database");
        } else if stored.is_some() {
            tracing::info!(tenant = %t.name, "the configured refresh token changed since the stored one; using the configured token");
        }
        Ok(TokenSource {
            tenant: t.name.clone(),
            config: t.clone(),
            oauth: oauth_client(t),
            http,
            store,
            state: tokio::sync::Mutex::new(State {
                refresh_token,
                origin_fp,
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
        let Some(current) = state.refresh_token.clone() else {
            let msg = no_token_message(&self.tenant);
            self.record_failure(&msg).await;
            return Err(AuthError::NeedsPerson(msg));
        };
        let grant = match refresh_grant(&self.tenant, &self.oauth, &self.http, &current).await {
            Ok(g) => g,
            Err(AuthError::NeedsPerson(msg)) => {
                self.record_failure(&msg).await;
                return Err(AuthError::NeedsPerson(msg));
            }
            Err(e) => return Err(e),
        };
        self.refreshes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_millis();
        let tenant = self.tenant.clone();
        let rotated = grant.rotated.as_ref().map(|r| r.expose().to_string());
        let fp = state.origin_fp.clone();
        let expires_raw = grant.expires_in_raw.as_ref().map(|v| v.to_string());
        // Durable first: Workday may already have invalidated the token we just used.
        self.store
            .call(move |s| {
                if let Some(token) = rotated {
                    s.save_refresh_token(&tenant, &token, &fp, now)?;
                }
                s.credential_ok(&tenant, expires_raw.as_deref(), now)
            })
            .await
            .map_err(AuthError::Store)?;
        if let Some(new) = grant.rotated {
            state.refresh_token = Some(new);
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

    async fn record_failure(&self, msg: &str) {
        let (tenant, msg) = (self.tenant.clone(), msg.to_string());
        let now = chrono::Utc::now().timestamp_millis();
        if let Err(e) = self
            .store
            .call(move |s| s.credential_failed(&tenant, &msg, now))
            .await
        {
            tracing::warn!(tenant = %self.tenant, error = %format!("{e:#}"), "cannot record the credential state");
        }
    }

    /// Looks again for a refresh token (the database, where `authorize` stores one, and the
    /// configured file or variable). Returns whether a different token is now in use.
    pub async fn reload(&self) -> anyhow::Result<bool> {
        let configured = match &self.config.refresh_token_source {
            Some(src) => match src.read() {
                Ok(s) => Some(s),
                Err(msg) => {
                    tracing::debug!(tenant = %self.tenant, error = %msg, "cannot re-read the configured refresh token");
                    self.config.refresh_token.clone()
                }
            },
            None => None,
        };
        let tenant = self.tenant.clone();
        let stored = self.store.call(move |s| s.refresh_token(&tenant)).await?;
        let (token, fp, _) = choose(configured.as_ref(), stored);
        let mut state = self.state.lock().await;
        if token == state.refresh_token {
            return Ok(false);
        }
        state.refresh_token = token;
        state.origin_fp = fp;
        state.access = None;
        Ok(true)
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

    /// Fingerprint of the configured token the current lineage descends from ("" for none);
    /// what a token stored by `authorize` must carry to be preferred on the next start.
    pub fn configured_fingerprint(t: &TenantConfig) -> String {
        t.refresh_token
            .as_ref()
            .map(Secret::fingerprint)
            .unwrap_or_default()
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
