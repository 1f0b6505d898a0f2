//! The one-time sign-in for a plain Workday "API Client" (authorization-code grant, PKCE S256
//! unless `pkce = false`), and importing a refresh token generated in Workday. Either way the
//! refresh token is tested, stored in the state database (where the daemon reads it), and the
//! connection is proved with one activity-log request, like Workday's **Test API**.
//!
//! A sign-in that waits for a pasted URL is kept in the database (state and verifier), so
//! `authorize --code` can finish it from another invocation. It does not poll or deliver.

use super::{
    classify_token_error, refresh_grant, AuthError, StatusRecorder, TokenSource,
    WorkdayTokenResponse,
};
use crate::config::TenantConfig;
use crate::secret::Secret;
use crate::store::{PendingAuthorization, StoreHandle};
use crate::workday::{ApiError, Query, WorkdayClient};
use anyhow::{anyhow, bail, Context, Result};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use std::net::IpAddr;
use std::time::Duration;
use url::Url;

/// A pending sign-in is good for this long (Workday's codes are short-lived too).
pub const PENDING_TTL: Duration = Duration::from_secs(15 * 60);

type CodeClient = Client<
    BasicErrorResponse,
    WorkdayTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn code_client(t: &TenantConfig) -> Result<CodeClient> {
    let auth = t.authorization_endpoint.clone().ok_or_else(|| {
        anyhow!(
            "tenant {}: authorization_endpoint is not set; paste the Authorization Endpoint from \
             Workday's View API Clients screen",
            t.name
        )
    })?;
    let redirect = t.redirect_uri.clone().ok_or_else(|| {
        anyhow!(
            "tenant {}: redirect_uri is not set; it must equal the Redirection URI registered on the \
             API client in Workday",
            t.name
        )
    })?;
    Ok(Client::new(ClientId::new(t.client_id.clone()))
        .set_client_secret(ClientSecret::new(t.client_secret.expose().to_string()))
        .set_auth_uri(AuthUrl::from_url(auth))
        .set_token_uri(TokenUrl::from_url(t.token_endpoint.clone()))
        .set_redirect_uri(RedirectUrl::from_url(redirect))
        .set_auth_type(match t.client_auth {
            crate::config::ClientAuth::Basic => oauth2::AuthType::BasicAuth,
            crate::config::ClientAuth::Body => oauth2::AuthType::RequestBody,
        }))
}

/// A started sign-in: the URL to open, and what must come back.
pub struct SignIn {
    pub url: Url,
    pub pending: PendingAuthorization,
}

/// Builds the authorization URL with a random `state` and (unless `pkce = false`) a PKCE S256
/// challenge.
pub fn begin(t: &TenantConfig, now_ms: i64) -> Result<SignIn> {
    let client = code_client(t)?;
    let mut req = client.authorize_url(CsrfToken::new_random);
    let mut verifier = None;
    if t.pkce {
        let (challenge, v) = PkceCodeChallenge::new_random_sha256();
        req = req.set_pkce_challenge(challenge);
        verifier = Some(v.secret().clone());
    }
    let (url, state) = req.url();
    Ok(SignIn {
        url,
        pending: PendingAuthorization {
            csrf_state: state.secret().clone(),
            pkce_verifier: verifier,
            created_at_ms: now_ms,
        },
    })
}

/// Whether the redirect URI is one this machine can receive on (plain http on loopback).
pub fn is_loopback_redirect(redirect: &Url) -> bool {
    redirect.scheme() == "http"
        && match redirect.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}

