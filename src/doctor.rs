//! `doctor`: one line per check, OK/WARN/FAIL, and for each problem the one thing to do.
//! It reads the config, the state directory and database (read-only), reaches each endpoint
//! (DNS, TCP, TLS), performs a refresh grant (storing a rotated token, as the daemon would), asks
//! the activity log for the last day, compares clocks, and opens each sink.

use crate::auth::TokenSource;
use crate::config::{Config, SinkKind, TenantConfig};
use crate::store::{Store, StoreHandle};
use crate::workday::client::http_client;
use crate::workday::{ApiError, Query, WorkdayClient};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub check: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// True when everything collection needs passed (warnings allowed).
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let tag = match c.status {
                Status::Ok => "OK  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            let who = c
                .tenant
                .as_ref()
                .map(|t| format!("{t}: "))
                .unwrap_or_default();
            out.push_str(&format!("{tag} {who}{}: {}\n", c.check, c.detail));
            if let Some(r) = &c.remedy {
                out.push_str(&format!("     -> {r}\n"));
            }
        }
        out.push_str(if self.ok {
            "everything collection needs works\n"
        } else {
            "collection cannot work until the FAIL lines are fixed\n"
        });
        out
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn add(
        &mut self,
        tenant: Option<&str>,
        check: &str,
        status: Status,
        detail: impl Into<String>,
        remedy: Option<&str>,
    ) {
        self.0.push(Check {
            tenant: tenant.map(str::to_string),
            check: check.to_string(),
            status,
            detail: detail.into(),
            remedy: remedy.map(str::to_string),
        });
    }
}

pub const REMEDY_INVALID_CLIENT: &str =
    "check client_id and the client secret file against Workday's View API Clients screen (regenerate the secret if unsure)";
pub const REMEDY_INVALID_GRANT: &str = "generate a new refresh token in Workday (Manage Refresh Tokens for Integrations) or run 'workday-collector authorize'; sandbox tenants lose their tokens whenever they are refreshed from production";
pub const REMEDY_TOKEN_404: &str = "token_endpoint's path is wrong: copy the Token Endpoint from Workday's View API Clients screen";
pub const REMEDY_TENANT_NAME: &str = "the tenant name in token_endpoint and rest_api_endpoint is wrong: copy both from Workday's View API Clients screen";
pub const REMEDY_NO_TOKEN: &str =
    "run 'workday-collector authorize --config FILE --tenant NAME', or set refresh_token_file";
pub const REMEDY_API_401: &str = "Workday refused a freshly issued access token: add the System scope to the API client (Edit API Client)";
pub const REMEDY_API_403: &str = "give the integration user the System Auditing domain (Get/View) through a security group and activate the security policy change; give the API client the System scope; turn on 'Enable User Activity Logging' (Edit Tenant Setup – System)";
pub const REMEDY_API_404: &str =
    "rest_api_endpoint is wrong: copy the Workday REST API Endpoint from View API Clients";
pub const REMEDY_EMPTY_LOG: &str = "turn on 'Enable User Activity Logging' in Edit Tenant Setup – System (without it Workday records nothing)";
pub const REMEDY_CLOCK: &str =
    "synchronise this machine's clock (systemd-timesyncd or chrony); windows are computed from it";
pub const REMEDY_TLS: &str = "the server's certificate is not trusted for this host: if a TLS-inspecting proxy sits in between, add its CA to the system trust store; never turn verification off";

fn token_remedy(msg: &str) -> &'static str {
    if msg.contains("invalid_client") || msg.contains("unauthorized_client") {
        REMEDY_INVALID_CLIENT
    } else if msg.contains("invalid_grant") {
        REMEDY_INVALID_GRANT
    } else if msg.contains("(404)") {
        REMEDY_TOKEN_404
    } else if msg.contains("does not know this tenant") {
        REMEDY_TENANT_NAME
    } else if msg.contains("no refresh token") {
        REMEDY_NO_TOKEN
    } else {
        "check that this machine can reach the token endpoint (proxy, firewall), then run doctor again"
    }
}

