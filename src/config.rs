//! TOML → validated [`Config`]. Every problem is collected into one report that names its key, so
//! an operator fixes a config in one round. Secrets (`*_file`, `*_env`) are resolved here and held
//! as [`Secret`]; nothing else reads the environment or secret files.
//!
//! This module does not open the database, contact Workday or create sink files.

use crate::secret::Secret;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Table, Value};
use url::Url;

/// Workday serves at most this many entries per page.
pub const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` when "off".
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub tenants: Vec<TenantConfig>,
    pub sinks: Vec<SinkConfig>,
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub name: String,
    pub rest_api_endpoint: Url,
    /// `…/ccx/api/privacy/v1/{tenant}/activityLogging`, derived from `rest_api_endpoint`.
    pub activity_url: Url,
    pub token_endpoint: Url,
    pub authorization_endpoint: Option<Url>,
    pub client_id: String,
    pub client_secret: Secret,
    /// The configured (initial) refresh token; absent for clients signed in with `authorize`.
    pub refresh_token: Option<Secret>,
    /// Where `refresh_token` came from, re-read when credentials are rechecked.
    pub refresh_token_source: Option<SecretSource>,
    pub client_auth: ClientAuth,
    /// The API client's registered Redirection URI (authorization-code sign-in).
    pub redirect_uri: Option<Url>,
    /// Send a PKCE S256 challenge when signing in (the client's "PKCE" checkbox).
    pub pkce: bool,
    /// When the refresh token lapses, if Workday set an expiry (epoch ms).
    pub refresh_token_expires_ms: Option<i64>,
    /// Warn this long before `refresh_token_expires`.
    pub refresh_token_warn_before: Duration,
    /// How often a tenant whose credentials need a person is checked again.
    pub credential_recheck: Duration,
    /// A cron schedule (`sec min hour day month weekday`) used instead of `poll_interval`.
    pub schedule: Option<String>,
    /// Workday's weekly maintenance window; `None` when "off".
    pub maintenance_window: Option<crate::maintenance::Window>,
    pub backfill: Duration,
    pub poll_interval: Duration,
    pub lag: Duration,
    pub overlap: Duration,
    pub page_size: u32,
    /// Longest window asked for in one query; longer ranges are cut.
    pub max_window: Duration,
    pub request_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Attempts for one request before the poll gives up (the checkpoint stays).
    pub max_attempts: u32,
    /// Activity-log requests in flight at once (windows and pages of a window fetched in
    /// parallel; stored in time order whatever order they arrive in).
    pub max_concurrent_requests: u32,
    /// Activity-log requests started per second at most; `None` when "off" (0).
    pub max_requests_per_second: Option<u32>,
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    /// Reads the secret (trailing whitespace trimmed); the error names the file or variable,
    /// never the value.
    pub fn read(&self) -> Result<Secret, String> {
        let value = match self {
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(match self {
                SecretSource::File(p) => format!("{} is empty", p.display()),
                SecretSource::Env(v) => format!("environment variable {v} is empty"),
            });
        }
        Ok(Secret::new(value))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret` (Workday's default).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub format: Format,
    pub batch_size: usize,
    /// A batch stops growing past this many bytes (at least one event).
    pub max_batch_bytes: usize,
    /// Wait this long for a batch to fill before sending a partial one.
    pub linger: Duration,
    pub filter: Filter,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    File {
        path: PathBuf,
        /// Rotate (rename to `.1`, `.2`, … and start afresh) past this size; never when absent.
        rotate_bytes: Option<u64>,
        /// Rotated files kept.
        rotate_keep: u32,
    },
    Stdout,
    Http(Box<HttpSinkConfig>),
    SplunkHec(Box<HecSinkConfig>),
    Elasticsearch(Box<EsSinkConfig>),
    Syslog(Box<SyslogSinkConfig>),
}

