//! Property tests ("fuzzing" that runs in CI) of the three parsers that see untrusted or
//! hand-written input: the activity-log page parser, the dedup id's canonical form, and the
//! config parser. Seeds live in tests/fuzz/ (see its README); proptest mutates them and also
//! generates inputs from scratch.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use workday_collector::config::Config;
use workday_collector::workday::wire::{canonical, identify, parse_entry, parse_page};

fn corpus(kind: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("dir entry").path();
            let bytes = std::fs::read(&p).expect("read seed");
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// The definition the dedup id was written against: serde_json's `Value` round trip, or the
/// text itself where it does not parse into a `Value`.
fn reference_canonical(raw: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => serde_json::to_string(&v).expect("a Value always serializes"),
        Err(_) => raw.to_string(),
    }
}

/// A seed, mutated: bytes flipped, a span cut out, a span of another seed spliced in, or cut.
fn mutate(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        0..4u8,
    )
        .prop_map(move |(a, b, flips, i, j, op)| {
            let mut s = seeds[a].clone();
            if s.is_empty() {
                return seeds[b].clone();
            }
            for (at, byte) in flips {
                let k = at.index(s.len());
                s[k] = byte;
            }
            let (x, y) = {
                let x = i.index(s.len());
                let y = j.index(s.len());
                (x.min(y), x.max(y))
            };
            match op {
                0 => {
                    s.drain(x..y);
                }
                1 => {
                    let other = &seeds[b];
                    if !other.is_empty() {
                        let o = j.index(other.len());
                        s.splice(x..x, other[o..].iter().take(64).copied());
                    }
                }
                2 => s.truncate(y),
                _ => {}
            }
            s
        })
}

/// JSON text with the variety the canonical form must absorb: whitespace, duplicate keys,
/// escapes, every number spelling.
fn json_text() -> impl Strategy<Value = String> {
    let ws = prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n  "]);
    let string = prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9 ]{0,6}",
            Just("\\u00e9".to_string()),
            Just("é".to_string()),
            Just("\\/".to_string()),
            Just("\\\"".to_string()),
            Just("\\\\".to_string()),
            Just("\\n\\t\\b\\f\\r".to_string()),
            Just("\\u0000".to_string()),
            Just("\\u001F".to_string()),
            Just("\\ud83d\\ude00".to_string()),
            Just("😀".to_string()),
            Just("\u{7f}".to_string()),
        ],
        0..4,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()));
    let number = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        prop::sample::select(vec![
            "-0",
            "0.0",
            "1E+2",
            "1e-2",
            "-1.50",
            "18446744073709551616",
            "1e400x",
            "1e308",
            "0.30000000000000004",
            "123456789012345678901234567890",
        ])
        .prop_map(|s| s.trim_end_matches('x').to_string()),
    ];
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        number,
        string.clone(),
    ];
    let key = prop_oneof![
        prop::sample::select(vec!["requestTime", "taskId", "a", "b", "A", "é", "\\u00e9"])
            .prop_map(|k| format!("\"{k}\"")),
        string,
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let ws = ws.clone();
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..5), ws.clone())
                .prop_map(|(items, w)| format!("[{w}{}{w}]", items.join(&format!("{w},")))),
            (
                prop::collection::vec((key.clone(), inner), 0..6),
                ws.clone()
            )
                .prop_map(|(fields, w)| {
                    let body: Vec<String> = fields
                        .into_iter()
                        .map(|(k, v)| format!("{w}{k}{w}:{w}{v}"))
                        .collect();
                    format!("{{{}{w}}}", body.join(","))
                }),
        ]
    })
}