/// Runs every check.
pub async fn run(config_path: &Path, only_tenant: Option<&str>) -> Report {
    let mut c = Checks(Vec::new());
    let config = match Config::load(config_path) {
        Ok(cfg) => {
            c.add(
                None,
                "config",
                Status::Ok,
                format!(
                    "{} ({} tenant(s), {} sink(s))",
                    config_path.display(),
                    cfg.tenants.len(),
                    cfg.sinks.len()
                ),
                None,
            );
            cfg
        }
        Err(e) => {
            c.add(
                None,
                "config",
                Status::Fail,
                e.to_string(),
                Some("fix each key named above; 'workday-collector check-config' re-checks"),
            );
            return finish(c);
        }
    };
    check_state(&config, &mut c);
    let tenants: Vec<&TenantConfig> = config
        .tenants
        .iter()
        .filter(|t| only_tenant.is_none_or(|n| n == t.name))
        .collect();
    if let Some(n) = only_tenant {
        if tenants.is_empty() {
            let names: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
            c.add(
                None,
                "tenant",
                Status::Fail,
                format!("no tenant named {n} in the config"),
                Some(&format!("use one of: {}", names.join(", "))),
            );
        }
    }
    for t in tenants {
        check_tenant(&config, t, &mut c).await;
    }
    for s in &config.sinks {
        check_sink(s, &mut c);
    }
    finish(c)
}

fn finish(c: Checks) -> Report {
    Report {
        ok: !c.0.iter().any(|x| x.status == Status::Fail),
        checks: c.0,
    }
}

fn check_state(config: &Config, c: &mut Checks) {
    let dir = &config.state_dir;
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b"x"))
        .and_then(|_| std::fs::remove_file(&probe))
    {
        Ok(()) => c.add(
            None,
            "state directory",
            Status::Ok,
            format!("{} is writable", dir.display()),
            None,
        ),
        Err(e) => c.add(
            None,
            "state directory",
            Status::Fail,
            format!("{} is not writable: {e}", dir.display()),
            Some("create it owned by the service user (systemd: StateDirectory=workday-collector)"),
        ),
    }
    let db = config.database_path();
    match Store::inspect(&db) {
        Ok(None) => c.add(None, "database", Status::Ok, format!("{} does not exist yet; the first run creates it", db.display()), None),
        Ok(Some(v)) if v > crate::store::SCHEMA_VERSION => c.add(
            None,
            "database",
            Status::Fail,
            format!("schema version {v} is newer than this build ({})", crate::store::SCHEMA_VERSION),
            Some("run the newer workday-collector, or restore a backup made with this version"),
        ),
        Ok(Some(v)) => c.add(None, "database", Status::Ok, format!("{} readable, schema version {v} (this build: {})", db.display(), crate::store::SCHEMA_VERSION), None),
        Err(e) => c.add(None, "database", Status::Fail, format!("{e:#}"), Some("move the file aside (the next run starts a fresh database and backfills again) or restore a backup")),
    }
}

