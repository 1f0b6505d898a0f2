//! Elastic Common Schema rendering, [`ECS_VERSION`]. ECS field names only, except under
//! `workday.activity.*` (Workday's own fields). Tabled in docs/normalization.md.

use super::Rendering;
use crate::clock::rfc3339_ms;
use serde_json::{json, Map, Value};

pub const ECS_VERSION: &str = "8.11.0";

pub fn render(r: &Rendering<'_>) -> Value {
    let e = &r.entry;
    let time = e.request_time_ms.unwrap_or(r.event.collected_at_ms);
    let event_type = match e.activity_action.as_deref() {
        Some(a) if a.eq_ignore_ascii_case("READ") => "access",
        Some(a) if a.eq_ignore_ascii_case("WRITE") => "change",
        _ => "info",
    };
    let ip = e
        .ip_address
        .as_ref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());

    let mut event = json!({
        "id": r.id_hex,
        "kind": "event",
        "category": ["web"],
        "type": [event_type],
        "dataset": "workday.activity",
        "module": "workday",
        "provider": "workday",
        "original": r.event.raw,
        "ingested": rfc3339_ms(r.event.collected_at_ms),
    });
    if let Some(a) = e.task_display_name.as_deref().or(e.task_id.as_deref()) {
        event["action"] = json!(a);
    }
    if let Some(code) = &e.task_id {
        event["code"] = json!(code);
    }

    let mut out = json!({
        "@timestamp": rfc3339_ms(time),
        "ecs": { "version": ECS_VERSION },
        "event": event,
        "organization": { "id": r.event.tenant },
        "observer": { "vendor": "Workday", "product": "Workday", "type": "saas" },
    });
    let mut related = Map::new();
    if let Some(name) = &e.system_account {
        out["user"] = json!({ "name": name });
        related.insert("user".into(), json!([name]));
    }
    if let Some(ip) = ip {
        out["source"] = json!({ "ip": ip });
        related.insert("ip".into(), json!([ip]));
    }
    if !related.is_empty() {
        out["related"] = Value::Object(related);
    }
    if let Some(ua) = &e.user_agent {
        out["user_agent"] = json!({ "original": ua });
    }

    let mut wd = Map::new();
    let mut put = |k: &str, v: &Option<std::borrow::Cow<str>>| {
        if let Some(v) = v {
            wd.insert(k.into(), json!(v));
        }
    };
    put("request_time", &e.request_time);
    put("system_account", &e.system_account);
    put("session_id", &e.session_id);
    put("ip_address", &e.ip_address);
    put("device_type", &e.device_type);
    put("task_id", &e.task_id);
    put("task_display_name", &e.task_display_name);
    put("activity_action", &e.activity_action);
    if let Some(t) = &e.target {
        let mut tm = Map::new();
        for (k, v) in [
            ("descriptor", &t.descriptor),
            ("id", &t.id),
            ("href", &t.href),
        ] {
            if let Some(v) = v {
                tm.insert(k.into(), json!(v));
            }
        }
        wd.insert("target".into(), Value::Object(tm));
    }
    if !e.other.is_empty() {
        wd.insert("other".into(), Value::Object(e.other_map()));
    }
    out["workday"] = json!({ "activity": wd });
    out
}
