//! The Splunk HEC sink against a strict fake written from Splunk's HEC reference: auth header,
//! concatenated envelopes, channel and indexer acknowledgement, busy answers, and partial
//! batches refused at `invalid-event-number`.

use crate::cli::bin;
use crate::support::*;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";
/// Events of this task are "unparseable" for the fake indexer.
const POISON: &str = "Edit Tenant Setup - Security";

#[derive(Default)]
struct Hec {
    indexed: Mutex<Vec<Value>>,
    busy_next: AtomicU32,
    next_ack: AtomicU64,
    acks: Mutex<HashMap<u64, u32>>,
    ack_polls: AtomicU32,
    problems: Mutex<Vec<String>>,
}

fn hec_err(status: StatusCode, code: i64, text: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"text": text, "code": code})))
}

async fn event(
    State(h): State<Arc<Hec>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => return hec_err(StatusCode::UNAUTHORIZED, 2, "Token is required"),
        Some(v) if v != format!("Splunk {TOKEN}") => {
            return hec_err(StatusCode::FORBIDDEN, 4, "Invalid token")
        }
        _ => {}
    }
    let Some(channel) = headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
    else {
        return hec_err(StatusCode::BAD_REQUEST, 10, "Data channel is missing");
    };
    if channel.len() != 36 || channel.matches('-').count() != 4 {
        return hec_err(StatusCode::BAD_REQUEST, 11, "Invalid data channel");
    }
    if h.busy_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return hec_err(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy");
    }
    let mut n = 0;
    for item in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
        let Ok(env) = item else {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"text": "Invalid data format", "code": 6, "invalid-event-number": n})),
            );
        };
        if env.get("event").is_none_or(Value::is_null) {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"text": "Event field is required", "code": 12, "invalid-event-number": n}),
                ),
            );
        }
        if env["time"].as_f64().is_none()
            || env["sourcetype"] != "workday:activity"
            || env["index"] != "workday"
            || env["host"] != "acme"
        {
            h.problems
                .lock()
                .expect("lock")
                .push(format!("bad envelope: {env}"));
        }
        if env["event"]["api"]["operation"] == POISON {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"text": "Invalid data format", "code": 6, "invalid-event-number": n})),
            );
        }
        h.indexed.lock().expect("lock").push(env["event"].clone());
        n += 1;
    }
    if n == 0 {
        return hec_err(StatusCode::BAD_REQUEST, 5, "No data");
    }
    let id = h.next_ack.fetch_add(1, Ordering::SeqCst);
    h.acks.lock().expect("lock").insert(id, 0);
    (
        StatusCode::OK,
        Json(json!({"text": "Success", "code": 0, "ackId": id})),
    )
}

async fn ack(
    State(h): State<Arc<Hec>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    if !q.contains_key("channel") {
        return hec_err(StatusCode::BAD_REQUEST, 10, "Data channel is missing");
    }
    h.ack_polls.fetch_add(1, Ordering::SeqCst);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut out = serde_json::Map::new();
    let mut acks = h.acks.lock().expect("lock");
    for id in req["acks"].as_array().cloned().unwrap_or_default() {
        let id = id.as_u64().unwrap_or(u64::MAX);
        // Indexed on the second poll: the collector must wait for it.
        let polled = acks.entry(id).or_insert(0);
        *polled += 1;
        out.insert(id.to_string(), json!(*polled >= 2));
    }
    (StatusCode::OK, Json(json!({"acks": out})))
}

async fn fake_hec() -> (Arc<Hec>, String) {
    let h = Arc::new(Hec::default());
    let app = axum::Router::new()
        .route("/services/collector/event", axum::routing::post(event))
        .route("/services/collector/ack", axum::routing::post(ack))
        .with_state(h.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (h, url)
}

fn add_hec_sink(env: &Env, url: &str) {
    env.append_config(&format!(
            "[[sink]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{url}\"\ntoken_file = \"hec-token\"\n\
             index = \"workday\"\nformat = \"ocsf\"\nindexer_ack = true\nack_poll_interval = \"20ms\"\nbatch_size = 400\n"
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_with_indexer_ack_busy_answers_and_partial_batches() {
    let env = Env::frozen(101, 6_000, 0, |_| {}).await;
    let (h, url) = fake_hec().await;
    std::fs::write(env.path("hec-token"), TOKEN).expect("write");
    add_hec_sink(&env, &url);
    h.busy_next.store(2, Ordering::SeqCst);
    env.run_once().await.expect("run --once");
    assert_eq!(*h.problems.lock().expect("lock"), Vec::<String>::new());

    let all = env.delivered();
    let (poisoned, clean): (Vec<String>, Vec<String>) = all
        .into_iter()
        .partition(|e| e.contains(&format!("\"taskDisplayName\":\"{POISON}\"")));
    assert!(!poisoned.is_empty());
    let indexed: Vec<String> = h
        .indexed
        .lock()
        .expect("lock")
        .iter()
        .map(|e| e["raw_data"].as_str().expect("raw_data").to_string())
        .collect();
    // Everything but the refused events, each exactly once: a partial batch resent only its tail.
    assert_same_multiset(&indexed, &clean);
    let store =
        workday_collector::store::Store::open(&env.path("state/workday-collector.db")).expect("db");
    let dead = store.dead_letter_summary().expect("summary");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1 as usize, poisoned.len());
    assert!(
        dead[0].2.contains("invalid") || dead[0].2.contains("Invalid"),
        "{}",
        dead[0].2
    );
    // Every accepted request was acknowledged, and the collector waited for it.
    let acks = h.acks.lock().expect("lock");
    assert!(!acks.is_empty());
    assert!(
        acks.values().all(|polls| *polls >= 2),
        "a batch counted before Splunk acknowledged it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_hec_token_is_a_config_failure_and_nothing_is_lost() {
    let env = Env::live(102, 1_000, 0, |_| {}).await;
    let (h, url) = fake_hec().await;
    std::fs::write(env.path("hec-token"), "not-the-token").expect("write");
    add_hec_sink(&env, &url);
    let out = bin()
        .args(["run", "--once", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Splunk refused") && stderr.contains("token_file"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-token"), "the token was logged");
    assert!(h.indexed.lock().expect("lock").is_empty());

    std::fs::write(env.path("hec-token"), TOKEN).expect("write");
    env.run_binary_once();
    let indexed: Vec<String> = h
        .indexed
        .lock()
        .expect("lock")
        .iter()
        .map(|e| e["raw_data"].as_str().expect("raw_data").to_string())
        .collect();
    let clean: Vec<String> = env
        .delivered()
        .into_iter()
        .filter(|e| !e.contains(&format!("\"taskDisplayName\":\"{POISON}\"")))
        .collect();
    assert_same_multiset(&indexed, &clean);
}