async fn check_tenant(config: &Config, t: &TenantConfig, c: &mut Checks) {
    let tn = Some(t.name.as_str());
    // Reachability of every distinct endpoint.
    let mut endpoints = vec![
        ("token_endpoint", &t.token_endpoint),
        ("rest_api_endpoint", &t.activity_url),
    ];
    if let Some(a) = &t.authorization_endpoint {
        endpoints.push(("authorization_endpoint", a));
    }
    let mut seen = std::collections::HashSet::new();
    let mut reachable = true;
    for (key, url) in &endpoints {
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        if !seen.insert((host.clone(), port)) {
            continue;
        }
        reachable &= check_endpoint(t, key, url, &host, port, c).await;
    }
    check_host_names(t, c);
    if !reachable {
        return;
    }

    // Token endpoint: the refresh grant, exactly as the daemon does it.
    let Ok(http) = http_client(Duration::from_secs(20)) else {
        return;
    };
    let store = match StoreHandle::open(&config.database_path()) {
        Ok(s) => s,
        Err(e) => {
            c.add(
                tn,
                "token endpoint",
                Status::Fail,
                format!("cannot open the state database: {e:#}"),
                Some("see the database check"),
            );
            return;
        }
    };
    let tokens = match TokenSource::new(t, http.clone(), store.clone()).await {
        Ok(ts) => ts,
        Err(e) => {
            c.add(
                tn,
                "token endpoint",
                Status::Fail,
                format!("{e:#}"),
                Some("see the database check"),
            );
            return;
        }
    };
    let access = match tokens.access_token().await {
        Ok(a) => {
            c.add(
                tn,
                "token endpoint",
                Status::Ok,
                "the refresh grant works",
                None,
            );
            a
        }
        Err(e) => {
            let msg = e.to_string();
            c.add(
                tn,
                "token endpoint",
                Status::Fail,
                msg.clone(),
                Some(token_remedy(&msg)),
            );
            check_token_expiry(t, &store, c).await;
            return;
        }
    };
    check_token_expiry(t, &store, c).await;

    // Activity log over the last day.
    let client = WorkdayClient::new(http, t.activity_url.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let q = Query {
        from_ms: now - 86_400_000,
        to_ms: now,
        limit: 1,
        offset: 0,
    };
    let (date, result) = client.probe(&access, &q).await;
    match result {
        Ok(page) => {
            let total = page.total.unwrap_or(page.entries.len() as u64);
            if total == 0 {
                c.add(tn, "activity log", Status::Warn, "no entries over the last day", Some(REMEDY_EMPTY_LOG));
            } else {
                c.add(tn, "activity log", Status::Ok, format!("{total} entries over the last day"), None);
            }
        }
        Err(ApiError::Unauthorized(m)) => c.add(tn, "activity log", Status::Fail, format!("401: {m}"), Some(REMEDY_API_401)),
        Err(ApiError::NeedsPerson(m)) if m.contains("(403") => c.add(tn, "activity log", Status::Fail, m, Some(REMEDY_API_403)),
        Err(ApiError::NeedsPerson(m)) if m.contains("(404") => c.add(tn, "activity log", Status::Fail, m, Some(REMEDY_API_404)),
        Err(ApiError::NeedsPerson(m)) if m.contains("does not know this tenant") => c.add(tn, "activity log", Status::Fail, m, Some(REMEDY_TENANT_NAME)),
        Err(e) => c.add(tn, "activity log", Status::Fail, e.to_string(), Some("Workday is unavailable or answering garbage; try again later (Friday nights US Pacific are maintenance)")),
    }
    match date {
        Some(server_ms) => {
            let skew = (chrono::Utc::now().timestamp_millis() - server_ms) / 1000;
            let detail = format!("{skew:+}s against workday's Date header");
            if skew.abs() <= 30 {
                c.add(tn, "clock", Status::Ok, detail, None);
            } else if skew.abs() <= 300 {
                c.add(tn, "clock", Status::Warn, detail, Some(REMEDY_CLOCK));
            } else {
                c.add(tn, "clock", Status::Fail, detail, Some(REMEDY_CLOCK));
            }
        }
        None => c.add(
            tn,
            "clock",
            Status::Warn,
            "workday sent no Date header; skew unknown",
            None,
        ),
    }
}

async fn check_endpoint(
    t: &TenantConfig,
    key: &str,
    url: &url::Url,
    host: &str,
    port: u16,
    c: &mut Checks,
) -> bool {
    let tn = Some(t.name.as_str());
    let name = format!("{key} {host}:{port}");
    let addrs = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host, port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            c.add(
                tn,
                &name,
                Status::Fail,
                format!("DNS: cannot resolve {host}: {e}"),
                Some(&format!("check {key} for typos, and this machine's DNS")),
            );
            return false;
        }
        Err(_) => {
            c.add(
                tn,
                &name,
                Status::Fail,
                format!("DNS: resolving {host} timed out"),
                Some("check this machine's DNS"),
            );
            return false;
        }
    };
    let Some(addr) = addrs.first().copied() else {
        c.add(
            tn,
            &name,
            Status::Fail,
            format!("DNS: {host} has no address"),
            Some(&format!("check {key}")),
        );
        return false;
    };
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            c.add(
                tn,
                &name,
                Status::Fail,
                format!("TCP: cannot connect to {addr}: {e}"),
                Some("allow outbound connections to this host and port (firewall, proxy)"),
            );
            return false;
        }
        Err(_) => {
            c.add(
                tn,
                &name,
                Status::Fail,
                format!("TCP: connecting to {addr} timed out"),
                Some("allow outbound connections to this host and port (firewall, proxy)"),
            );
            return false;
        }
    }
    if url.scheme() == "https" {
        let Ok(http) = http_client(Duration::from_secs(15)) else {
            return false;
        };
        let mut base = url.clone();
        base.set_path("/");
        base.set_query(None);
        if let Err(e) = http.head(base).send().await {
            let chain = crate::workday::client::error_chain(&e);
            if chain.to_ascii_lowercase().contains("certificate")
                || chain.to_ascii_lowercase().contains("tls")
                || chain.contains("handshake")
            {
                c.add(
                    tn,
                    &name,
                    Status::Fail,
                    format!("TLS: {chain}"),
                    Some(REMEDY_TLS),
                );
                return false;
            }
            c.add(
                tn,
                &name,
                Status::Warn,
                format!("TLS: reached, but the request failed: {chain}"),
                None,
            );
            return true;
        }
        c.add(
            tn,
            &name,
            Status::Ok,
            format!("resolves to {addr}, connects, certificate valid for {host}"),
            None,
        );
    } else {
        c.add(
            tn,
            &name,
            Status::Ok,
            format!("resolves to {addr}, connects (plain http: loopback only)"),
            None,
        );
    }
    true
}

