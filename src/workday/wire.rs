//! Workday's activity-log JSON: pages, count probes, error bodies, and the event id.
//!
//! Entries are kept as the exact bytes Workday sent (`RawValue`); only `requestTime` is read.
//! Any field may be missing and unknown fields may appear: neither fails a page.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;

/// One page of `activityLogging`.
#[derive(Debug)]
pub struct Page {
    /// Size of the whole result for this `from`/`to`, whatever `limit`/`offset` said.
    pub total: Option<u64>,
    pub entries: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct PageWire {
    #[serde(default)]
    total: Option<Value>,
    #[serde(default)]
    data: Option<Vec<Box<RawValue>>>,
}

/// A number, or a string holding one: Workday has been seen sending both.
fn as_count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let wire: PageWire = serde_json::from_slice(body).map_err(|e| {
        format!(
            "activity log page is not the expected JSON ({e}); body starts {}",
            preview(body)
        )
    })?;
    let total = match &wire.total {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            as_count(v).ok_or_else(|| format!("activity log page has a non-numeric total: {v}"))?,
        ),
    };
    let entries = wire.data.unwrap_or_default();
    if let Some((i, e)) = entries
        .iter()
        .enumerate()
        .find(|(_, e)| !e.get().starts_with('{'))
    {
        return Err(format!(
            "activity log entry {i} of this page is not a JSON object (starts {})",
            preview(e.get().as_bytes())
        ));
    }
    Ok(Page { total, entries })
}

/// `returnUserActivityEntryCount=true` answers `{"data":[{"userActivityEntryCount": N}]}`.
pub fn parse_count(body: &[u8]) -> Result<u64, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "count probe answer is not JSON ({e}); body starts {}",
            preview(body)
        )
    })?;
    v.get("data")
        .and_then(|d| d.get(0))
        .and_then(|d| d.get("userActivityEntryCount"))
        .and_then(as_count)
        .ok_or_else(|| {
            format!(
                "count probe answer has no userActivityEntryCount; body starts {}",
                preview(body)
            )
        })
}

/// Workday's error body: `{"error": "…"}`, with `errors: [{"error": "…"}]` at times, or nothing.
pub fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrWire {
        error: Option<String>,
        #[serde(default)]
        errors: Vec<ErrItem>,
    }
    #[derive(Deserialize)]
    struct ErrItem {
        error: Option<String>,
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return "empty body".into();
    }
    match serde_json::from_slice::<ErrWire>(body) {
        Ok(e) => {
            let mut parts: Vec<String> = e.error.into_iter().collect();
            parts.extend(e.errors.into_iter().filter_map(|i| i.error));
            parts.dedup();
            if parts.is_empty() {
                format!("body {}", preview(body))
            } else {
                parts.join("; ")
            }
        }
        Err(_) => format!("body {}", preview(body)),
    }
}

/// The first bytes of a body, printable, for error messages.
pub fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(120)]);
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{:?}", s.trim())
}

/// The fields of one activity entry, read leniently: a field that is missing or of an
/// unexpected type is `None`; fields this version does not know are kept in `other`. Strings are
/// borrowed from the stored text unless they hold escapes. Of duplicate keys the last counts, as
/// in a JSON object read into a map.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Entry<'a> {
    pub request_time: Option<Cow<'a, str>>,
    pub request_time_ms: Option<i64>,
    pub system_account: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
    pub ip_address: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub device_type: Option<Cow<'a, str>>,
    pub task_id: Option<Cow<'a, str>>,
    pub task_display_name: Option<Cow<'a, str>>,
    pub activity_action: Option<Cow<'a, str>>,
    pub target: Option<Target<'a>>,
    /// Every other field, as sent, sorted by key (the last of duplicate keys kept).
    pub other: Vec<(Cow<'a, str>, &'a str)>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Target<'a> {
    pub descriptor: Option<Cow<'a, str>>,
    pub id: Option<Cow<'a, str>>,
    pub href: Option<Cow<'a, str>>,
}

/// Reads an entry as stored (never fails: a non-object or unreadable text yields an empty
/// entry).
pub fn parse_entry(raw: &str) -> Entry<'_> {
    let mut entry = serde_json::from_str::<EntryWire>(raw)
        .map(|w| w.0)
        .unwrap_or_default();
    entry.request_time_ms = entry
        .request_time
        .as_deref()
        .and_then(crate::clock::parse_rfc3339_ms);
    sort_keep_last(&mut entry.other);
    entry
}

/// Sorts fields by key and keeps the last of equal keys, as inserting them into a map would.
fn sort_keep_last<V>(fields: &mut Vec<(Cow<'_, str>, V)>) {
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    // The sort is stable, and dedup keeps the first of a run: moving each later field into
    // the kept slot leaves the last one there.
    fields.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
}

struct EntryWire<'a>(Entry<'a>);

