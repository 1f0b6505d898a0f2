//! OCSF API Activity (class 6003), schema version [`OCSF_VERSION`]. The mapping is tabled in
//! docs/normalization.md; every event validates against the official schema (tests).

use super::{push_cow_str, push_json_str, Rendering};
use serde_json::Value;
use std::borrow::Cow;

pub const OCSF_VERSION: &str = "1.5.0";
const CLASS_UID: u64 = 6003;

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

/// Writes one OCSF event as a JSON object (no trailing newline) straight into `out`.
///
/// Hand-written rather than derived: this runs for every event a sink receives. Strings read
/// from the entry without escapes are copied as they stand (they cannot hold anything that
/// needs escaping); everything else goes through [`push_str`], which escapes as serde_json
/// does (tested).
pub fn write(r: &Rendering<'_>, out: &mut Vec<u8>) {
    let e = &r.entry;
    let (activity_id, activity_name) = activity(e.activity_action.as_deref());
    let type_name = match activity_id {
        2 => "API Activity: Read",
        3 => "API Activity: Update",
        _ => "API Activity: Other",
    };
    let time = e.request_time_ms.unwrap_or(r.event.collected_at_ms);
    let valid_ip = e
        .ip_address
        .as_ref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    let device = device(e.device_type.as_deref());

    out.reserve(r.event.raw.len() * 2 + 900);
    out.extend_from_slice(
        b"{\"class_uid\":6003,\"class_name\":\"API Activity\",\"category_uid\":6,\
          \"category_name\":\"Application Activity\",\"activity_id\":",
    );
    push_int(out, activity_id as i64);
    out.extend_from_slice(b",\"activity_name\":\"");
    out.extend_from_slice(activity_name.as_bytes());
    out.extend_from_slice(b"\",\"type_uid\":");
    push_int(out, (CLASS_UID * 100 + activity_id) as i64);
    out.extend_from_slice(b",\"type_name\":\"");
    out.extend_from_slice(type_name.as_bytes());
    out.extend_from_slice(b"\",\"severity_id\":1,\"severity\":\"Informational\",\"time\":");
    push_int(out, time);

    // actor: OCSF requires one; app_name when Workday sent no account or session.
    out.extend_from_slice(b",\"actor\":{");
    let mut sep = "";
    if let Some(name) = &e.system_account {
        out.extend_from_slice(b"\"user\":{\"name\":");
        push_cow_str(out, name);
        out.push(b'}');
        sep = ",";
    }
    if let Some(uid) = &e.session_id {
        out.extend_from_slice(sep.as_bytes());
        out.extend_from_slice(b"\"session\":{\"uid\":");
        push_cow_str(out, uid);
        out.push(b'}');
        sep = ",";
    }
    if sep.is_empty() {
        out.extend_from_slice(b"\"app_name\":\"Workday\"");
    }

    out.extend_from_slice(b"},\"api\":{\"operation\":");
    match e.task_display_name.as_ref().or(e.task_id.as_ref()) {
        Some(op) => push_cow_str(out, op),
        None => out.extend_from_slice(b"\"unknown\""),
    }
    out.extend_from_slice(b",\"service\":{\"name\":\"Workday\"}},\"src_endpoint\":{");
    match valid_ip {
        Some(ip) => {
            out.extend_from_slice(b"\"ip\":");
            push_cow_str(out, ip);
        }
        None => out.extend_from_slice(b"\"name\":\"unknown\""),
    }
    if let Some((type_id, kind)) = device {
        out.extend_from_slice(b",\"type_id\":");
        push_int(out, type_id as i64);
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.push(b'"');
    }

    out.extend_from_slice(b"},\"metadata\":{\"version\":\"");
    out.extend_from_slice(OCSF_VERSION.as_bytes());
    out.extend_from_slice(
        b"\",\"product\":{\"name\":\"Workday\",\"vendor_name\":\"Workday\",\
          \"feature\":{\"name\":\"User Activity Logging\"}},\"uid\":\"",
    );
    out.extend_from_slice(r.id_hex.as_bytes());
    out.extend_from_slice(b"\",\"tenant_uid\":");
    push_json_str(out, &r.event.tenant);
    out.extend_from_slice(
        b",\"log_name\":\"activityLogging\",\"log_provider\":\"workday-collector\",\"logged_time\":",
    );
    push_int(out, r.event.collected_at_ms);
    out.extend_from_slice(b",\"processed_time\":");
    push_int(out, r.event.collected_at_ms);
    if let Some(code) = &e.task_id {
        out.extend_from_slice(b",\"event_code\":");
        push_cow_str(out, code);
    }
    if let Some(t) = &e.request_time {
        out.extend_from_slice(b",\"original_time\":");
        push_cow_str(out, t);
    }
    out.extend_from_slice(b"},\"raw_data\":");
    push_json_str(out, &r.event.raw);

    if let Some(ua) = &e.user_agent {
        out.extend_from_slice(b",\"http_request\":{\"user_agent\":");
        push_cow_str(out, ua);
        out.push(b'}');
    }
    if let Some(t) = &e.target {
        out.extend_from_slice(b",\"resources\":[{");
        if let Some(uid) = &t.id {
            out.extend_from_slice(b"\"uid\":");
            push_cow_str(out, uid);
            out.push(b',');
        }
        match &t.descriptor {
            Some(name) => {
                out.extend_from_slice(b"\"name\":");
                push_cow_str(out, name);
                out.push(b',');
            }
            None if t.id.is_none() => out.extend_from_slice(b"\"name\":\"unknown\","),
            None => {}
        }
        out.extend_from_slice(b"\"type\":\"Workday object\"");
        if let Some(href) = &t.href {
            out.extend_from_slice(b",\"data\":{\"href\":");
            push_cow_str(out, href);
            out.push(b'}');
        }
        out.extend_from_slice(b"}]");
    }

    // Workday fields with no OCSF place, sorted by name (known fields never appear among
    // `other`, whose keys are unique).
    let mut unmapped: Vec<(&str, Unmapped)> = Vec::with_capacity(3 + e.other.len());
    if let Some(d) = &e.device_type {
        unmapped.push(("deviceType", Unmapped::Str(d)));
    }
    if let Some(a) = &e.activity_action {
        unmapped.push(("activityAction", Unmapped::Str(a)));
    }
    if let Some(ip) = e.ip_address.as_ref().filter(|_| valid_ip.is_none()) {
        unmapped.push(("ipAddress", Unmapped::Str(ip)));
    }
    for (k, v) in &e.other {
        unmapped.push((k, Unmapped::Json(v)));
    }
    if !unmapped.is_empty() {
        unmapped.sort_by(|a, b| a.0.cmp(b.0));
        out.extend_from_slice(b",\"unmapped\":{");
        for (i, (k, v)) in unmapped.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(out, k);
            out.push(b':');
            match v {
                Unmapped::Str(s) => push_cow_str(out, s),
                Unmapped::Json(raw) => {
                    out.extend_from_slice(crate::workday::wire::canonical_value(raw).as_bytes())
                }
            }
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// An unmapped field's value: a string, or JSON as sent (written in canonical form).
enum Unmapped<'a> {
    Str(&'a Cow<'a, str>),
    Json(&'a str),
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The event as a JSON value (for sinks that wrap events in an envelope).
pub fn render(r: &Rendering<'_>) -> Value {
    let mut out = Vec::new();
    write(r, &mut out);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}