/// Workday's API and token endpoints live on a services host; the sign-in page on the UI host.
fn check_host_names(t: &TenantConfig, c: &mut Checks) {
    let tn = Some(t.name.as_str());
    let is_loopback = |u: &url::Url| {
        matches!(
            u.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]")
        )
    };
    let is_workday = |h: &str| {
        let h = h.to_ascii_lowercase();
        h.ends_with(".workday.com")
            || h.ends_with(".myworkday.com")
            || h.ends_with(".workdaysuv.com")
    };
    let mut notes = Vec::new();
    for (key, u) in [
        ("token_endpoint", &t.token_endpoint),
        ("rest_api_endpoint", &t.rest_api_endpoint),
    ] {
        if is_loopback(u) {
            continue;
        }
        let h = u.host_str().unwrap_or_default();
        if !is_workday(h) {
            notes.push(format!("{key} host {h} does not look like a Workday host"));
        } else if !h.contains("services") {
            notes.push(format!("{key} host {h} looks like a UI host; Workday's API and token endpoints are on the services host (like wd2-impl-services1.workday.com)"));
        }
    }
    if let Some(a) = &t.authorization_endpoint {
        let h = a.host_str().unwrap_or_default();
        if !is_loopback(a) && h.contains("services") {
            notes.push(format!("authorization_endpoint host {h} is a services host; the sign-in page is on the UI host (like impl.workday.com): are token_endpoint and authorization_endpoint swapped?"));
        }
    }
    if notes.is_empty() {
        c.add(
            tn,
            "host names",
            Status::Ok,
            "services host for token and API, UI host for sign-in",
            None,
        );
    } else {
        c.add(
            tn,
            "host names",
            Status::Warn,
            notes.join("; "),
            Some("paste the endpoints exactly as Workday's View API Clients screen shows them"),
        );
    }
}

async fn check_token_expiry(t: &TenantConfig, store: &StoreHandle, c: &mut Checks) {
    let tn = Some(t.name.as_str());
    let name = t.name.clone();
    let health = store
        .call(move |s| s.tenant_health(&name))
        .await
        .ok()
        .flatten();
    let mut detail = Vec::new();
    if let Some(h) = &health {
        if let Some(ms) = h.last_refresh_ok_ms {
            detail.push(format!(
                "last used successfully {}",
                crate::clock::rfc3339_s(ms)
            ));
        }
        match h.expires_in_raw.as_deref() {
            Some("-1") => detail.push("workday reports expires_in -1: access tokens last several hours and may end at any time (the collector refreshes on 401)".into()),
            None => detail.push("workday sends no expires_in (the collector assumes an hour and refreshes on 401)".into()),
            Some(s) => detail.push(format!("access tokens last {s}s")),
        }
    }
    let mut status = Status::Ok;
    let mut remedy = None;
    if let Some(exp) = t.refresh_token_expires_ms {
        let left = exp - chrono::Utc::now().timestamp_millis();
        if left <= 0 {
            status = Status::Fail;
            detail.push(format!(
                "refresh_token_expires {} has passed",
                crate::clock::rfc3339_s(exp)
            ));
            remedy = Some(REMEDY_INVALID_GRANT);
        } else {
            detail.push(format!(
                "refresh token expires in {} days",
                left / 86_400_000
            ));
            if left <= t.refresh_token_warn_before.as_millis() as i64 {
                status = Status::Warn;
                remedy = Some(REMEDY_INVALID_GRANT);
            }
        }
    } else {
        detail.push("no refresh_token_expires set (fine for non-expiring tokens)".into());
    }
    c.add(tn, "refresh token", status, detail.join("; "), remedy);
}