/// Any JSON value: `Some` when it is a string.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any JSON value: `Some` when it is an object (its known string fields read).
struct MaybeTarget<'a>(Option<Target<'a>>);

impl<'de> Deserialize<'de> for MaybeTarget<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Taken whole, then read as an object only when it is one (targets are small).
        let raw = <&'de RawValue>::deserialize(d)?;
        if !raw.get().starts_with('{') {
            return Ok(MaybeTarget(None));
        }
        serde_json::from_str::<TargetWire<'de>>(raw.get())
            .map(|t| MaybeTarget(Some(t.0)))
            .map_err(serde::de::Error::custom)
    }
}

struct TargetWire<'a>(Target<'a>);

impl<'de> Deserialize<'de> for TargetWire<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TargetWire<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut t = Target::default();
                while let Some(key) = a.next_key::<CowStr<'de>>()? {
                    let slot = match key.0.as_ref() {
                        "descriptor" => &mut t.descriptor,
                        "id" => &mut t.id,
                        "href" => &mut t.href,
                        _ => {
                            a.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = a.next_value::<MaybeStr<'de>>()?.0;
                }
                Ok(TargetWire(t))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for EntryWire<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EntryWire<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut e = Entry::default();
                while let Some(key) = a.next_key::<CowStr<'de>>()? {
                    let slot = match key.0.as_ref() {
                        "requestTime" => &mut e.request_time,
                        "systemAccount" => &mut e.system_account,
                        "sessionId" => &mut e.session_id,
                        "ipAddress" => &mut e.ip_address,
                        "userAgent" => &mut e.user_agent,
                        "deviceType" => &mut e.device_type,
                        "taskId" => &mut e.task_id,
                        "taskDisplayName" => &mut e.task_display_name,
                        "activityAction" => &mut e.activity_action,
                        "target" => {
                            e.target = a.next_value::<MaybeTarget<'de>>()?.0;
                            continue;
                        }
                        _ => {
                            let v = a.next_value::<&'de RawValue>()?;
                            e.other.push((key.0, v.get()));
                            continue;
                        }
                    };
                    *slot = a.next_value::<MaybeStr<'de>>()?.0;
                }
                Ok(EntryWire(e))
            }
        }
        d.deserialize_map(V)
    }
}

/// An entry's identity and time, computed over one complete query result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    pub id: [u8; 32],
    pub request_time_ms: Option<i64>,
}

/// Identifies every entry of one complete response (all pages of one `from`/`to`).
///
/// Workday gives no event id, and distinct events can be byte-identical. An entry's id is
/// SHA-256 over a version tag, the tenant, the entry's canonical JSON (keys sorted, no spaces)
/// and its occurrence number among identical entries in this response. Identical entries always
/// share their `requestTime` to the millisecond, and window bounds are whole seconds, so every
/// response that holds one of them holds all that were visible: a re-read gives the same ids,
/// and a second identical event gets occurrence 1.
pub fn identify(tenant: &str, entries: &[Box<RawValue>]) -> Vec<Identified> {
    let base = id_prefix(tenant);
    let mut canon = Vec::with_capacity(1024);
    // Identical entries are told apart by the id of their first occurrence.
    let mut seen: HashMap<[u8; 32], u32> = HashMap::with_capacity(entries.len());
    entries
        .iter()
        .map(|raw| {
            canon.clear();
            let request_time_ms = canonical_into(raw.get(), &mut canon);
            let mut h = base.clone();
            h.update(&canon);
            h.update(b"\n");
            let mut first = h.clone();
            first.update(b"0");
            let first: [u8; 32] = first.finalize().into();
            let n = seen.entry(first).or_insert(0);
            let occurrence = *n;
            *n += 1;
            let id = if occurrence == 0 {
                first
            } else {
                h.update(occurrence.to_string().as_bytes());
                h.finalize().into()
            };
            Identified {
                id,
                request_time_ms,
            }
        })
        .collect()
}

/// The id formula up to the entry: version tag and tenant.
fn id_prefix(tenant: &str) -> Sha256 {
    let mut h = Sha256::new();
    h.update(b"workday-activity-v1\n");
    h.update(tenant.as_bytes());
    h.update(b"\n");
    h
}

/// An entry's canonical JSON and its parsed `requestTime`.
///
/// The canonical form is, byte for byte, `serde_json::to_string` of the entry parsed into a
/// `serde_json::Value` (keys sorted at every depth, the last of duplicate keys kept, no
/// whitespace, serde_json's string escaping and number formatting), which is what the id
/// formula was defined over. Text that does not parse into a `Value` is its own canonical
/// form. It is written directly, without building the `Value` tree: this is on the hot path
/// of every window.
pub fn canonical(raw: &str) -> (String, Option<i64>) {
    let mut out = Vec::with_capacity(raw.len());
    let t = canonical_into(raw, &mut out);
    // Only serde_json's output or the (UTF-8) text itself went in.
    (String::from_utf8(out).unwrap_or_default(), t)
}