#[derive(Debug, Clone)]
pub struct SyslogSinkConfig {
    pub transport: SyslogTransport,
    /// `host:port`.
    pub address: String,
    pub body: SyslogBody,
    /// Facility number (0–23); `local0` = 16 by default.
    pub facility: u8,
    pub app_name: String,
    /// HOSTNAME field; this machine's name when not set.
    pub hostname: Option<String>,
    /// TLS: a PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// TLS: the name the server's certificate must carry (the address's host by default).
    pub server_name: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogBody {
    /// The event rendered in the sink's `format`.
    Json,
    /// ArcSight Common Event Format.
    Cef,
}

#[derive(Debug, Clone)]
pub struct EsSinkConfig {
    /// The cluster URL, like `https://es.example.com:9200`.
    pub url: Url,
    /// An index, alias or data stream (data streams need `format = "ecs"` for `@timestamp`).
    pub index: String,
    pub auth: EsAuth,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum EsAuth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    /// The base64 "encoded" API key, sent as `Authorization: ApiKey …`.
    ApiKey(Secret),
}

#[derive(Debug, Clone)]
pub struct HecSinkConfig {
    /// The HEC base URL, like `https://splunk.example.com:8088`.
    pub url: Url,
    pub token: Secret,
    pub index: Option<String>,
    pub sourcetype: String,
    pub source: String,
    /// `host` field; the tenant name when not set.
    pub host: Option<String>,
    /// Count an event delivered only once Splunk acknowledges it was indexed.
    pub indexer_ack: bool,
    pub ack_timeout: Duration,
    pub ack_poll_interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    pub url: Url,
    pub encoding: HttpEncoding,
    pub gzip: bool,
    pub headers: Vec<(String, String)>,
    pub auth: HttpAuth,
    /// `(secret, header)`: an HMAC-SHA256 of the (uncompressed) body, hex, as `sha256=<hex>`.
    pub hmac: Option<(Secret, String)>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpEncoding {
    /// One JSON object per line.
    Ndjson,
    /// One JSON array per request.
    JsonArray,
}

#[derive(Debug, Clone)]
pub enum HttpAuth {
    None,
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

/// Which events a sink receives. Patterns are case-insensitive globs (`*`, `?`).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub include_activity_actions: Vec<String>,
    pub exclude_activity_actions: Vec<String>,
    pub include_system_accounts: Vec<String>,
    pub exclude_system_accounts: Vec<String>,
    pub include_task_display_names: Vec<String>,
    pub exclude_task_display_names: Vec<String>,
    /// Drop the entries Workday logs for the collector's own API calls.
    pub drop_own_api_calls: bool,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.include_activity_actions.is_empty()
            && self.exclude_activity_actions.is_empty()
            && self.include_system_accounts.is_empty()
            && self.exclude_system_accounts.is_empty()
            && self.include_task_display_names.is_empty()
            && self.exclude_task_display_names.is_empty()
            && !self.drop_own_api_calls
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Ocsf,
    Ecs,
}

/// Every problem found in a config file, each naming its key.
#[derive(Debug)]
pub struct ConfigErrors {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} problem(s) in {}:",
            self.problems.len(),
            self.path.display()
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads, parses and validates `path`, resolving secrets.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            path: path.to_path_buf(),
            problems: vec![format!("cannot read the config file: {e}")],
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is used for messages and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let table: Table = match text.parse::<Table>() {
            Ok(t) => t,
            Err(e) => {
                return Err(ConfigErrors {
                    path: path.to_path_buf(),
                    problems: vec![format!("not valid TOML: {}", e.to_string().trim())],
                })
            }
        };
        let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut top = Fields::new(&table, String::new(), &mut problems);
        let state_dir = top.path("state_dir", &base_dir, true);
        let metrics_listen = match top.string("metrics_listen", false).as_deref() {
            None => Some(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))),
            Some("off") => Some(None),
            Some(a) => match a.parse::<std::net::SocketAddr>() {
                Ok(addr) => Some(Some(addr)),
                Err(_) => {
                    top.problem(
                        "metrics_listen",
                        format!("\"{a}\" is not an address like \"127.0.0.1:9464\" (or \"off\")"),
                    );
                    None
                }
            },
        };
        let tenant_values = top.array_of_tables("tenant");
        let sink_values = top.array_of_tables("sink");
        top.finish();

        let mut tenants = Vec::new();
        let mut names = HashSet::new();
        for (i, t) in tenant_values.iter().enumerate() {
            if let Some(tc) = parse_tenant(t, i, &base_dir, &mut problems) {
                if !names.insert(tc.name.clone()) {
                    problems.push(format!(
                        "tenant[{i}].name: \"{}\" is used by two tenants; names must be unique",
                        tc.name
                    ));
                }
                tenants.push(tc);
            }
        }
        if tenant_values.is_empty() {
            problems.push("tenant: no [[tenant]] section; add one per Workday tenant".into());
        }

        let mut sinks = Vec::new();
        let mut sink_names = HashSet::new();
        let mut file_paths = HashSet::new();
        for (i, s) in sink_values.iter().enumerate() {
            if let Some(sc) = parse_sink(s, i, &base_dir, &mut problems) {
                if !sink_names.insert(sc.name.clone()) {
                    problems.push(format!(
                        "sink[{i}].name: \"{}\" is used by two sinks; names must be unique",
                        sc.name
                    ));
                }
                if let SinkKind::File { path, .. } = &sc.kind {
                    if !file_paths.insert(path.clone()) {
                        problems.push(format!(
                            "sink[{i}].path: {} is written by two sinks",
                            path.display()
                        ));
                    }
                }
                sinks.push(sc);
            }
        }
        if sink_values.is_empty() {
            problems.push("sink: no [[sink]] section; add at least one (type = \"file\")".into());
        }

        if problems.is_empty() {
            if let (Some(state_dir), Some(metrics_listen)) = (state_dir, metrics_listen) {
                return Ok(Config {
                    state_dir,
                    metrics_listen,
                    tenants,
                    sinks,
                });
            }
        }
        Err(ConfigErrors {
            path: path.to_path_buf(),
            problems,
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("workday-collector.db")
    }
}