#[test]
fn seed_entries_canonicalize_like_serde_json_values() {
    for (path, bytes) in corpus("entry") {
        let raw = String::from_utf8(bytes).expect("utf-8 seed");
        let (fast, _) = canonical(raw.trim());
        assert_eq!(fast, reference_canonical(raw.trim()), "{}", path.display());
    }
    // requestTime: the last of duplicates counts, and only a string.
    let (_, t) =
        canonical(r#"{"requestTime":"2026-11-30T10:00:00Z","requestTime":"2026-11-30T11:00:00Z"}"#);
    assert_eq!(t, Some(1_796_036_400_000));
    assert_eq!(canonical(r#"{"requestTime":1764496800000}"#).1, None);
    assert_eq!(
        canonical(r#"{"x":{"requestTime":"2026-11-30T10:00:00Z"}}"#).1,
        None
    );
}

#[test]
fn seed_pages_never_panic_and_accepted_pages_hold_objects() {
    let mut accepted = 0;
    for (path, bytes) in corpus("page") {
        match parse_page(&bytes) {
            Ok(page) => {
                accepted += 1;
                assert!(
                    page.entries.iter().all(|e| e.get().starts_with('{')),
                    "{}",
                    path.display()
                );
            }
            Err(e) => assert!(!e.is_empty(), "{}", path.display()),
        }
    }
    // good, escapes, total-as-string: the rest are hostile.
    assert_eq!(accepted, 3);
}

#[test]
fn seed_configs_never_panic_and_problems_name_their_key() {
    for (path, bytes) in corpus("config") {
        let text = String::from_utf8_lossy(&bytes);
        match Config::parse(&text, &path) {
            Ok(_) => assert!(path.ends_with("good.toml"), "{} accepted", path.display()),
            Err(e) => {
                assert!(!e.problems.is_empty(), "{}", path.display());
                let msg = e.to_string();
                assert!(msg.contains(&path.display().to_string()), "{msg}");
            }
        }
    }
}

/// How entries were read before the borrowed reader: through a `serde_json::Value`. Returns the
/// known fields (strings only), the target's fields, and every other field, or `None` when the
/// text is not an object that parses into a `Value`.
#[allow(clippy::type_complexity)]
fn reference_entry(
    raw: &str,
) -> Option<(
    Vec<Option<String>>,
    Option<Vec<Option<String>>>,
    serde_json::Map<String, serde_json::Value>,
)> {
    use serde_json::Value;
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(raw) else {
        return None;
    };
    fn take(map: &mut serde_json::Map<String, Value>, k: &str) -> Option<String> {
        match map.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
    let target = match map.remove("target") {
        Some(Value::Object(mut t)) => Some(vec![
            take(&mut t, "descriptor"),
            take(&mut t, "id"),
            take(&mut t, "href"),
        ]),
        _ => None,
    };
    let known = KNOWN_FIELDS.iter().map(|k| take(&mut map, k)).collect();
    Some((known, target, map))
}

const KNOWN_FIELDS: [&str; 9] = [
    "requestTime",
    "systemAccount",
    "sessionId",
    "ipAddress",
    "userAgent",
    "deviceType",
    "taskId",
    "taskDisplayName",
    "activityAction",
];

/// Objects with Workday's field names (and others), any value, duplicates and all.
fn entry_text() -> impl Strategy<Value = String> {
    let keys: Vec<&str> = KNOWN_FIELDS
        .iter()
        .copied()
        .chain(["target", "descriptor", "id", "href", "other", "zeta"])
        .collect();
    let key = prop::sample::select(keys);
    let value = prop_oneof![
        json_text(),
        "[a-z]{0,4}(\\\\n|\\\\\"|\\\\u00e9)?[a-z]{0,3}".prop_map(|s| format!("\"{s}\"")),
        prop::collection::vec(
            (
                prop::sample::select(vec!["descriptor", "id", "href", "x"]),
                json_text()
            ),
            0..4
        )
        .prop_map(|f| {
            let body: Vec<String> = f.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        }),
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|fields| {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\" : {v}"))
            .collect();
        format!("{{ {} }}", body.join(",\n"))
    })
}

fn assert_reads_like_a_value(text: &str) {
    let e = parse_entry(text);
    let Some((known, target, other)) = reference_entry(text) else {
        return;
    };
    let got: Vec<Option<String>> = [
        &e.request_time,
        &e.system_account,
        &e.session_id,
        &e.ip_address,
        &e.user_agent,
        &e.device_type,
        &e.task_id,
        &e.task_display_name,
        &e.activity_action,
    ]
    .iter()
    .map(|f| f.as_deref().map(str::to_string))
    .collect();
    assert_eq!(got, known, "{text}");
    let got_target = e.target.as_ref().map(|t| {
        [&t.descriptor, &t.id, &t.href]
            .iter()
            .map(|f| f.as_deref().map(str::to_string))
            .collect::<Vec<_>>()
    });
    assert_eq!(got_target, target, "{text}");
    let got_other: serde_json::Map<String, serde_json::Value> = e
        .other
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), serde_json::from_str(v).ok()?)))
        .collect();
    assert_eq!(got_other, other, "{text}");
    let keys: Vec<&str> = e.other.iter().map(|(k, _)| k.as_ref()).collect();
    let want: Vec<&str> = other.keys().map(String::as_str).collect();
    assert_eq!(keys, want, "{text}");
}