/// Appends the canonical form of `raw` to `out` (see [`canonical`]); returns its `requestTime`.
fn canonical_into(raw: &str, out: &mut Vec<u8>) -> Option<i64> {
    let start = out.len();
    let mut request_time = None;
    if !write_canonical(raw, out, Some(&mut request_time)) {
        // Valid JSON to the page parser but not to a `Value` (a number beyond f64, say): the
        // exact text stands in, so two such entries can never collapse into one id.
        out.truncate(start);
        out.extend_from_slice(raw.as_bytes());
        return None;
    }
    request_time.and_then(|t: String| crate::clock::parse_rfc3339_ms(&t))
}

/// The canonical form of any JSON value (see [`canonical`]); text that does not parse into a
/// `Value` is returned with its line breaks dropped.
pub fn canonical_value(raw: &str) -> String {
    let mut out = Vec::with_capacity(raw.len());
    if write_canonical(raw, &mut out, None) {
        String::from_utf8(out).unwrap_or_default()
    } else {
        raw.chars().filter(|c| *c != '\n' && *c != '\r').collect()
    }
}

/// Appends the canonical form of `raw` to `out` (and, given a slot, the top level's
/// `requestTime`); false when `raw` does not parse into a `Value` (`out` may then hold a part).
fn write_canonical(
    raw: &str,
    out: &mut Vec<u8>,
    request_time: Option<&mut Option<String>>,
) -> bool {
    let mut de = serde_json::Deserializer::from_str(raw);
    serde::de::DeserializeSeed::deserialize(Canon { out, request_time }, &mut de)
        .and_then(|()| de.end())
        .is_ok()
}

/// Writes the canonical form of one JSON value; at the top level also picks out `requestTime`
/// (when, after duplicates, it is a string).
struct Canon<'a> {
    out: &'a mut Vec<u8>,
    request_time: Option<&'a mut Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Canon<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Canon<'_> {
    fn put<T: serde::Serialize + ?Sized>(self, v: &T) {
        // Writing into a Vec cannot fail, and these types always serialize.
        let _ = serde_json::to_writer(&mut *self.out, v);
    }
}