/// A sink's endpoint accepts TCP connections.
fn check_connects(c: &mut Checks, name: &str, host: &str, port: u16, expect: &str) {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .ok()
        .and_then(|mut a| a.next());
    match addr.map(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5))) {
        Some(Ok(_)) => c.add(
            None,
            name,
            Status::Ok,
            format!("{host}:{port} accepts connections"),
            None,
        ),
        Some(Err(e)) => c.add(
            None,
            name,
            Status::Fail,
            format!("cannot connect to {host}:{port}: {e}"),
            Some(&format!("check the address, and that {expect}")),
        ),
        None => c.add(
            None,
            name,
            Status::Fail,
            format!("cannot resolve {host}"),
            Some("check the address and DNS"),
        ),
    }
}

fn check_sink(s: &crate::config::SinkConfig, c: &mut Checks) {
    let name = format!("sink {}", s.name);
    match &s.kind {
        SinkKind::Stdout => c.add(None, &name, Status::Ok, "stdout", None),
        SinkKind::Syslog(sy) => {
            if sy.transport == crate::config::SyslogTransport::Udp {
                c.add(
                    None,
                    &name,
                    Status::Ok,
                    format!("UDP to {} (cannot be checked without sending)", sy.address),
                    None,
                );
                return;
            }
            match sy.address.rsplit_once(':') {
                Some((host, port)) => {
                    let host = host.trim_matches(['[', ']']);
                    check_connects(
                        c,
                        &name,
                        host,
                        port.parse().unwrap_or(514),
                        "the syslog receiver listens there",
                    );
                }
                None => c.add(
                    None,
                    &name,
                    Status::Fail,
                    format!("bad address {}", sy.address),
                    Some("use host:port"),
                ),
            }
        }
        SinkKind::Http(_) | SinkKind::SplunkHec(_) | SinkKind::Elasticsearch(_) => {
            let url = match &s.kind {
                SinkKind::Http(h) => &h.url,
                SinkKind::SplunkHec(h) => &h.url,
                SinkKind::Elasticsearch(e) => &e.url,
                _ => return,
            };
            let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
            check_connects(
                c,
                &name,
                host,
                url.port_or_known_default().unwrap_or(443),
                "the receiver is up at that url",
            );
        }
        SinkKind::File { path, .. } => {
            let r = path
                .parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|_| {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(path)
                });
            match r {
                Ok(_) => c.add(None, &name, Status::Ok, format!("{} is writable", path.display()), None),
                Err(e) => c.add(
                    None,
                    &name,
                    Status::Fail,
                    format!("cannot open {} for writing: {e}", path.display()),
                    Some("make the directory writable by the service user (systemd: LogsDirectory=workday-collector)"),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(token: &str, authz: &str) -> TenantConfig {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s"), "x").expect("write");
        let text = format!(
            "state_dir = \"st\"\n[[tenant]]\nname = \"acme\"\n\
             rest_api_endpoint = \"https://wd2-impl-services1.workday.com/ccx/api/v1/acme\"\n\
             token_endpoint = \"{token}\"\nauthorization_endpoint = \"{authz}\"\nclient_id = \"c\"\n\
             client_secret_file = \"s\"\nrefresh_token_file = \"s\"\n[[sink]]\nname = \"o\"\ntype = \"stdout\"\n"
        );
        let cfg = Config::parse(&text, &dir.path().join("c.toml")).expect("config");
        cfg.tenants[0].clone()
    }

    #[test]
    fn host_names_flag_a_swap_and_pass_the_usual_layout() {
        let mut c = Checks(Vec::new());
        check_host_names(
            &tenant(
                "https://wd2-impl-services1.workday.com/ccx/oauth2/acme/token",
                "https://impl.workday.com/acme/authorize",
            ),
            &mut c,
        );
        assert_eq!(c.0[0].status, Status::Ok, "{:?}", c.0);
        let mut c = Checks(Vec::new());
        check_host_names(
            &tenant(
                "https://impl.workday.com/ccx/oauth2/acme/token",
                "https://wd2-impl-services1.workday.com/acme/authorize",
            ),
            &mut c,
        );
        assert_eq!(c.0[0].status, Status::Warn);
        assert!(
            c.0[0].detail.contains("swapped") && c.0[0].detail.contains("UI host"),
            "{}",
            c.0[0].detail
        );
    }

    #[test]
    fn remedies_follow_the_error() {
        assert_eq!(
            token_remedy("client credentials rejected by workday (invalid_client)"),
            REMEDY_INVALID_CLIENT
        );
        assert_eq!(
            token_remedy("refresh token rejected by workday (invalid_grant)"),
            REMEDY_INVALID_GRANT
        );
        assert_eq!(
            token_remedy("token endpoint not found (404): …"),
            REMEDY_TOKEN_404
        );
    }
}