/// What the operator pasted: the full URL the browser was sent to, its query, or the code.
/// Checks `state` when it is there; refuses Workday's error redirects with their reason.
pub fn code_from_paste(input: &str, expected_state: &str) -> Result<(String, bool)> {
    let input = input.trim();
    if input.is_empty() {
        bail!("nothing was pasted");
    }
    let query = if let Ok(url) = Url::parse(input) {
        url.query().map(str::to_string)
    } else if input.contains("code=") || input.contains("error=") {
        Some(input.trim_start_matches('?').to_string())
    } else {
        None
    };
    let Some(query) = query else {
        if input
            .chars()
            .any(|c| c.is_whitespace() || c == '&' || c == '?')
        {
            bail!("this is neither the URL the browser was sent to nor an authorization code");
        }
        return Ok((input.to_string(), false));
    };
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    if let Some(err) = params.get("error") {
        let desc = params
            .get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        bail!("workday did not grant access ({err}{desc}); sign in again and click Allow");
    }
    let code = params
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| anyhow!("the pasted URL has no code parameter"))?;
    match params.get("state") {
        Some(state) if state == expected_state => Ok((code.clone(), true)),
        Some(_) => bail!(
            "the state in the pasted URL does not match the sign-in this command started; refused \
             (it may be from an older attempt or not yours): run authorize again"
        ),
        None => Ok((code.clone(), false)),
    }
}

/// A listener on a loopback redirect URI, answering the browser with a short page.
pub struct Loopback {
    rx: tokio::sync::mpsc::Receiver<std::collections::HashMap<String, String>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Loopback {
    pub async fn listen(redirect: &Url) -> Result<Loopback> {
        let host = redirect
            .host_str()
            .unwrap_or("127.0.0.1")
            .trim_matches(['[', ']']);
        let host = if host.eq_ignore_ascii_case("localhost") {
            "127.0.0.1"
        } else {
            host
        };
        let port = redirect.port_or_known_default().unwrap_or(80);
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .with_context(|| {
                format!("cannot listen on {host}:{port} for the redirect to {redirect}")
            })?;
        let path = redirect.path().to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let tx = tx.clone();
            let path = path.clone();
            async move {
                use axum::response::{Html, IntoResponse};
                if uri.path() != path {
                    return (axum::http::StatusCode::NOT_FOUND, "not found").into_response();
                }
                let params: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
                let ok = params.contains_key("code");
                let _ = tx.send(params).await;
                Html(if ok {
                    "<!doctype html><title>workday-collector</title><p>Signed in to Workday. \
                     workday-collector has what it needs; you can close this window.</p>"
                } else {
                    "<!doctype html><title>workday-collector</title><p>Workday did not grant access. \
                     See the terminal where authorize runs.</p>"
                })
                .into_response()
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        Ok(Loopback {
            rx,
            shutdown: Some(stop_tx),
        })
    }

    /// Waits for the redirect; checks `state`, returns the code.
    pub async fn wait(mut self, expected_state: &str, timeout: Duration) -> Result<String> {
        let params = tokio::time::timeout(timeout, self.rx.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "no redirect from workday within {}s; run authorize again",
                    timeout.as_secs()
                )
            })?
            .ok_or_else(|| anyhow!("the redirect listener stopped"))?;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        code_from_paste(&format!("?{query}"), expected_state).and_then(|(code, state_checked)| {
            if state_checked {
                Ok(code)
            } else {
                bail!("the redirect carried no state; refused")
            }
        })
    }
}

/// What a completed sign-in or import proved.
#[derive(Debug, Clone)]
pub struct Connected {
    /// Activity-log entries Workday reported for the last 15 minutes.
    pub entries_last_15m: u64,
}

fn auth_err(e: AuthError) -> anyhow::Error {
    anyhow!("{e}")
}

/// Exchanges the code (with the PKCE verifier), stores the refresh token, proves the connection.
pub async fn complete(
    t: &TenantConfig,
    store: &StoreHandle,
    http: &reqwest::Client,
    pending: &PendingAuthorization,
    code: &str,
) -> Result<Connected> {
    let client = code_client(t)?;
    let mut req = client.exchange_code(AuthorizationCode::new(code.to_string()));
    if let Some(v) = &pending.pkce_verifier {
        req = req.set_pkce_verifier(PkceCodeVerifier::new(v.clone()));
    }
    let recorder = StatusRecorder {
        http: http.clone(),
        status: std::sync::Mutex::new(None),
    };
    let resp = req.request_async(&recorder).await;
    let status = recorder.status.lock().ok().and_then(|s| *s);
    let resp = resp.map_err(|e| auth_err(classify_token_error(&t.name, status, e, true)))?;
    let refresh = resp.refresh_token().map(|r| Secret::new(r.secret().clone())).ok_or_else(|| {
        anyhow!(
            "workday granted access but sent no refresh token: on the API client in Workday, allow \
             refresh tokens (a non-expiring refresh token, or the longest expiry), then run authorize again"
        )
    })?;
    let access = Secret::new(resp.access_token().secret().clone());
    let expires_raw = resp.expires_in_raw().map(|v| v.to_string());
    store_token(t, store, &refresh, expires_raw).await?;
    test_api(t, http, &access).await
}