impl<'de> serde::de::Visitor<'de> for Canon<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.put(&v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.put(&v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.put(&v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As `Value` holds it: a non-finite number becomes null.
        self.put(&Value::from(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.put(v);
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        // Borrowed means the input held no escape sequence, so (raw control characters being
        // invalid JSON) nothing in it needs escaping: it is written as it stands.
        crate::normalize::push_plain_str(self.out, v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            let seed = Canon {
                out: &mut *self.out,
                request_time: None,
            };
            if seq.next_element_seed(seed)?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // (key, where its canonical value sits in `values`)
        let mut fields: Vec<(Cow<'de, str>, (usize, usize))> = Vec::with_capacity(16);
        let mut values = Vec::with_capacity(512);
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let start = values.len();
            map.next_value_seed(Canon {
                out: &mut values,
                request_time: None,
            })?;
            fields.push((key.0, (start, values.len())));
        }
        sort_keep_last(&mut fields);
        self.out.push(b'{');
        for (i, (key, (start, end))) in fields.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            crate::normalize::push_cow_str(self.out, key);
            self.out.push(b':');
            self.out.extend_from_slice(&values[*start..*end]);
        }
        self.out.push(b'}');
        if let Some(slot) = self.request_time {
            if let Some((_, (start, end))) = fields.iter().find(|f| f.0 == "requestTime") {
                *slot = serde_json::from_slice::<String>(&values[*start..*end]).ok();
            }
        }
        Ok(())
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct CowStr<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The id formula; documented in docs/ARCHITECTURE.md. Changing it re-delivers everything.
pub fn event_id(tenant: &str, canonical: &str, occurrence: u32) -> [u8; 32] {
    let mut h = id_prefix(tenant);
    h.update(canonical.as_bytes());
    h.update(b"\n");
    h.update(occurrence.to_string().as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raws(items: &[&str]) -> Vec<Box<RawValue>> {
        items
            .iter()
            .map(|s| RawValue::from_string((*s).to_string()).expect("raw"))
            .collect()
    }

    #[test]
    fn page_shapes() {
        let p = parse_page(br#"{"total": 1563, "data": [{"a":1}, {"b": 2}]}"#).expect("page");
        assert_eq!(p.total, Some(1563));
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries[1].get(), r#"{"b": 2}"#);
        let p = parse_page(br#"{"total": "364", "data": []}"#).expect("page");
        assert_eq!((p.total, p.entries.len()), (Some(364), 0));
        let p = parse_page(br#"{"data": null}"#).expect("page");
        assert_eq!((p.total, p.entries.len()), (None, 0));
        assert!(parse_page(b"<html>maintenance</html>").is_err());
        assert!(parse_page(br#"{"total": "many", "data": []}"#).is_err());
        assert!(parse_page(br#"{"total": 3, "data": [1, 2"#).is_err());
    }

    #[test]
    fn count_probe_number_or_string() {
        assert_eq!(
            parse_count(br#"{"data":[{"userActivityEntryCount":12}]}"#),
            Ok(12)
        );
        assert_eq!(
            parse_count(br#"{"total":1,"data":[{"userActivityEntryCount":"12345"}]}"#),
            Ok(12345)
        );
        assert!(parse_count(br#"{"data":[]}"#).is_err());
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(br#"{"error":"invalid request"}"#),
            "invalid request"
        );
        assert_eq!(
            error_message(br#"{"error":"bad","errors":[{"error":"from is required"}]}"#),
            "bad; from is required"
        );
        assert_eq!(error_message(b""), "empty body");
        assert!(error_message(b"<html>oops</html>").contains("oops"));
    }

    #[test]
    fn identity_is_order_and_whitespace_independent_and_counts_twins() {
        let a = r#"{"requestTime":"2026-11-27T21:48:30.832Z","systemAccount":"x","taskId":"t"}"#;
        let a_reordered =
            r#"{ "taskId": "t", "systemAccount": "x", "requestTime": "2026-11-27T21:48:30.832Z" }"#;
        let b = r#"{"requestTime":"2026-11-27T21:48:30.832Z","systemAccount":"y","taskId":"t"}"#;
        let first = identify("acme", &raws(&[a, b, a]));
        let second = identify("acme", &raws(&[b, a_reordered, a]));
        // Re-reads in another order collapse onto the same ids…
        let mut x: Vec<_> = first.iter().map(|i| i.id).collect();
        let mut y: Vec<_> = second.iter().map(|i| i.id).collect();
        x.sort();
        y.sort();
        assert_eq!(x, y);
        // …and the two identical events stay two.
        assert_ne!(first[0].id, first[2].id);
        assert_eq!(
            first[0].request_time_ms,
            crate::clock::parse_rfc3339_ms("2026-11-27T21:48:30.832Z")
        );
        // The tenant is part of the identity.
        assert_ne!(identify("other", &raws(&[a]))[0].id, first[0].id);
    }

    #[test]
    fn entries_are_read_leniently() {
        let e = parse_entry(
            r#"{"requestTime":"2026-11-27T21:48:30.832Z","systemAccount":7,"taskId":"t","target":{"id":"x"},"newField":[1]}"#,
        );
        assert_eq!(
            e.request_time_ms,
            crate::clock::parse_rfc3339_ms("2026-11-27T21:48:30.832Z")
        );
        assert_eq!(e.system_account, None);
        assert_eq!(e.task_id.as_deref(), Some("t"));
        assert_eq!(e.target.as_ref().and_then(|t| t.id.as_deref()), Some("x"));
        assert_eq!(e.other, vec![(Cow::Borrowed("newField"), "[1]")]);
        assert_eq!(parse_entry("[1,2]"), Entry::default());
    }

    #[test]
    fn ids_follow_the_documented_formula() {
        let a = r#"{"taskId":"t", "requestTime":"2026-11-27T21:48:30.832Z"}"#;
        let b = r#"{"requestTime":"2026-11-27T21:48:30.832Z","taskId":"u"}"#;
        let ids = identify("acme", &raws(&[a, b, a, a]));
        let (ca, cb) = (canonical(a).0, canonical(b).0);
        assert_eq!(
            ca,
            r#"{"requestTime":"2026-11-27T21:48:30.832Z","taskId":"t"}"#
        );
        let mut h = Sha256::new();
        h.update(format!("workday-activity-v1\nacme\n{ca}\n0"));
        let by_hand: [u8; 32] = h.finalize().into();
        assert_eq!(ids[0].id, by_hand);
        assert_eq!(ids[1].id, event_id("acme", &cb, 0));
        assert_eq!(ids[2].id, event_id("acme", &ca, 1));
        assert_eq!(ids[3].id, event_id("acme", &ca, 2));
    }

    #[test]
    fn entries_without_time_or_objects_still_get_ids() {
        let ids = identify("acme", &raws(&[r#"{"systemAccount":"x"}"#, "42", "null"]));
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0].request_time_ms, None);
        assert_ne!(ids[1].id, ids[2].id);
    }
}
