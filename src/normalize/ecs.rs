//! Elastic Common Schema rendering, [`ECS_VERSION`]. ECS field names only, except under
//! `workday.activity.*` (Workday's own fields). Tabled in docs/normalization.md.

use super::Rendering;
use crate::clock::rfc3339_ms;
use serde::Serialize;
use serde_json::Value;

pub const ECS_VERSION: &str = "8.11.0";

/// The event as a JSON value (for sinks that wrap events in an envelope).
pub fn render(r: &Rendering<'_>) -> Value {
    serde_json::to_value(event(r)).unwrap_or(Value::Null)
}

/// Writes one ECS document straight into `out` (no `Value` in between).
pub fn write(r: &Rendering<'_>, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and these types always serialize.
    let _ = serde_json::to_writer(out, &event(r));
}

// The document, borrowed from the entry. Fields are declared in alphabetical order at every
// level: the same bytes the earlier `Value`-based rendering gave (its maps sorted their keys).

#[derive(Serialize)]
pub struct Ecs<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    ecs: Version,
    event: Event<'a>,
    observer: Observer,
    organization: Id<'a>,
    #[serde(skip_serializing_if = "Related::is_empty")]
    related: Related<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Ip<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Name<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<Original<'a>>,
    workday: Workday<'a>,
}

#[derive(Serialize)]
struct Version {
    version: &'static str,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    category: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    dataset: &'static str,
    id: &'a str,
    ingested: String,
    kind: &'static str,
    module: &'static str,
    original: &'a str,
    provider: &'static str,
    #[serde(rename = "type")]
    kind_of: [&'static str; 1],
}

#[derive(Serialize)]
struct Observer {
    product: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    vendor: &'static str,
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Ip<'a> {
    ip: &'a str,
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Original<'a> {
    original: &'a str,
}

#[derive(Serialize)]
struct Related<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<[&'a str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<[&'a str; 1]>,
}

impl Related<'_> {
    fn is_empty(&self) -> bool {
        self.ip.is_none() && self.user.is_none()
    }
}

#[derive(Serialize)]
struct Workday<'a> {
    activity: Activity<'a>,
}

#[derive(Serialize)]
struct Activity<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    activity_action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Other::is_empty")]
    other: Other<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_time: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Target<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Target<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    descriptor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    href: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

/// Workday fields this version does not know, sorted by name, each in canonical form (as a
/// `Value` would write it); one that does not parse is left out.
struct Other<'a>(&'a [(std::borrow::Cow<'a, str>, &'a str)]);

impl Other<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Other<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, raw) in self.0 {
            // Rare (fields Workday may add): parsed, so the output is exactly the Value's.
            if let Ok(v) = serde_json::from_str::<Value>(raw) {
                m.serialize_entry(k.as_ref(), &v)?;
            }
        }
        m.end()
    }
}

pub fn event<'a>(r: &'a Rendering<'_>) -> Ecs<'a> {
    let e = &r.entry;
    let time = e.request_time_ms.unwrap_or(r.event.collected_at_ms);
    let event_type = match e.activity_action.as_deref() {
        Some(a) if a.eq_ignore_ascii_case("READ") => "access",
        Some(a) if a.eq_ignore_ascii_case("WRITE") => "change",
        _ => "info",
    };
    let ip = e
        .ip_address
        .as_deref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    let account = e.system_account.as_deref();
    Ecs {
        timestamp: rfc3339_ms(time),
        ecs: Version {
            version: ECS_VERSION,
        },
        event: Event {
            action: e.task_display_name.as_deref().or(e.task_id.as_deref()),
            category: ["web"],
            code: e.task_id.as_deref(),
            dataset: "workday.activity",
            id: &r.id_hex,
            ingested: rfc3339_ms(r.event.collected_at_ms),
            kind: "event",
            module: "workday",
            original: &r.event.raw,
            provider: "workday",
            kind_of: [event_type],
        },
        observer: Observer {
            product: "Workday",
            kind: "saas",
            vendor: "Workday",
        },
        organization: Id {
            id: &r.event.tenant,
        },
        related: Related {
            ip: ip.map(|ip| [ip]),
            user: account.map(|a| [a]),
        },
        source: ip.map(|ip| Ip { ip }),
        user: account.map(|name| Name { name }),
        user_agent: e
            .user_agent
            .as_deref()
            .map(|original| Original { original }),
        workday: Workday {
            activity: Activity {
                activity_action: e.activity_action.as_deref(),
                device_type: e.device_type.as_deref(),
                ip_address: e.ip_address.as_deref(),
                other: Other(&e.other),
                request_time: e.request_time.as_deref(),
                session_id: e.session_id.as_deref(),
                system_account: account,
                target: e.target.as_ref().map(|t| Target {
                    descriptor: t.descriptor.as_deref(),
                    href: t.href.as_deref(),
                    id: t.id.as_deref(),
                }),
                task_display_name: e.task_display_name.as_deref(),
                task_id: e.task_id.as_deref(),
            },
        },
    }
}
