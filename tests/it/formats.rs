//! OCSF and ECS renderings of everything the simulated tenant produces.

use crate::support::*;
use serde_json::Value;

const OCSF_SCHEMA: &str = include_str!("../data/ocsf-1.5.0-api_activity.schema.json");

/// ECS fields this collector writes outside `workday.*` (from the ECS 8.11 field reference).
const ECS_FIELDS: &[&str] = &[
    "@timestamp",
    "ecs.version",
    "event.id",
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.code",
    "event.dataset",
    "event.module",
    "event.provider",
    "event.original",
    "event.ingested",
    "organization.id",
    "observer.vendor",
    "observer.product",
    "observer.type",
    "user.name",
    "source.ip",
    "related.user",
    "related.ip",
    "user_agent.original",
];

fn leaf_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(v, &p, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ocsf_event_validates_and_ecs_uses_only_ecs_names() {
    let env = Env::frozen(81, 12_000, 0, |c| c.log_own_requests = true).await;
    env.append_config(
        "[[sink]]\nname = \"ocsf\"\ntype = \"file\"\npath = \"ocsf.jsonl\"\nformat = \"ocsf\"\n\
             \n[[sink]]\nname = \"ecs\"\ntype = \"file\"\npath = \"ecs.jsonl\"\nformat = \"ecs\"\n",
    );
    env.run_once().await.expect("run --once");
    let raw = env.delivered();
    assert!(raw.len() > 10_000);

    let schema: Value = serde_json::from_str(OCSF_SCHEMA).expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let ocsf = std::fs::read_to_string(env.path("ocsf.jsonl")).expect("ocsf file");
    let mut originals = Vec::new();
    for line in ocsf.lines() {
        let v: Value = serde_json::from_str(line).expect("ocsf json");
        if let Some(e) = validator.iter_errors(&v).next() {
            panic!(
                "OCSF event does not validate: {e} at {}\n{line}",
                e.instance_path()
            );
        }
        assert_eq!(v["metadata"]["uid"].as_str().map(str::len), Some(64));
        originals.push(v["raw_data"].as_str().expect("raw_data").to_string());
    }
    // Every event, with its original entry.
    assert_same_multiset(&originals, &raw);

    let ecs = std::fs::read_to_string(env.path("ecs.jsonl")).expect("ecs file");
    let mut originals = Vec::new();
    for line in ecs.lines() {
        let v: Value = serde_json::from_str(line).expect("ecs json");
        let mut paths = Vec::new();
        leaf_paths(&v, "", &mut paths);
        for p in paths {
            assert!(
                p.starts_with("workday.")
                    || p.starts_with("labels.")
                    || ECS_FIELDS.contains(&p.as_str()),
                "{p} is not an ECS field"
            );
        }
        assert_eq!(v["event"]["id"].as_str().map(str::len), Some(64));
        if let Some(ip) = v["source"]["ip"].as_str() {
            assert!(ip.parse::<std::net::IpAddr>().is_ok());
        }
        originals.push(
            v["event"]["original"]
                .as_str()
                .expect("original")
                .to_string(),
        );
    }
    assert_same_multiset(&originals, &raw);
}

#[test]
fn odd_entries_still_render_valid_ocsf() {
    let schema: Value = serde_json::from_str(OCSF_SCHEMA).expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for raw in [
        "{}",
        "[1,2]",
        r#"{"requestTime":"garbage","ipAddress":"00.00.000.000","activityAction":"DELETE","target":{}}"#,
        r#"{"systemAccount":"x","deviceType":"Watch","target":{"href":"h"},"extra":{"a":[1]}}"#,
    ] {
        let ev = workday_collector::store::StoredEvent {
            seq: 1,
            id: [7; 32],
            tenant: "acme".into(),
            collected_at_ms: 1_764_000_000_000,
            raw: raw.into(),
        };
        let v = workday_collector::normalize::render_value(
            workday_collector::config::Format::Ocsf,
            &ev,
        );
        if let Some(e) = validator.iter_errors(&v).next() {
            panic!("{raw}: {e} at {}", e.instance_path());
        }
        assert_eq!(v["raw_data"], raw);
        // The schema is strict: an unknown property, or a missing required one, fails.
        let mut extra = v.clone();
        extra["workday_tenant"] = serde_json::json!("acme");
        assert!(!validator.is_valid(&extra));
        let mut missing = v.clone();
        missing.as_object_mut().expect("object").remove("api");
        assert!(!validator.is_valid(&missing));
    }
}