fn parse_tenant(
    t: &Table,
    i: usize,
    base_dir: &Path,
    problems: &mut Vec<String>,
) -> Option<TenantConfig> {
    let mut f = Fields::new(t, format!("tenant[{i}]."), problems);
    let name = f.name("name");
    let label = |key: &str| match &name {
        Some(n) => format!("tenant[{i}] ({n}).{key}"),
        None => format!("tenant[{i}].{key}"),
    };
    f.prefix = match &name {
        Some(n) => format!("tenant[{i}] ({n})."),
        None => f.prefix.clone(),
    };
    let rest = f.url("rest_api_endpoint", true);
    let token_endpoint = f.url("token_endpoint", true);
    let authorization_endpoint = f.url("authorization_endpoint", false);
    let client_id = f.string("client_id", true);
    let client_secret = f.secret("client_secret", base_dir, true).map(|(_, s)| s);
    let refresh = f.secret("refresh_token", base_dir, false);
    let redirect_uri = f.url("redirect_uri", false);
    let pkce = f.boolean("pkce", true);
    let refresh_token_expires_ms = f.date("refresh_token_expires");
    let refresh_token_warn_before =
        f.duration("refresh_token_warn_before", Duration::from_secs(14 * 86400));
    let credential_recheck = f.duration("credential_recheck", Duration::from_secs(900));
    let schedule = match f.string("schedule", false) {
        None => Some(None),
        Some(expr) => {
            match tokio_cron_scheduler::Job::new_async(expr.as_str(), |_, _| Box::pin(async {})) {
                Ok(_) => Some(Some(expr)),
                Err(e) => {
                    f.problem(
                    "schedule",
                    format!("\"{expr}\" is not a cron schedule like \"0 */5 * * * *\" (sec min hour day month weekday): {e}"),
                );
                    None
                }
            }
        }
    };
    let maintenance_window = match f.string("maintenance_window", false).as_deref() {
        Some("off") => Some(None),
        other => {
            match crate::maintenance::Window::parse(other.unwrap_or(crate::maintenance::DEFAULT)) {
                Ok(w) => Some(Some(w)),
                Err(msg) => {
                    f.problem("maintenance_window", msg);
                    None
                }
            }
        }
    };
    let client_auth = match f.string("client_auth", false).as_deref() {
        None | Some("basic") => Some(ClientAuth::Basic),
        Some("body") => Some(ClientAuth::Body),
        Some(other) => {
            f.problem(
                "client_auth",
                format!("\"{other}\" is not one of \"basic\", \"body\""),
            );
            None
        }
    };
    let backfill = f.duration("backfill", Duration::from_secs(7 * 86400));
    let poll_interval = f.duration("poll_interval", Duration::from_secs(300));
    let lag = f.duration("lag", Duration::from_secs(120));
    let overlap = f.duration("overlap", Duration::from_secs(900));
    let max_window = f.duration("max_window", Duration::from_secs(3600));
    let request_timeout = f.duration("request_timeout", Duration::from_secs(60));
    let retry_initial = f.duration("retry_initial", Duration::from_secs(1));
    let retry_max = f.duration("retry_max", Duration::from_secs(300));
    let page_size = f.integer("page_size", i64::from(MAX_PAGE_SIZE));
    let max_attempts = f.integer("max_attempts", 8);
    let max_concurrent_requests = f.integer("max_concurrent_requests", 3);
    let max_requests_per_second = f.integer("max_requests_per_second", 10);
    f.finish();

    let mut ok = true;
    let mut bad = |key: &str, msg: &str| {
        problems.push(format!("{}: {msg}", label(key)));
        ok = false;
    };
    let page_size = match page_size {
        Some(n) if (1..=i64::from(MAX_PAGE_SIZE)).contains(&n) => n as u32,
        Some(n) => {
            bad(
                "page_size",
                &format!(
                    "{n} is out of range; Workday serves 1 to {MAX_PAGE_SIZE} entries per page"
                ),
            );
            MAX_PAGE_SIZE
        }
        None => MAX_PAGE_SIZE,
    };
    let max_attempts = match max_attempts {
        Some(n) if (1..=100).contains(&n) => n as u32,
        Some(n) => {
            bad("max_attempts", &format!("{n} is out of range (1 to 100)"));
            1
        }
        None => 1,
    };
    let max_concurrent_requests = match max_concurrent_requests {
        Some(n) if (1..=64).contains(&n) => n as u32,
        Some(n) => {
            bad(
                "max_concurrent_requests",
                &format!("{n} is out of range (1 to 64)"),
            );
            1
        }
        None => 1,
    };
    let max_requests_per_second = match max_requests_per_second {
        Some(0) => None,
        Some(n) if (1..=10_000).contains(&n) => Some(n as u32),
        Some(n) => {
            bad(
                "max_requests_per_second",
                &format!("{n} is out of range (1 to 10000, or 0 for no limit)"),
            );
            None
        }
        None => None,
    };
    if let (Some(b), Some(l)) = (backfill, lag) {
        if l >= b {
            bad("lag", "must be shorter than backfill");
        }
    }
    if let Some(p) = poll_interval {
        if p < Duration::from_secs(1) {
            bad("poll_interval", "must be at least 1s");
        }
    }
    if let Some(w) = max_window {
        if w < Duration::from_secs(10) {
            bad("max_window", "must be at least 10s");
        }
    }
    if let (Some(a), Some(b)) = (retry_initial, retry_max) {
        if a.is_zero() || a > b {
            bad("retry_initial", "must be above zero and at most retry_max");
        }
    }
    let activity_url = rest.as_ref().and_then(|u| match activity_url_from(u) {
        Ok(a) => Some(a),
        Err(msg) => {
            bad("rest_api_endpoint", &msg);
            None
        }
    });
    if !ok {
        return None;
    }
    Some(TenantConfig {
        name: name?,
        rest_api_endpoint: rest?,
        activity_url: activity_url?,
        token_endpoint: token_endpoint?,
        authorization_endpoint,
        client_id: client_id?,
        client_secret: client_secret?,
        refresh_token: refresh.as_ref().map(|(_, s)| s.clone()),
        refresh_token_source: refresh.map(|(src, _)| src),
        client_auth: client_auth?,
        redirect_uri,
        pkce: pkce?,
        refresh_token_expires_ms: refresh_token_expires_ms?,
        refresh_token_warn_before: refresh_token_warn_before?,
        credential_recheck: credential_recheck?,
        maintenance_window: maintenance_window?,
        schedule: schedule?,
        backfill: backfill?,
        poll_interval: poll_interval?,
        lag: lag?,
        overlap: overlap?,
        page_size,
        max_window: max_window?,
        request_timeout: request_timeout?,
        retry_initial: retry_initial?,
        retry_max: retry_max?,
        max_attempts,
        max_concurrent_requests,
        max_requests_per_second,
    })
}