/// Tests a refresh token generated in Workday (Manage Refresh Tokens for Integrations), then
/// stores it (or the token Workday rotated it into) and proves the connection.
pub async fn import(
    t: &TenantConfig,
    store: &StoreHandle,
    http: &reqwest::Client,
    token: Secret,
) -> Result<Connected> {
    let oauth = super::oauth_client(t);
    let grant = refresh_grant(&t.name, &oauth, http, &token)
        .await
        .map_err(auth_err)?;
    let keep = grant.rotated.clone().unwrap_or(token);
    store_token(t, store, &keep, grant.expires_in_raw.map(|v| v.to_string())).await?;
    test_api(t, http, &grant.access_token).await
}

async fn store_token(
    t: &TenantConfig,
    store: &StoreHandle,
    token: &Secret,
    expires_raw: Option<String>,
) -> Result<()> {
    let (tenant, token, fp) = (
        t.name.clone(),
        token.expose().to_string(),
        TokenSource::configured_fingerprint(t),
    );
    let now = chrono::Utc::now().timestamp_millis();
    store
        .call(move |s| {
            s.save_refresh_token(&tenant, &token, &fp, now)?;
            s.credential_ok(&tenant, expires_raw.as_deref(), now)
        })
        .await
        .context("cannot store the refresh token in the state database")
}

