//! OCSF API Activity (class 6003), schema version [`OCSF_VERSION`]. The mapping is tabled in
//! docs/normalization.md; every event validates against the official schema (tests).

use super::Rendering;
use serde::Serialize;
use serde_json::Value;

pub const OCSF_VERSION: &str = "1.5.0";
const CLASS_UID: u64 = 6003;
const CATEGORY_UID: u64 = 6;

/// activityAction → (activity_id, activity_name).
fn activity(action: Option<&str>) -> (u64, &'static str) {
    match action {
        Some(a) if a.eq_ignore_ascii_case("READ") => (2, "Read"),
        Some(a) if a.eq_ignore_ascii_case("WRITE") => (3, "Update"),
        _ => (99, "Other"),
    }
}

/// deviceType → network_endpoint type_id / type.
fn device(kind: Option<&str>) -> Option<(u64, &'static str)> {
    match kind? {
        "Desktop" => Some((2, "Desktop")),
        "Tablet" => Some((4, "Tablet")),
        "Phone" => Some((5, "Mobile")),
        _ => Some((99, "Other")),
    }
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Uid<'a> {
    uid: &'a str,
}

#[derive(Serialize)]
struct Actor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Name<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Uid<'a>>,
    /// OCSF requires an actor; set when Workday sent no account or session.
    #[serde(skip_serializing_if = "Option::is_none")]
    app_name: Option<&'static str>,
}

#[derive(Serialize)]
struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_id: Option<u64>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

#[derive(Serialize)]
struct Api<'a> {
    operation: &'a str,
    service: Name<'static>,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    feature: Name<'static>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    version: &'static str,
    product: Product,
    uid: &'a str,
    tenant_uid: &'a str,
    log_name: &'static str,
    log_provider: &'static str,
    logged_time: i64,
    processed_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_time: Option<&'a str>,
}

#[derive(Serialize)]
struct HttpRequest<'a> {
    user_agent: &'a str,
}

#[derive(Serialize)]
struct Href<'a> {
    href: &'a str,
}

#[derive(Serialize)]
struct Resource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Href<'a>>,
}

/// An unmapped field's value: a string, or JSON as sent (written in canonical form).
enum Unmapped<'a> {
    Str(&'a str),
    Json(&'a str),
}

/// Workday fields with no OCSF place, sorted by name.
struct UnmappedFields<'a>(Vec<(&'a str, Unmapped<'a>)>);

impl UnmappedFields<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for UnmappedFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Unmapped::Str(v) => m.serialize_entry(k, v)?,
                Unmapped::Json(raw) => {
                    let canon = crate::workday::wire::canonical_value(raw);
                    match serde_json::value::RawValue::from_string(canon) {
                        Ok(v) => m.serialize_entry(k, &v)?,
                        Err(_) => m.serialize_entry(k, &Value::Null)?,
                    }
                }
            }
        }
        m.end()
    }
}

/// One OCSF event; serialized straight to the output (no intermediate `Value`).
#[derive(Serialize)]
pub struct Event<'a> {
    class_uid: u64,
    class_name: &'static str,
    category_uid: u64,
    category_name: &'static str,
    activity_id: u64,
    activity_name: &'static str,
    type_uid: u64,
    type_name: &'static str,
    severity_id: u64,
    severity: &'static str,
    time: i64,
    actor: Actor<'a>,
    api: Api<'a>,
    src_endpoint: Endpoint<'a>,
    metadata: Metadata<'a>,
    raw_data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_request: Option<HttpRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<[Resource<'a>; 1]>,
    #[serde(skip_serializing_if = "UnmappedFields::is_empty")]
    unmapped: UnmappedFields<'a>,
}

pub fn event<'a>(r: &'a Rendering<'_>) -> Event<'a> {
    let e = &r.entry;
    let (activity_id, activity_name) = activity(e.activity_action.as_deref());
    let type_name = match activity_id {
        2 => "API Activity: Read",
        3 => "API Activity: Update",
        _ => "API Activity: Other",
    };
    let time = e.request_time_ms.unwrap_or(r.event.collected_at_ms);
    let user = e.system_account.as_deref().map(|name| Name { name });
    let session = e.session_id.as_deref().map(|uid| Uid { uid });
    let app_name = (user.is_none() && session.is_none()).then_some("Workday");
    let valid_ip = e
        .ip_address
        .as_deref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    let device = device(e.device_type.as_deref());
    let resources = e.target.as_ref().map(|t| {
        let (uid, name) = (t.id.as_deref(), t.descriptor.as_deref());
        [Resource {
            uid,
            name: if uid.is_none() && name.is_none() {
                Some("unknown")
            } else {
                name
            },
            kind: "Workday object",
            data: t.href.as_deref().map(|href| Href { href }),
        }]
    });
    let mut unmapped: Vec<(&str, Unmapped)> = Vec::with_capacity(3 + e.other.len());
    if let Some(d) = &e.device_type {
        unmapped.push(("deviceType", Unmapped::Str(d)));
    }
    if let Some(a) = &e.activity_action {
        unmapped.push(("activityAction", Unmapped::Str(a)));
    }
    if let Some(ip) = e.ip_address.as_deref().filter(|_| valid_ip.is_none()) {
        unmapped.push(("ipAddress", Unmapped::Str(ip)));
    }
    for (k, v) in &e.other {
        unmapped.push((k, Unmapped::Json(v)));
    }
    // Known fields never appear among `other`, whose keys are unique: sorting is enough.
    unmapped.sort_by(|a, b| a.0.cmp(b.0));
    Event {
        class_uid: CLASS_UID,
        class_name: "API Activity",
        category_uid: CATEGORY_UID,
        category_name: "Application Activity",
        activity_id,
        activity_name,
        type_uid: CLASS_UID * 100 + activity_id,
        type_name,
        severity_id: 1,
        severity: "Informational",
        time,
        actor: Actor {
            user,
            session,
            app_name,
        },
        api: Api {
            operation: e
                .task_display_name
                .as_deref()
                .or(e.task_id.as_deref())
                .unwrap_or("unknown"),
            service: Name { name: "Workday" },
        },
        src_endpoint: Endpoint {
            ip: valid_ip,
            name: valid_ip.is_none().then_some("unknown"),
            type_id: device.map(|d| d.0),
            kind: device.map(|d| d.1),
        },
        metadata: Metadata {
            version: OCSF_VERSION,
            product: Product {
                name: "Workday",
                vendor_name: "Workday",
                feature: Name {
                    name: "User Activity Logging",
                },
            },
            uid: &r.id_hex,
            tenant_uid: &r.event.tenant,
            log_name: "activityLogging",
            log_provider: "workday-collector",
            logged_time: r.event.collected_at_ms,
            processed_time: r.event.collected_at_ms,
            event_code: e.task_id.as_deref(),
            original_time: e.request_time.as_deref(),
        },
        raw_data: &r.event.raw,
        http_request: e
            .user_agent
            .as_deref()
            .map(|user_agent| HttpRequest { user_agent }),
        resources,
        unmapped: UnmappedFields(unmapped),
    }
}

/// The event as a JSON value (for sinks that wrap events in an envelope).
pub fn render(r: &Rendering<'_>) -> Value {
    serde_json::to_value(event(r)).unwrap_or(Value::Null)
}