fn parse_sink(
    s: &Table,
    i: usize,
    base_dir: &Path,
    problems: &mut Vec<String>,
) -> Option<SinkConfig> {
    let mut f = Fields::new(s, format!("sink[{i}]."), problems);
    let name = f.name("name");
    if let Some(n) = &name {
        f.prefix = format!("sink[{i}] ({n}).");
    }
    let kind_name = f.string("type", true);
    let kind = match kind_name.as_deref() {
        Some("file") => {
            let path = f.path("path", base_dir, true);
            let rotate_bytes = match f.get("rotate_bytes") {
                None => Some(None),
                Some(Value::Integer(n)) if *n >= 4096 => Some(Some(*n as u64)),
                Some(_) => {
                    f.problem(
                        "rotate_bytes",
                        "must be a whole number of bytes, at least 4096".into(),
                    );
                    None
                }
            };
            let rotate_keep = match f.integer("rotate_keep", 5) {
                Some(n) if (1..=1000).contains(&n) => Some(n as u32),
                Some(n) => {
                    f.problem("rotate_keep", format!("{n} is out of range (1 to 1000)"));
                    None
                }
                None => None,
            };
            match (path, rotate_bytes, rotate_keep) {
                (Some(path), Some(rotate_bytes), Some(rotate_keep)) => Some(SinkKind::File {
                    path,
                    rotate_bytes,
                    rotate_keep,
                }),
                _ => None,
            }
        }
        Some("stdout") => Some(SinkKind::Stdout),
        Some("http") => parse_http_sink(&mut f, base_dir).map(|h| SinkKind::Http(Box::new(h))),
        Some("splunk_hec") => {
            parse_hec_sink(&mut f, base_dir).map(|h| SinkKind::SplunkHec(Box::new(h)))
        }
        Some("elasticsearch") | Some("opensearch") => {
            parse_es_sink(&mut f, base_dir).map(|e| SinkKind::Elasticsearch(Box::new(e)))
        }
        Some("syslog") => {
            parse_syslog_sink(&mut f, base_dir).map(|s| SinkKind::Syslog(Box::new(s)))
        }
        Some(other) => {
            f.problem(
                "type",
                format!("\"{other}\" is not a sink type this version knows (file, stdout, http, splunk_hec, elasticsearch, opensearch, syslog)"),
            );
            None
        }
        None => None,
    };
    let filter = Filter {
        include_activity_actions: f.strings("include_activity_actions"),
        exclude_activity_actions: f.strings("exclude_activity_actions"),
        include_system_accounts: f.strings("include_system_accounts"),
        exclude_system_accounts: f.strings("exclude_system_accounts"),
        include_task_display_names: f.strings("include_task_display_names"),
        exclude_task_display_names: f.strings("exclude_task_display_names"),
        drop_own_api_calls: f.boolean("drop_own_api_calls", false).unwrap_or(false),
    };
    let linger = f.duration("linger", Duration::ZERO);
    let max_batch_bytes = match f.integer("max_batch_bytes", 4 * 1024 * 1024) {
        Some(n) if n >= 1024 => Some(n as usize),
        Some(n) => {
            f.problem(
                "max_batch_bytes",
                format!("{n} is too small (at least 1024)"),
            );
            None
        }
        None => None,
    };
    let format = match f.string("format", false).as_deref() {
        None | Some("raw") => Some(Format::Raw),
        Some("ocsf") => Some(Format::Ocsf),
        Some("ecs") => Some(Format::Ecs),
        Some(other) => {
            f.problem(
                "format",
                format!("\"{other}\" is not a format this version knows (raw, ocsf, ecs)"),
            );
            None
        }
    };
    let batch_size = match f.integer("batch_size", 1000) {
        Some(n) if (1..=100_000).contains(&n) => Some(n as usize),
        Some(n) => {
            f.problem("batch_size", format!("{n} is out of range (1 to 100000)"));
            None
        }
        None => None,
    };
    f.finish();
    Some(SinkConfig {
        name: name?,
        kind: kind?,
        format: format?,
        max_batch_bytes: max_batch_bytes?,
        linger: linger?,
        filter,
        batch_size: batch_size?,
    })
}