/// Workday's **Test API**: one activity-log request for the last 15 minutes.
pub async fn test_api(
    t: &TenantConfig,
    http: &reqwest::Client,
    access: &Secret,
) -> Result<Connected> {
    let client = WorkdayClient::new(http.clone(), t.activity_url.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let q = Query {
        from_ms: now - 15 * 60_000,
        to_ms: now,
        limit: 1,
        offset: 0,
    };
    match client.page(access, &q).await {
        Ok(page) => Ok(Connected {
            entries_last_15m: page.total.unwrap_or(page.entries.len() as u64),
        }),
        Err(ApiError::Unauthorized(m)) => bail!(
            "the token works but workday refused the activity log (401: {m}): the API client needs the System scope"
        ),
        Err(e) => bail!("the token works but the activity log test failed: {e}"),
    }
}

/// The `authorize` command: sign in (loopback listener or pasted URL), finish a pending sign-in
/// (`--code`), or import a refresh token; then store and test it.
pub async fn command(
    config_path: &std::path::Path,
    tenant: &str,
    code: Option<String>,
    import_from: Option<std::path::PathBuf>,
) -> Result<()> {
    let config = crate::config::Config::load(config_path)?;
    let t = config
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .ok_or_else(|| {
            let names: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
            anyhow!(
                "no tenant named {tenant} in {}; tenants: {}",
                config_path.display(),
                names.join(", ")
            )
        })?;
    let db = config.database_path();
    let store = StoreHandle::open(&db)?;
    let http = crate::workday::client::http_client(t.request_timeout)?;
    let how_to_finish = format!(
        "workday-collector authorize --config {} --tenant {tenant} --code 'URL'",
        config_path.display()
    );
    let connected = if let Some(src) = import_from {
        let text = if src.as_os_str() == "-" {
            tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin())).await??
        } else {
            std::fs::read_to_string(&src)
                .with_context(|| format!("cannot read {}", src.display()))?
        };
        let token = text.trim();
        if token.is_empty() {
            bail!("no refresh token in the input");
        }
        import(t, &store, &http, Secret::new(token)).await?
    } else if let Some(pasted) = code {
        let name = t.name.clone();
        let pending = store
            .call(move |s| s.take_pending_authorization(&name))
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "no sign-in is pending for tenant {tenant} (or it was used already): run                      'workday-collector authorize --config {} --tenant {tenant}' first",
                    config_path.display()
                )
            })?;
        if chrono::Utc::now().timestamp_millis() - pending.created_at_ms
            > PENDING_TTL.as_millis() as i64
        {
            bail!("the pending sign-in for tenant {tenant} is older than 15 minutes; run authorize again");
        }
        let (code, state_checked) = code_from_paste(&pasted, &pending.csrf_state)?;
        if !state_checked {
            eprintln!("note: only the code was given, so the sign-in's state could not be checked");
        }
        complete(t, &store, &http, &pending, &code).await?
    } else {
        let signin = begin(t, chrono::Utc::now().timestamp_millis())?;
        let redirect = t.redirect_uri.clone().context("redirect_uri is not set")?;
        println!("Open this URL in a browser, sign in to Workday as the account the collector should use, and click Allow:\n\n  {}\n", signin.url);
        if is_loopback_redirect(&redirect) {
            let lb = Loopback::listen(&redirect).await?;
            println!("Waiting for Workday to send the browser to {redirect} (up to 5 minutes)...");
            let code = lb
                .wait(&signin.pending.csrf_state, Duration::from_secs(300))
                .await?;
            complete(t, &store, &http, &signin.pending, &code).await?
        } else {
            let (name, pending) = (t.name.clone(), signin.pending.clone());
            store
                .call(move |s| s.save_pending_authorization(&name, &pending))
                .await?;
            println!(
                "After Allow, the browser is sent to {redirect}; that page may not load, which is fine.\n\
                 Paste the full address from the browser's address bar (or just the code) and press Enter:"
            );
            let line = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await??;
            if line.trim().is_empty() {
                println!("No input. When you have the address, finish within 15 minutes with:\n  {how_to_finish}");
                return Ok(());
            }
            let name = t.name.clone();
            let pending = store
                .call(move |s| s.take_pending_authorization(&name))
                .await?
                .context("the pending sign-in vanished (another authorize finished it?)")?;
            let (code, _) = code_from_paste(&line, &pending.csrf_state)?;
            complete(t, &store, &http, &pending, &code).await?
        }
    };
    println!(
        "signed in: the refresh token for tenant {tenant} is stored in {}",
        db.display()
    );
    println!(
        "Test API: {} activity entries in the last 15 minutes",
        connected.entries_last_15m
    );
    println!(
        "a running daemon picks it up within {} (credential_recheck); to use it at once: systemctl restart workday-collector",
        humantime(t.credential_recheck)
    );
    Ok(())
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s % 3600 == 0 && s > 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_forms() {
        let ok = code_from_paste(
            "https://collector.example.com/cb?code=abc123&state=S1",
            "S1",
        )
        .expect("url");
        assert_eq!(ok, ("abc123".to_string(), true));
        assert_eq!(
            code_from_paste("?code=abc&state=S1", "S1")
                .expect("query")
                .0,
            "abc"
        );
        assert_eq!(
            code_from_paste("  abc123  ", "S1").expect("bare"),
            ("abc123".to_string(), false)
        );
        let e = code_from_paste("https://x/cb?code=abc&state=OTHER", "S1").expect_err("mismatch");
        assert!(e.to_string().contains("does not match"), "{e}");
        let e =
            code_from_paste("https://x/cb?error=access_denied&state=S1", "S1").expect_err("denied");
        assert!(e.to_string().contains("access_denied"), "{e}");
        assert!(code_from_paste("https://x/cb?state=S1", "S1").is_err());
        assert!(code_from_paste("two words", "S1").is_err());
    }

    #[test]
    fn loopback_detection() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert!(is_loopback_redirect(&u("http://127.0.0.1:8765/callback")));
        assert!(is_loopback_redirect(&u("http://localhost:8765/callback")));
        assert!(is_loopback_redirect(&u("http://[::1]:8765/cb")));
        assert!(!is_loopback_redirect(&u("https://localhost:8765/callback")));
        assert!(!is_loopback_redirect(&u(
            "https://collector.example.com/callback"
        )));
    }
}
