//! OCSF API Activity (class 6003), schema version [`OCSF_VERSION`]. The mapping is tabled in
//! docs/normalization.md; every event validates against the official schema (tests).

use super::Rendering;
use serde_json::{json, Map, Value};

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

pub fn render(r: &Rendering<'_>) -> Value {
    let e = &r.entry;
    let (activity_id, activity_name) = activity(e.activity_action.as_deref());
    let time = e.request_time_ms.unwrap_or(r.event.collected_at_ms);

    let mut actor = Map::new();
    if let Some(name) = &e.system_account {
        actor.insert("user".into(), json!({ "name": name }));
    }
    if let Some(sid) = &e.session_id {
        actor.insert("session".into(), json!({ "uid": sid }));
    }
    if actor.is_empty() {
        // OCSF requires an actor; Workday sent no account or session.
        actor.insert("app_name".into(), json!("Workday"));
    }

    let mut src = Map::new();
    match &e.ip_address {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => {
            src.insert("ip".into(), json!(ip));
        }
        _ => {
            src.insert("name".into(), json!("unknown"));
        }
    }
    if let Some((type_id, type_name)) = device(e.device_type.as_deref()) {
        src.insert("type_id".into(), json!(type_id));
        src.insert("type".into(), json!(type_name));
    }

    let mut api = Map::new();
    api.insert(
        "operation".into(),
        json!(e
            .task_display_name
            .as_deref()
            .or(e.task_id.as_deref())
            .unwrap_or("unknown")),
    );
    api.insert("service".into(), json!({ "name": "Workday" }));

    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": { "name": "Workday", "vendor_name": "Workday", "feature": { "name": "User Activity Logging" } },
        "uid": r.id_hex,
        "tenant_uid": r.event.tenant,
        "log_name": "activityLogging",
        "log_provider": "workday-collector",
        "logged_time": r.event.collected_at_ms,
        "processed_time": r.event.collected_at_ms,
    });
    if let Some(code) = &e.task_id {
        metadata["event_code"] = json!(code);
    }
    if let Some(t) = &e.request_time {
        metadata["original_time"] = json!(t);
    }

    let mut out = json!({
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("API Activity: {activity_name}"),
        "severity_id": 1,
        "severity": "Informational",
        "time": time,
        "actor": actor,
        "api": api,
        "src_endpoint": src,
        "metadata": metadata,
        "raw_data": r.event.raw,
    });
    if let Some(ua) = &e.user_agent {
        out["http_request"] = json!({ "user_agent": ua });
    }
    if let Some(t) = &e.target {
        let mut res = Map::new();
        if let Some(id) = &t.id {
            res.insert("uid".into(), json!(id));
        }
        if let Some(d) = &t.descriptor {
            res.insert("name".into(), json!(d));
        }
        if res.is_empty() {
            res.insert("name".into(), json!("unknown"));
        }
        res.insert("type".into(), json!("Workday object"));
        if let Some(h) = &t.href {
            res.insert("data".into(), json!({ "href": h }));
        }
        out["resources"] = json!([res]);
    }
    let mut unmapped = Map::new();
    if let Some(d) = &e.device_type {
        unmapped.insert("deviceType".into(), json!(d));
    }
    if let Some(a) = &e.activity_action {
        unmapped.insert("activityAction".into(), json!(a));
    }
    if let Some(ip) = e
        .ip_address
        .as_ref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_err())
    {
        unmapped.insert("ipAddress".into(), json!(ip));
    }
    for (k, v) in &e.other {
        unmapped.insert(k.clone(), v.clone());
    }
    if !unmapped.is_empty() {
        out["unmapped"] = Value::Object(unmapped);
    }
    out
}