const FACILITIES: &[&str] = &[
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

fn parse_syslog_sink(f: &mut Fields<'_>, base_dir: &Path) -> Option<SyslogSinkConfig> {
    let transport = match f.string("transport", false).as_deref() {
        None | Some("tcp") => Some(SyslogTransport::Tcp),
        Some("udp") => Some(SyslogTransport::Udp),
        Some("tls") => Some(SyslogTransport::Tls),
        Some(other) => {
            f.problem(
                "transport",
                format!("\"{other}\" is not one of \"udp\", \"tcp\", \"tls\""),
            );
            None
        }
    };
    let address = f.string("address", true).filter(|a| {
        a.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    });
    if address.is_none() && f.table.contains_key("address") {
        f.problem(
            "address",
            "must be host:port, like \"siem.example.com:6514\"".into(),
        );
    }
    let body = match f.string("message", false).as_deref() {
        None | Some("json") => Some(SyslogBody::Json),
        Some("cef") => Some(SyslogBody::Cef),
        Some(other) => {
            f.problem(
                "message",
                format!("\"{other}\" is not one of \"json\", \"cef\""),
            );
            None
        }
    };
    let facility = match f.string("facility", false) {
        None => Some(16),
        Some(name) => match FACILITIES.iter().position(|x| *x == name) {
            Some(i) => Some(i as u8),
            None => {
                f.problem(
                    "facility",
                    format!("\"{name}\" is not a syslog facility (local0…local7, user, auth, …)"),
                );
                None
            }
        },
    };
    let app_name = f
        .string("app_name", false)
        .unwrap_or_else(|| "workday-collector".into());
    let hostname = f.string("hostname", false);
    let ca_file = f.path("ca_file", base_dir, false);
    let server_name = f.string("server_name", false);
    let timeout = f.duration("timeout", Duration::from_secs(30));
    Some(SyslogSinkConfig {
        transport: transport?,
        address: address?,
        body: body?,
        facility: facility?,
        app_name,
        hostname,
        ca_file,
        server_name,
        timeout: timeout?,
    })
}

fn parse_es_sink(f: &mut Fields<'_>, base_dir: &Path) -> Option<EsSinkConfig> {
    let url = f.sink_url("url");
    let index = f.string("index", true);
    let username = f.string("username", false);
    let password = f.secret("password", base_dir, false);
    let api_key = f.secret("api_key", base_dir, false);
    let auth = match (username, password, api_key) {
        (None, None, None) => Some(EsAuth::None),
        (Some(username), Some((_, password)), None) => Some(EsAuth::Basic { username, password }),
        (None, None, Some((_, key))) => Some(EsAuth::ApiKey(key)),
        _ => {
            f.problem(
                "api_key_file",
                "give username and password_file, or api_key_file, not both and not half".into(),
            );
            None
        }
    };
    let timeout = f.duration("timeout", Duration::from_secs(60));
    Some(EsSinkConfig {
        url: url?,
        index: index?,
        auth: auth?,
        timeout: timeout?,
    })
}

fn parse_hec_sink(f: &mut Fields<'_>, base_dir: &Path) -> Option<HecSinkConfig> {
    let url = f.sink_url("url");
    let token = f.secret("token", base_dir, true).map(|(_, s)| s);
    let index = f.string("index", false);
    let sourcetype = f
        .string("sourcetype", false)
        .unwrap_or_else(|| "workday:activity".into());
    let source = f
        .string("source", false)
        .unwrap_or_else(|| "workday-collector".into());
    let host = f.string("host", false);
    let indexer_ack = f.boolean("indexer_ack", false);
    let ack_timeout = f.duration("ack_timeout", Duration::from_secs(300));
    let ack_poll_interval = f.duration("ack_poll_interval", Duration::from_secs(1));
    let timeout = f.duration("timeout", Duration::from_secs(30));
    Some(HecSinkConfig {
        url: url?,
        token: token?,
        index,
        sourcetype,
        source,
        host,
        indexer_ack: indexer_ack?,
        ack_timeout: ack_timeout?,
        ack_poll_interval: ack_poll_interval?,
        timeout: timeout?,
    })
}

fn parse_http_sink(f: &mut Fields<'_>, base_dir: &Path) -> Option<HttpSinkConfig> {
    let url = f.sink_url("url");
    let encoding = match f.string("encoding", false).as_deref() {
        None | Some("ndjson") => Some(HttpEncoding::Ndjson),
        Some("json_array") => Some(HttpEncoding::JsonArray),
        Some(other) => {
            f.problem(
                "encoding",
                format!("\"{other}\" is not one of \"ndjson\", \"json_array\""),
            );
            None
        }
    };
    let gzip = f.boolean("gzip", false);
    let headers = f.string_table("headers");
    let timeout = f.duration("timeout", Duration::from_secs(30));
    let token = f.secret("token", base_dir, false);
    let username = f.string("username", false);
    let password = f.secret("password", base_dir, false);
    let auth = match (token, username, password) {
        (None, None, None) => Some(HttpAuth::None),
        (Some((_, t)), None, None) => Some(HttpAuth::Bearer(t)),
        (None, Some(username), Some((_, password))) => Some(HttpAuth::Basic { username, password }),
        (Some(_), _, _) => {
            f.problem(
                "token_file",
                "give a bearer token or username and password, not both".into(),
            );
            None
        }
        _ => {
            f.problem(
                "username",
                "basic auth needs username and password_file (or password_env)".into(),
            );
            None
        }
    };
    let hmac_secret = f.secret("hmac_secret", base_dir, false);
    let hmac_header = f
        .string("hmac_header", false)
        .unwrap_or_else(|| "X-Signature-256".into());
    Some(HttpSinkConfig {
        url: url?,
        encoding: encoding?,
        gzip: gzip?,
        headers: headers?,
        auth: auth?,
        hmac: hmac_secret.map(|(_, s)| (s, hmac_header)),
        timeout: timeout?,
    })
}

/// `…/ccx/api/v1/{tenant}` (as shown on Workday's screen) or `…/ccx/api/privacy/v1/{tenant}`
/// (optionally ending in `/activityLogging`) → the activity-log URL.
pub fn activity_url_from(rest: &Url) -> Result<Url, String> {
    let path = rest.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let tenant = match segments.as_slice() {
        ["ccx", "api", "v1", tenant] => *tenant,
        ["ccx", "api", "privacy", "v1", tenant] => *tenant,
        ["ccx", "api", "privacy", "v1", tenant, "activityLogging"] => *tenant,
        _ => {
            return Err(format!(
                "\"{rest}\" is not a Workday REST API Endpoint; paste the one shown on \
                 Workday's View API Clients screen, like https://HOST/ccx/api/v1/TENANT"
            ))
        }
    };
    let mut url = rest.clone();
    url.set_path(&format!("/ccx/api/privacy/v1/{tenant}/activityLogging"));
    url.set_query(None);
    Ok(url)
}

/// Parses `"90s"`, `"15m"`, `"2h"`, `"7d"` (a whole number and one unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("\"{s}\" has no unit; write it like \"90s\", \"15m\", \"2h\" or \"7d\"")
    })?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration like \"15m\""))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86400),
        _ => {
            return Err(format!(
                "\"{s}\": unknown unit \"{unit}\"; use s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

/// Workday endpoints must be https, except on loopback (tests, the simulator).
fn check_endpoint(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "\"{url}\" is plain http; Workday endpoints must be https (http is accepted only for loopback addresses)"
        )),
        other => Err(format!("\"{url}\": scheme \"{other}\" is not https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Expands `$CREDENTIALS_DIRECTORY` / `${CREDENTIALS_DIRECTORY}` (systemd `LoadCredential=`).
fn expand_credentials_dir(raw: &str) -> Result<String, String> {
    if !raw.contains("CREDENTIALS_DIRECTORY") {
        return Ok(raw.to_string());
    }
    let dir = std::env::var("CREDENTIALS_DIRECTORY").map_err(|_| {
        format!("\"{raw}\" names $CREDENTIALS_DIRECTORY, which is not set (it is set by systemd's LoadCredential=)")
    })?;
    Ok(raw
        .replace("${CREDENTIALS_DIRECTORY}", &dir)
        .replace("$CREDENTIALS_DIRECTORY", &dir))
}

/// Reads one table's keys, recording problems and which keys were understood.
struct Fields<'a> {
    table: &'a Table,
    prefix: String,
    seen: BTreeSet<&'static str>,
    problems: &'a mut Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(table: &'a Table, prefix: String, problems: &'a mut Vec<String>) -> Self {
        Fields {
            table,
            prefix,
            seen: BTreeSet::new(),
            problems,
        }
    }

    fn problem(&mut self, key: &str, msg: String) {
        self.problems.push(format!("{}{key}: {msg}", self.prefix));
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.insert(key);
        self.table.get(key)
    }

    fn string(&mut self, key: &'static str, required: bool) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::String(_)) => {
                self.problem(key, "is empty".into());
                None
            }
            Some(other) => {
                self.problem(key, format!("must be a string, not {}", other.type_str()));
                None
            }
            None => {
                if required {
                    self.problem(key, "is required".into());
                }
                None
            }
        }
    }

    fn name(&mut self, key: &'static str) -> Option<String> {
        let s = self.string(key, true)?;
        if s.len() > 64
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.problem(
                key,
                format!("\"{s}\" may use only letters, digits, '-' and '_' (at most 64)"),
            );
            return None;
        }
        Some(s)
    }

    fn url(&mut self, key: &'static str, required: bool) -> Option<Url> {
        let s = self.string(key, required)?;
        match Url::parse(&s) {
            Ok(u) => match check_endpoint(&u) {
                Ok(()) => Some(u),
                Err(msg) => {
                    self.problem(key, msg);
                    None
                }
            },
            Err(e) => {
                self.problem(key, format!("\"{s}\" is not a URL ({e})"));
                None
            }
        }
    }

    fn path(&mut self, key: &'static str, base_dir: &Path, required: bool) -> Option<PathBuf> {
        let s = self.string(key, required)?;
        match expand_credentials_dir(&s) {
            Ok(s) => Some(base_dir.join(s)),
            Err(msg) => {
                self.problem(key, msg);
                None
            }
        }
    }

    fn duration(&mut self, key: &'static str, default: Duration) -> Option<Duration> {
        match self.get(key) {
            None => Some(default),
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(msg) => {
                    self.problem(key, msg);
                    None
                }
            },
            Some(other) => {
                self.problem(
                    key,
                    format!("must be a string like \"15m\", not {}", other.type_str()),
                );
                None
            }
        }
    }

    fn integer(&mut self, key: &'static str, default: i64) -> Option<i64> {
        match self.get(key) {
            None => Some(default),
            Some(Value::Integer(n)) => Some(*n),
            Some(other) => {
                self.problem(
                    key,
                    format!("must be a whole number, not {}", other.type_str()),
                );
                None
            }
        }
    }

    /// `{key}_file` (trailing whitespace trimmed) or `{key}_env`: at most one of them.
    fn secret(
        &mut self,
        key: &'static str,
        base_dir: &Path,
        required: bool,
    ) -> Option<(SecretSource, Secret)> {
        let (file_key, env_key): (&'static str, &'static str) = match key {
            "client_secret" => ("client_secret_file", "client_secret_env"),
            "token" => ("token_file", "token_env"),
            "password" => ("password_file", "password_env"),
            "hmac_secret" => ("hmac_secret_file", "hmac_secret_env"),
            "api_key" => ("api_key_file", "api_key_env"),
            _ => ("refresh_token_file", "refresh_token_env"),
        };
        if self.table.contains_key(key) {
            self.seen.insert(key);
            self.problem(
                key,
                format!("secrets are not written in the config; use {file_key} or {env_key}"),
            );
            return None;
        }
        let file = self.path(file_key, base_dir, false);
        let env = self.string(env_key, false);
        let (source, key_used) = match (file, env) {
            (Some(_), Some(_)) => {
                self.problem(file_key, format!("give {file_key} or {env_key}, not both"));
                return None;
            }
            (Some(path), None) => (SecretSource::File(path), file_key),
            (None, Some(var)) => (SecretSource::Env(var), env_key),
            (None, None) => {
                if required {
                    self.problem(file_key, format!("is required (or {env_key})"));
                }
                return None;
            }
        };
        match source.read() {
            Ok(secret) => Some((source, secret)),
            Err(msg) => {
                self.problem(key_used, msg);
                None
            }
        }
    }

    /// A sink endpoint: https with verification, or http (sinks often sit on a private network,
    /// so plain http is allowed, as operators expect from SIEM intake URLs).
    fn sink_url(&mut self, key: &'static str) -> Option<Url> {
        let s = self.string(key, true)?;
        match Url::parse(&s) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(u),
            Ok(u) => {
                self.problem(key, format!("\"{u}\": scheme must be https or http"));
                None
            }
            Err(e) => {
                self.problem(key, format!("\"{s}\" is not a URL ({e})"));
                None
            }
        }
    }

    fn strings(&mut self, key: &'static str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(|i| i.is_str()) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                self.problem(key, "must be a list of strings, like [\"WRITE\"]".into());
                Vec::new()
            }
        }
    }

    fn string_table(&mut self, key: &'static str) -> Option<Vec<(String, String)>> {
        match self.get(key) {
            None => Some(Vec::new()),
            Some(Value::Table(t)) if t.values().all(|v| v.is_str()) => Some(
                t.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect(),
            ),
            Some(_) => {
                self.problem(
                    key,
                    "must be a table of strings, like { \"X-Source\" = \"workday\" }".into(),
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &'static str, default: bool) -> Option<bool> {
        match self.get(key) {
            None => Some(default),
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.problem(
                    key,
                    format!("must be true or false, not {}", other.type_str()),
                );
                None
            }
        }
    }

    /// An optional date (`2027-01-31`) or date-time (RFC 3339), as epoch milliseconds.
    /// `Some(None)` when absent, `None` when invalid.
    fn date(&mut self, key: &'static str) -> Option<Option<i64>> {
        let value = match self.get(key) {
            None => return Some(None),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Datetime(d)) => d.to_string(),
            Some(other) => {
                self.problem(
                    key,
                    format!(
                        "must be a date like \"2027-01-31\", not {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        if let Some(ms) = crate::clock::parse_rfc3339_ms(&value) {
            return Some(Some(ms));
        }
        match chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
            Ok(d) => Some(
                d.and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc().timestamp_millis()),
            ),
            Err(_) => {
                self.problem(
                    key,
                    format!("\"{value}\" is not a date like \"2027-01-31\""),
                );
                None
            }
        }
    }

    fn array_of_tables(&mut self, key: &'static str) -> Vec<Table> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Table(t) => out.push(t.clone()),
                        _ => self.problem(key, format!("entry {i} must be a table ([[{key}]])")),
                    }
                }
                out
            }
            Some(_) => {
                self.problem(key, format!("must be written as [[{key}]] sections"));
                Vec::new()
            }
        }
    }

    fn finish(self) {
        for key in self.table.keys() {
            if !self.seen.contains(key.as_str()) {
                self.problems
                    .push(format!("{}{key}: unknown key (misspelt?)", self.prefix));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn activity_url_derivation() {
        let u = |s: &str| activity_url_from(&Url::parse(s).expect("url"));
        let want = "https://wd2-impl-services1.workday.com/ccx/api/privacy/v1/acme/activityLogging";
        assert_eq!(
            u("https://wd2-impl-services1.workday.com/ccx/api/v1/acme").map(|x| x.to_string()),
            Ok(want.into())
        );
        assert_eq!(
            u("https://wd2-impl-services1.workday.com/ccx/api/privacy/v1/acme/")
                .map(|x| x.to_string()),
            Ok(want.into())
        );
        assert_eq!(
            u("https://wd2-impl-services1.workday.com/ccx/api/privacy/v1/acme/activityLogging")
                .map(|x| x.to_string()),
            Ok(want.into())
        );
        assert!(u("https://wd2-impl-services1.workday.com/acme").is_err());
    }

    #[test]
    fn endpoints_must_be_https_unless_loopback() {
        let ok = |s: &str| check_endpoint(&Url::parse(s).expect("url")).is_ok();
        assert!(ok("https://services1.myworkday.com/ccx/oauth2/acme/token"));
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(ok("http://[::1]:8080/x"));
        assert!(ok("http://localhost:8080/x"));
        assert!(!ok("http://services1.myworkday.com/x"));
        assert!(!ok("http://10.0.0.1/x"));
        assert!(!ok("ftp://127.0.0.1/x"));
    }
}
