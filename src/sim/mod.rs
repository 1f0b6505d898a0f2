//! A Workday tenant on loopback, faithful to `shared/workday-api.md`: the OAuth token endpoint
//! (HTTP Basic or form client auth, `expires_in` 3600, -1 or missing, optional refresh-token
//! rotation, revocation) and `activityLogging` (required `from`/`to`, `limit` ≤ 1000, `offset`,
//! `total`, the silent 10,000-entry cap, the count probe, unordered pages, late events,
//! Workday-shaped error bodies), with fault switches for tests.
//!
//! Used by the tests, `demo` and `simulate`. It never talks to the network beyond its listener.

pub mod dataset;

use crate::clock::{parse_rfc3339_ms, Clock};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use dataset::{mix, Dataset, DatasetSpec, SimEvent, OWN_POLLING_CONTENT};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the token endpoint reports `expires_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresIn {
    Seconds(i64),
    Missing,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub dataset: DatasetSpec,
    pub expires_in: ExpiresIn,
    /// Each refresh returns a new refresh token and invalidates the one used.
    pub rotate_refresh_tokens: bool,
    /// Whether `to` is inclusive (Workday's semantics are unknown; either must work).
    pub to_inclusive: bool,
    /// Whether `total` reports the capped (reachable) size instead of the true size.
    pub total_capped: bool,
    /// Log each activity-log request as an entry of its own, as Workday does.
    pub log_own_requests: bool,
    /// The API client's registered Redirection URI (authorization-code sign-in).
    pub redirect_uri: String,
    /// The client's PKCE checkbox: sign-ins must carry an S256 challenge.
    pub pkce_required: bool,
}

impl SimConfig {
    /// A tenant with `events` events over the seven days before `now_ms`, plus a busy hour.
    pub fn new(now_ms: i64, seed: u64, events: u64, busy_hour_events: u64) -> SimConfig {
        let day = 86_400_000;
        SimConfig {
            tenant: "acme".into(),
            client_id: "ZDg1ODc1NzctZjJhNy00ZjQ2LTk2ZWUtZjMzNjhjMWE0MmNm".into(),
            client_secret: format!("sim-client-secret-{:016x}", mix(seed ^ 0x5EC)),
            refresh_token: format!(
                "sim-refresh-{:032x}",
                u128::from(mix(seed ^ 0x7E)) << 64 | u128::from(mix(seed))
            ),
            dataset: DatasetSpec {
                seed,
                start_ms: now_ms - 7 * day + 3_600_000,
                end_ms: now_ms - 600_000,
                events,
                busy_hour: (busy_hour_events > 0).then_some((now_ms - 3 * day, busy_hour_events)),
                twins_per_mille: 10,
                late_per_mille: 20,
            },
            expires_in: ExpiresIn::Seconds(3600),
            rotate_refresh_tokens: false,
            to_inclusive: false,
            total_capped: false,
            log_own_requests: false,
            redirect_uri: "http://127.0.0.1:8765/callback".into(),
            pkce_required: true,
        }
    }
}

/// Fault switches, flipped by tests while the simulator runs.
#[derive(Debug, Default)]
pub struct Faults {
    /// The next N activity-log requests answer 429 with `Retry-After`.
    pub rate_limit_next: AtomicU32,
    pub retry_after_secs: AtomicU64,
    /// The next N activity-log requests answer 500 with an HTML page.
    pub server_error_next: AtomicU32,
    /// The next N token requests answer 503.
    pub token_error_next: AtomicU32,
    /// The next N activity-log responses are cut off mid-body.
    pub truncate_next: AtomicU32,
    /// Delay before every activity-log answer.
    pub delay_ms: AtomicU64,
    /// The person signing in clicks Deny.
    pub deny_consent: AtomicBool,
    /// The activity log answers 403 (no System Auditing domain, no System scope, or logging off).
    pub forbid_activity: AtomicBool,
    /// The activity log answers 404 (a wrong path).
    pub activity_not_found: AtomicBool,
    /// The activity log answers 401 to every token (e.g. a client without the System scope).
    pub reject_access_tokens: AtomicBool,
    /// "Enable User Activity Logging" is off: every query is empty.
    pub logging_disabled: AtomicBool,
    /// The `Date` header runs this far from the simulator's clock.
    pub date_skew_secs: AtomicI64,
    /// Hostile answers given (in order) to the next activity-log requests, before anything else.
    pub hostile_next: Mutex<std::collections::VecDeque<Hostile>>,
}

/// A hostile activity-log answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostile {
    /// 200 with a JSON page whose `total` is a word and whose `data` is an object.
    WrongTypes,
    /// 200 with a page whose entries are a number and a string.
    NonObjectEntries,
    /// 200 with an HTML page (a proxy's or a maintenance page).
    HtmlPage,
    /// 200 with a well-formed page of this many bytes (one entry padded out).
    Gigantic(usize),
    /// 200, then the body one byte per second, never finishing in time.
    Trickle,
    /// 302 to this URL (another host, which must never be asked with our token).
    RedirectTo(String),
}

impl Faults {
    pub fn push_hostile(&self, h: Hostile, times: usize) {
        if let Ok(mut q) = self.hostile_next.lock() {
            q.extend(std::iter::repeat_n(h, times));
        }
    }

    fn next_hostile(&self) -> Option<Hostile> {
        self.hostile_next.lock().ok()?.pop_front()
    }
}

fn hostile_answer(h: Hostile) -> Response {
    use axum::body::Body;
    use futures_util::stream::{self, StreamExt};
    let json = [("content-type", "application/json")];
    match h {
        Hostile::WrongTypes => (
            json,
            r#"{"total":"lots","data":{"requestTime":"2026-11-30T10:00:00Z"}}"#,
        )
            .into_response(),
        Hostile::NonObjectEntries => (json, r#"{"total":2,"data":[42,"entry"]}"#).into_response(),
        Hostile::HtmlPage => (
            [("content-type", "text/html")],
            "<!DOCTYPE html><html><body><h1>Service Temporarily Unavailable</h1></body></html>",
        )
            .into_response(),
        Hostile::Gigantic(bytes) => {
            let head = r#"{"total":1,"data":[{"requestTime":"2026-11-30T10:00:00Z","pad":""#;
            let tail = r#""}]}"#;
            let chunk = vec![b'a'; 1 << 20];
            let pad = bytes.saturating_sub(head.len() + tail.len());
            let (full, rest) = (pad / chunk.len(), pad % chunk.len());
            let parts = std::iter::once(head.as_bytes().to_vec())
                .chain(std::iter::repeat_n(chunk.clone(), full))
                .chain(std::iter::once(chunk[..rest].to_vec()))
                .chain(std::iter::once(tail.as_bytes().to_vec()))
                .map(Ok::<_, std::io::Error>);
            (json, Body::from_stream(stream::iter(parts))).into_response()
        }
        Hostile::Trickle => {
            let bytes = stream::iter(br#"{"total":0,"data":[]}"#.to_vec()).then(|b| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(vec![b])
            });
            (json, Body::from_stream(bytes)).into_response()
        }
        Hostile::RedirectTo(url) => {
            (StatusCode::FOUND, [("location", url)], "moved").into_response()
        }
    }
}

struct AccessGrant {
    expires_at_ms: i64,
}

struct IssuedCode {
    challenge: Option<String>,
    redirect_uri: String,
    expires_at_ms: i64,
}

struct Tokens {
    valid_refresh: HashSet<String>,
    codes: HashMap<String, IssuedCode>,
    access: HashMap<String, AccessGrant>,
    issued: Vec<String>,
    counter: u64,
}

#[derive(Debug, Default, Clone)]
pub struct RequestCounts {
    pub token_ok: u64,
    pub token_failed: u64,
    pub pages: u64,
    pub count_probes: u64,
    pub by_status: HashMap<u16, u64>,
}

struct SimState {
    cfg: SimConfig,
    clock: Clock,
    data: Dataset,
    own: Mutex<Vec<SimEvent>>,
    tokens: Mutex<Tokens>,
    faults: Faults,
    counts: Mutex<RequestCounts>,
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SimHandle {
    pub async fn start(
        cfg: SimConfig,
        clock: Clock,
        listen: SocketAddr,
    ) -> std::io::Result<SimHandle> {
        let data = Dataset::generate(&cfg.tenant, &cfg.dataset);
        let mut valid = HashSet::new();
        valid.insert(cfg.refresh_token.clone());
        let state = Arc::new(SimState {
            cfg,
            clock,
            data,
            own: Mutex::new(Vec::new()),
            tokens: Mutex::new(Tokens {
                valid_refresh: valid,
                codes: HashMap::new(),
                access: HashMap::new(),
                issued: Vec::new(),
                counter: 0,
            }),
            faults: Faults::default(),
            counts: Mutex::new(RequestCounts::default()),
        });
        let app = Router::new()
            .route("/ccx/oauth2/{tenant}/token", post(token))
            .route("/{tenant}/authorize", get(authorize))
            .route(
                "/ccx/api/privacy/v1/{tenant}/activityLogging",
                get(activity),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimHandle {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn tenant(&self) -> &str {
        &self.state.cfg.tenant
    }
    pub fn rest_api_endpoint(&self) -> String {
        format!("{}/ccx/api/v1/{}", self.base_url(), self.state.cfg.tenant)
    }
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/ccx/oauth2/{}/token",
            self.base_url(),
            self.state.cfg.tenant
        )
    }
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/{}/authorize", self.base_url(), self.state.cfg.tenant)
    }
    pub fn config(&self) -> &SimConfig {
        &self.state.cfg
    }
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }
    pub fn counts(&self) -> RequestCounts {
        self.state
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Every access token currently valid stops working (as after Workday's "several hours").
    pub fn expire_access_tokens(&self) {
        if let Ok(mut t) = self.state.tokens.lock() {
            t.access.clear();
        }
    }

    /// Every refresh token stops working (revoked, regenerated, or the sandbox was refreshed).
    pub fn revoke_refresh_tokens(&self) {
        if let Ok(mut t) = self.state.tokens.lock() {
            t.valid_refresh.clear();
        }
    }

    /// A new valid refresh token, as an admin would generate in Workday.
    pub fn issue_refresh_token(&self) -> String {
        let mut t = match self.state.tokens.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let tok = new_token(&mut t, self.state.cfg.dataset.seed, "refresh");
        t.valid_refresh.insert(tok.clone());
        tok
    }

    /// Every secret the simulator knows or handed out: none may appear in the collector's logs.
    pub fn secrets(&self) -> Vec<String> {
        let mut s = vec![
            self.state.cfg.client_secret.clone(),
            self.state.cfg.refresh_token.clone(),
        ];
        if let Ok(t) = self.state.tokens.lock() {
            s.extend(t.issued.iter().cloned());
        }
        s
    }

    /// Ground truth: every entry with `from_ms <= requestTime <= to_ms` (`<` at the end when the
    /// simulator's `to` is exclusive), visible now, rendered exactly as served.
    pub fn visible_entries(&self, from_ms: i64, to_ms: i64) -> Vec<String> {
        let s = &self.state;
        let now = s.clock.now_ms();
        let mut out: Vec<String> = s
            .data
            .matching(from_ms, to_ms, s.cfg.to_inclusive, now)
            .into_iter()
            .map(|i| s.data.rendered(i).to_string())
            .collect();
        if let Ok(own) = s.own.lock() {
            out.extend(
                own.iter()
                    .filter(|e| in_bounds(e, from_ms, to_ms, s.cfg.to_inclusive, now))
                    .map(|e| s.data.render(e)),
            );
        }
        out
    }

    /// Events generated in total (visible or not), including twins.
    pub fn generated_events(&self) -> usize {
        self.state.data.events.len()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn in_bounds(e: &SimEvent, from: i64, to: i64, to_inclusive: bool, now: i64) -> bool {
    e.time_ms >= from
        && (e.time_ms < to || (to_inclusive && e.time_ms == to))
        && e.visible_ms <= now
}

fn new_token(t: &mut Tokens, seed: u64, kind: &str) -> String {
    t.counter += 1;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let tok = format!(
        "{kind}-{:016x}{:016x}",
        mix(seed ^ t.counter ^ nanos),
        mix(nanos.wrapping_add(t.counter))
    );
    t.issued.push(tok.clone());
    tok
}

fn workday_error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

fn count(state: &SimState, f: impl FnOnce(&mut RequestCounts), status: u16) {
    if let Ok(mut c) = state.counts.lock() {
        f(&mut c);
        *c.by_status.entry(status).or_default() += 1;
    }
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// `application/x-www-form-urlencoded` decoding of one Basic-auth half (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn token(
    State(s): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let fail = |status: StatusCode, body: serde_json::Value| {
        count(&s, |c| c.token_failed += 1, status.as_u16());
        (status, Json(body)).into_response()
    };
    if tenant != s.cfg.tenant {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "Invalid Tenant Name"}),
        );
    }
    if take(&s.faults.token_error_next) {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable"}),
        );
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (form_decode(a), form_decode(b)))
        });
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if id != s.cfg.client_id || secret != s.cfg.client_secret {
        return fail(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let mut t = match s.tokens.lock() {
        Ok(t) => t,
        Err(p) => p.into_inner(),
    };
    let presented = match grant.as_str() {
        "refresh_token" => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            if !t.valid_refresh.contains(&presented) {
                drop(t);
                return fail(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": "Invalid refresh token"}),
                );
            }
            Some(presented)
        }
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let issued = t.codes.remove(&code);
            let verdict = match issued {
                None => Err("Invalid or used authorization code"),
                Some(c) if c.expires_at_ms < s.clock.now_ms() => Err("Authorization code expired"),
                Some(c) if form.get("redirect_uri") != Some(&c.redirect_uri) => {
                    Err("redirect_uri mismatch")
                }
                Some(c) => match (&c.challenge, form.get("code_verifier")) {
                    (None, _) => Ok(()),
                    (Some(_), None) => Err("code_verifier required"),
                    (Some(ch), Some(v)) if &pkce_s256(v) == ch => Ok(()),
                    (Some(_), Some(_)) => Err("PKCE verification failed"),
                },
            };
            if let Err(why) = verdict {
                drop(t);
                return fail(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": why}),
                );
            }
            None
        }
        _ => {
            drop(t);
            return fail(
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type"}),
            );
        }
    };
    let seed = s.cfg.dataset.seed;
    let access = new_token(&mut t, seed, "access");
    let lifetime_ms = match s.cfg.expires_in {
        ExpiresIn::Seconds(n) if n > 0 => n * 1000,
        // "Several hours", then it can fail at any time.
        _ => 4 * 3_600_000,
    };
    t.access.insert(
        access.clone(),
        AccessGrant {
            expires_at_ms: s.clock.now_ms() + lifetime_ms,
        },
    );
    let refresh = match presented {
        Some(p) if !s.cfg.rotate_refresh_tokens => p,
        old => {
            if let Some(p) = old {
                t.valid_refresh.remove(&p);
            }
            let r = new_token(&mut t, seed, "refresh");
            t.valid_refresh.insert(r.clone());
            r
        }
    };
    drop(t);
    let mut body =
        json!({"access_token": access, "token_type": "Bearer", "refresh_token": refresh});
    if let ExpiresIn::Seconds(n) = s.cfg.expires_in {
        body["expires_in"] = json!(n);
    }
    count(&s, |c| c.token_ok += 1, 200);
    with_date(&s, Json(body).into_response())
}

fn pkce_s256(verifier: &str) -> String {
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A `Date` header from the simulator's clock (plus any configured skew).
fn with_date(s: &SimState, mut resp: Response) -> Response {
    let skew = s.faults.date_skew_secs.load(Ordering::SeqCst);
    let at = crate::clock::ms_to_datetime(s.clock.now_ms() + skew * 1000);
    if let Ok(v) = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string().parse() {
        resp.headers_mut().insert("date", v);
    }
    resp
}

/// Workday's sign-in page with auto-consent: redirects to the registered URI with a code.
async fn authorize(
    State(s): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let page = |status: StatusCode, msg: &str| {
        (
            status,
            [("content-type", "text/html")],
            format!("<html><body><p>{msg}</p></body></html>"),
        )
            .into_response()
    };
    if tenant != s.cfg.tenant {
        return page(StatusCode::NOT_FOUND, "Invalid tenant");
    }
    if q.get("client_id") != Some(&s.cfg.client_id) {
        return page(StatusCode::BAD_REQUEST, "Invalid client id");
    }
    if q.get("redirect_uri") != Some(&s.cfg.redirect_uri) {
        return page(
            StatusCode::BAD_REQUEST,
            "The redirect URI does not match the one registered for this API client",
        );
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return page(StatusCode::BAD_REQUEST, "Unsupported response type");
    }
    let state = q.get("state").cloned().unwrap_or_default();
    let redirect = |params: &[(&str, &str)]| {
        let mut url = match url::Url::parse(&s.cfg.redirect_uri) {
            Ok(u) => u,
            Err(_) => return page(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect uri"),
        };
        url.query_pairs_mut().extend_pairs(params.iter().copied());
        (StatusCode::FOUND, [("location", url.to_string())]).into_response()
    };
    let challenge = q.get("code_challenge").cloned();
    if s.cfg.pkce_required
        && (challenge.is_none()
            || q.get("code_challenge_method").map(String::as_str) != Some("S256"))
    {
        return redirect(&[
            ("error", "invalid_request"),
            ("error_description", "PKCE S256 code_challenge required"),
            ("state", &state),
        ]);
    }
    if s.faults.deny_consent.load(Ordering::SeqCst) {
        return redirect(&[("error", "access_denied"), ("state", &state)]);
    }
    let code = {
        let mut t = match s.tokens.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let code = new_token(&mut t, s.cfg.dataset.seed, "code");
        t.codes.insert(
            code.clone(),
            IssuedCode {
                challenge,
                redirect_uri: s.cfg.redirect_uri.clone(),
                expires_at_ms: s.clock.now_ms() + 5 * 60_000,
            },
        );
        code
    };
    redirect(&[("code", &code), ("state", &state)])
}

async fn activity(
    State(s): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let delay = s.faults.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let resp = match s.faults.next_hostile() {
        Some(h) => hostile_answer(h),
        None => answer_activity(&s, &tenant, &headers, &q),
    };
    let status = resp.status().as_u16();
    count(&s, |_| {}, status);
    with_date(&s, resp)
}

fn answer_activity(
    s: &SimState,
    tenant: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    let now = s.clock.now_ms();
    if tenant != s.cfg.tenant {
        return workday_error(StatusCode::SERVICE_UNAVAILABLE, "Invalid Tenant Name");
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let authorized = s
        .tokens
        .lock()
        .map(|t| t.access.get(bearer).is_some_and(|g| g.expires_at_ms > now))
        .unwrap_or(false);
    if !authorized || s.faults.reject_access_tokens.load(Ordering::SeqCst) {
        return workday_error(StatusCode::UNAUTHORIZED, "invalid or expired access token");
    }
    if s.faults.activity_not_found.load(Ordering::SeqCst) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Resource not found"})),
        )
            .into_response();
    }
    if s.faults.forbid_activity.load(Ordering::SeqCst) {
        return workday_error(
            StatusCode::FORBIDDEN,
            "The task submitted is not authorized.",
        );
    }
    if take(&s.faults.rate_limit_next) {
        let secs = s.faults.retry_after_secs.load(Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            Json(json!({"error": "Too many requests"})),
        )
            .into_response();
    }
    if take(&s.faults.server_error_next) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/html")],
            "<html><body><h1>Workday is currently unavailable</h1></body></html>",
        )
            .into_response();
    }
    let mut errors = Vec::new();
    let mut time = |key: &str| match q.get(key) {
        None => {
            errors.push(json!({"error": format!("{key}: required parameter is missing")}));
            None
        }
        Some(v) => match parse_rfc3339_ms(v) {
            Some(t) => Some(t),
            None => {
                errors.push(json!({"error": format!("{key}: invalid date-time {v:?}")}));
                None
            }
        },
    };
    let from = time("from");
    let to = time("to");
    let limit: u64 = match q.get("limit").map(|v| v.parse::<u64>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            errors.push(json!({"error": "limit: must be between 1 and 1000"}));
            0
        }
    };
    let offset: u64 = match q.get("offset").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            errors.push(json!({"error": "offset: must be a non-negative integer"}));
            0
        }
    };
    let instances: u64 = q
        .get("instancesReturned")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let (Some(from), Some(to)) = (from, to) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid request", "errors": errors})),
        )
            .into_response();
    };
    if !errors.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid request", "errors": errors})),
        )
            .into_response();
    }
    if from > to {
        return workday_error(StatusCode::BAD_REQUEST, "from must not be after to");
    }

    let logging = !s.faults.logging_disabled.load(Ordering::SeqCst);
    // Each hit with its index in the dataset (None: an entry about the collector's own polling).
    let mut hits: Vec<(SimEvent, Option<u32>)> = s
        .data
        .matching(from, to, s.cfg.to_inclusive, now)
        .into_iter()
        .map(|i| (s.data.events[i as usize], Some(i)))
        .collect();
    if let Ok(own) = s.own.lock() {
        hits.extend(
            own.iter()
                .filter(|e| in_bounds(e, from, to, s.cfg.to_inclusive, now))
                .map(|e| (*e, None)),
        );
    }
    if !logging {
        hits.clear();
    }
    if s.cfg.log_own_requests {
        if let Ok(mut own) = s.own.lock() {
            own.push(SimEvent {
                time_ms: now,
                visible_ms: now + 30_000,
                content: OWN_POLLING_CONTENT,
            });
        }
    }

    if q.get("returnUserActivityEntryCount").map(String::as_str) == Some("true") {
        if let Ok(mut c) = s.counts.lock() {
            c.count_probes += 1;
        }
        // Workday has been seen answering the count as a number and as a string.
        let n = hits.len();
        let v = if s.cfg.dataset.seed % 2 == 0 {
            json!(n)
        } else {
            json!(n.to_string())
        };
        return Json(json!({"total": 1, "data": [{"userActivityEntryCount": v}]})).into_response();
    }
    if let Ok(mut c) = s.counts.lock() {
        c.pages += 1;
    }

    // Unordered, but the same order for the same query, so offsets page consistently.
    let qkey = mix(from as u64 ^ mix(to as u64) ^ s.cfg.dataset.seed);
    hits.sort_unstable_by_key(|(e, _)| {
        mix(e.content ^ qkey ^ e.time_ms as u64 ^ mix(e.visible_ms as u64))
    });
    let total = hits.len() as u64;
    let cap = crate::workday::ENTRY_CAP.saturating_mul(instances);
    let reachable = total.min(cap);
    let start = offset.min(reachable) as usize;
    let end = offset.saturating_add(limit).min(reachable) as usize;
    let mut body = String::with_capacity((end - start) * 600 + 64);
    body.push_str(&format!(
        "{{\"total\":{},\"data\":[",
        if s.cfg.total_capped { reachable } else { total }
    ));
    for (i, (e, index)) in hits[start..end].iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        match index {
            Some(k) => body.push_str(s.data.rendered(*k)),
            None => body.push_str(&s.data.render(e)),
        }
    }
    body.push_str("]}");
    if take(&s.faults.truncate_next) {
        body.truncate(body.len() / 2);
    }
    ([("content-type", "application/json")], body).into_response()
}
