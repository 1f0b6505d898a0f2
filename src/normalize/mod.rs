//! Renderings of one stored event as one output line: `raw`, `ocsf` (OCSF API Activity) and
//! `ecs` (Elastic Common Schema). Every format carries the event id and the original entry.
//! Mappings are versioned and tabled in docs/normalization.md.
//!
//! `raw`:
//! `{"id":"<64 hex>","tenant":"acme","source":"workday.activity","collected_at":"<RFC 3339>","event":{…}}`
//!
//! where `event` is the entry exactly as Workday sent it (line breaks, which JSON allows only as
//! insignificant whitespace, are dropped so that one event stays one line).
//! It does not decide where lines go (see `sink`).

pub mod ecs;
pub mod ocsf;

use crate::clock::rfc3339_ms;
use crate::config::Format;
use crate::store::StoredEvent;
use crate::workday::wire::{parse_entry, Entry};

pub const SOURCE: &str = "workday.activity";

/// An event id as 64 lowercase hex digits.
pub fn id_hex(id: &[u8; 32]) -> String {
    String::from_utf8_lossy(&id_hex_digits(id)).into_owned()
}

fn id_hex_digits(id: &[u8; 32]) -> [u8; 64] {
    let mut buf = [0u8; 64];
    // 32 bytes always fit 64 hex digits, which are ASCII.
    let _ = hex::encode_to_slice(id, &mut buf);
    buf
}

/// What the structured renderings read: the stored event and its parsed entry.
pub struct Rendering<'a> {
    pub event: &'a StoredEvent,
    pub entry: Entry<'a>,
    pub id_hex: String,
}

impl<'a> Rendering<'a> {
    pub fn new(event: &'a StoredEvent) -> Self {
        Rendering {
            event,
            entry: parse_entry(&event.raw),
            id_hex: id_hex(&event.id),
        }
    }
}

/// Appends `ev` rendered in `format`, without a trailing newline.
pub fn render(format: Format, ev: &StoredEvent, out: &mut Vec<u8>) {
    match format {
        Format::Raw => render_raw(ev, out),
        Format::Ocsf => ocsf::write(&Rendering::new(ev), out),
        Format::Ecs => ecs::write(&Rendering::new(ev), out),
    }
}

/// `ev` rendered as a JSON value (for sinks that wrap events in envelopes).
pub fn render_value(format: Format, ev: &StoredEvent) -> serde_json::Value {
    match format {
        Format::Ocsf => ocsf::render(&Rendering::new(ev)),
        Format::Ecs => ecs::render(&Rendering::new(ev)),
        Format::Raw => {
            let mut buf = Vec::new();
            render_raw(ev, &mut buf);
            serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// Writes a string that needs no escaping (checked in debug builds): one read from JSON
/// without escape sequences, which cannot hold a quote, a backslash or a control character.
pub(crate) fn push_plain_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// A string read from an entry: one without escapes in the entry needs none here.
// The Cow itself is the point: borrowed means "had no escapes".
#[allow(clippy::ptr_arg)]
pub(crate) fn push_cow_str(out: &mut Vec<u8>, s: &std::borrow::Cow<'_, str>) {
    match s {
        std::borrow::Cow::Borrowed(s) => push_plain_str(out, s),
        std::borrow::Cow::Owned(s) => push_json_str(out, s),
    }
}

/// `s` as a JSON string, escaped byte for byte as serde_json does.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 8 + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            c => out.extend_from_slice(&[b'\\', c]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// For each byte: 0 when it stands as is, else the letter after the backslash (`u`: `\u00XX`).
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

fn render_raw(ev: &StoredEvent, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(&id_hex_digits(&ev.id));
    out.extend_from_slice(b"\",\"tenant\":");
    push_json_str(out, &ev.tenant);
    out.extend_from_slice(b",\"source\":\"");
    out.extend_from_slice(SOURCE.as_bytes());
    out.extend_from_slice(b"\",\"collected_at\":\"");
    out.extend_from_slice(rfc3339_ms(ev.collected_at_ms).as_bytes());
    out.extend_from_slice(b"\",\"event\":");
    let raw = ev.raw.as_bytes();
    if raw.iter().any(|&b| b == b'\n' || b == b'\r') {
        out.extend(raw.iter().filter(|&&b| b != b'\n' && b != b'\r'));
    } else {
        out.extend_from_slice(raw);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn ev(raw: &str) -> StoredEvent {
        StoredEvent {
            seq: 1,
            id: [0xab; 32],
            tenant: "acme".into(),
            collected_at_ms: 1_764_000_000_123,
            raw: raw.into(),
        }
    }

    #[test]
    fn raw_line_shape() {
        let entry =
            r#"{"requestTime":"2026-11-27T21:48:30.832Z","systemAccount":"a \"quoted\" name"}"#;
        let mut out = Vec::new();
        render(Format::Raw, &ev(entry), &mut out);
        let line = String::from_utf8(out).expect("utf8");
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["id"], "ab".repeat(32));
        assert_eq!(v["tenant"], "acme");
        assert_eq!(v["source"], "workday.activity");
        assert_eq!(v["collected_at"], "2025-11-24T16:00:00.123Z");
        assert_eq!(v["event"]["systemAccount"], "a \"quoted\" name");
        // The entry's bytes are kept exactly.
        assert!(line.ends_with(&format!("\"event\":{entry}}}")));
    }

    #[test]
    fn pretty_printed_entries_stay_on_one_line() {
        let entry =
            "{\r\n    \"requestTime\": \"2026-11-27T21:48:30.832Z\",\n    \"note\": \"a\\nb\"\n}";
        let mut out = Vec::new();
        render(Format::Raw, &ev(entry), &mut out);
        let line = String::from_utf8(out).expect("utf8");
        assert!(!line.contains('\n') && !line.contains('\r'));
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["event"]["note"], "a\nb");
    }
}