#[test]
fn seed_entries_read_like_serde_json_values() {
    for (_, bytes) in corpus("entry") {
        assert_reads_like_a_value(String::from_utf8_lossy(&bytes).trim());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them(s in any::<String>(), t in "[\\x00-\\x7f]{0,40}") {
        for s in [&s, &t] {
            let mut out = Vec::new();
            workday_collector::normalize::push_json_str(&mut out, s);
            prop_assert_eq!(String::from_utf8(out).expect("utf-8"), serde_json::to_string(s).expect("json"));
        }
    }

    #[test]
    fn entries_read_like_serde_json_values(text in entry_text()) {
        assert_reads_like_a_value(&text);
    }

    #[test]
    fn mutated_entries_read_like_serde_json_values(
        bytes in mutate(corpus("entry").into_iter().map(|(_, b)| b).collect())
    ) {
        assert_reads_like_a_value(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn canonical_form_equals_the_value_round_trip(text in json_text()) {
        let (fast, _) = canonical(&text);
        prop_assert_eq!(fast, reference_canonical(&text));
    }

    #[test]
    fn canonical_form_of_mutated_entries_equals_the_value_round_trip(
        bytes in mutate(corpus("entry").into_iter().map(|(_, b)| b).collect())
    ) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert_eq!(canonical(&text).0, reference_canonical(&text));
    }

    #[test]
    fn ids_ignore_layout_and_count_identical_entries(text in json_text()) {
        let entry = format!("{{\"requestTime\":\"2026-11-30T10:00:00Z\",\"v\":{text}}}");
        let spaced = format!("{{ \"v\" : {text} , \"requestTime\" : \"2026-11-30T10:00:00Z\" }}");
        let raws: Vec<Box<serde_json::value::RawValue>> = [&entry, &spaced, &entry]
            .iter()
            .map(|s| serde_json::value::RawValue::from_string((*s).clone()).expect("json"))
            .collect();
        let ids = identify("acme", &raws);
        // The same entry three times (whatever its layout) is three distinct events.
        prop_assert_ne!(ids[0].id, ids[1].id);
        prop_assert_ne!(ids[1].id, ids[2].id);
        prop_assert_ne!(ids[0].id, ids[2].id);
        // Read again, in another order, the same three ids come back.
        let again = identify("acme", &[raws[1].clone(), raws[0].clone(), raws[2].clone()]);
        let mut a: Vec<_> = ids.iter().map(|i| i.id).collect();
        let mut b: Vec<_> = again.iter().map(|i| i.id).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
        let parses = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        prop_assert_eq!(ids[0].request_time_ms, parses.then_some(1_796_032_800_000));
    }

    #[test]
    fn mutated_pages_never_panic(bytes in mutate(corpus("page").into_iter().map(|(_, b)| b).collect())) {
        if let Ok(page) = parse_page(&bytes) {
            let objects = page.entries.iter().all(|e| e.get().starts_with('{'));
            prop_assert!(objects, "an accepted page holds a non-object");
        }
    }

    #[test]
    fn arbitrary_bytes_are_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_page(&bytes);
        let _ = canonical(&String::from_utf8_lossy(&bytes));
        let _ = Config::parse(&String::from_utf8_lossy(&bytes), Path::new("fuzz.toml"));
    }

    #[test]
    fn generated_pages_round_trip(entries in prop::collection::vec(json_text(), 0..20), total in any::<Option<u32>>()) {
        let objects: Vec<String> = entries.iter().map(|e| format!("{{\"v\":{e}}}")).collect();
        let total_json = total.map_or("null".to_string(), |t| t.to_string());
        let body = format!("{{\"total\":{total_json},\"data\":[{}]}}", objects.join(","));
        let page = parse_page(body.as_bytes()).expect("a well-formed page");
        prop_assert_eq!(page.total, total.map(u64::from));
        let got: Vec<&str> = page.entries.iter().map(|e| e.get()).collect();
        prop_assert_eq!(got, objects.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn mutated_configs_never_panic(bytes in mutate(corpus("config").into_iter().map(|(_, b)| b).collect())) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = Config::parse(&text, Path::new("fuzz.toml")) {
            prop_assert!(!e.problems.is_empty());
        }
    }
}
