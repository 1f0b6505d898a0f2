//! The Elasticsearch sink against a strict `_bulk` fake written from the Bulk API reference:
//! NDJSON action/document pairs, `create` with `_id`, per-item statuses (201, 409, 429, 400).

use crate::support::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

const API_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
const POISON: &str = "Edit Tenant Setup - Security";

#[derive(Default)]
struct Es {
    docs: Mutex<HashMap<String, Value>>,
    throttle_next: AtomicU32,
    conflicts: AtomicU32,
    problems: Mutex<Vec<String>>,
}

async fn bulk(
    State(es): State<Arc<Es>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("ApiKey {API_KEY}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"type": "security_exception"}, "status": 401})),
        );
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-ndjson") {
        es.problems
            .lock()
            .expect("lock")
            .push("content-type".into());
    }
    let text = String::from_utf8_lossy(&body).to_string();
    if !text.ends_with('\n') {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400}),
            ),
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    let throttle = es
        .throttle_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let mut items = Vec::new();
    let mut errors = false;
    for (i, pair) in lines.chunks(2).enumerate() {
        let action: Value = serde_json::from_str(pair[0]).unwrap_or(Value::Null);
        let doc: Value = pair
            .get(1)
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let Some(id) = action["create"]["_id"].as_str().map(str::to_string) else {
            es.problems
                .lock()
                .expect("lock")
                .push(format!("action without create/_id: {}", pair[0]));
            continue;
        };
        if action["create"]["_index"] != "workday-activity" {
            es.problems.lock().expect("lock").push("wrong index".into());
        }
        let status = if throttle && i % 2 == 1 {
            429
        } else if doc["event"]["action"] == POISON {
            400
        } else {
            let mut docs = es.docs.lock().expect("lock");
            if docs.contains_key(&id) {
                es.conflicts.fetch_add(1, Ordering::SeqCst);
                409
            } else {
                docs.insert(id.clone(), doc);
                201
            }
        };
        errors |= status >= 300;
        let mut r = json!({"_index": "workday-activity", "_id": id, "status": status});
        match status {
            409 => {
                r["error"] = json!({"type": "version_conflict_engine_exception", "reason": "document already exists"})
            }
            429 => {
                r["error"] = json!({"type": "es_rejected_execution_exception", "reason": "rejected execution"})
            }
            400 => {
                r["error"] = json!({"type": "document_parsing_exception", "reason": "failed to parse field [event.action]"})
            }
            _ => {}
        }
        items.push(json!({ "create": r }));
    }
    (
        StatusCode::OK,
        Json(json!({"took": 3, "errors": errors, "items": items})),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_creates_with_ids_are_idempotent_and_item_errors_are_sorted() {
    let env = Env::frozen(111, 5_000, 0, |_| {}).await;
    let es = Arc::new(Es::default());
    let app = axum::Router::new()
        .route("/_bulk", axum::routing::post(bulk))
        .with_state(es.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    std::fs::write(env.path("es-key"), API_KEY).expect("write");
    env.append_config(&format!("[[sink]]\nname = \"es\"\ntype = \"elasticsearch\"\nurl = \"{url}\"\nindex = \"workday-activity\"\napi_key_file = \"es-key\"\nformat = \"ecs\"\nbatch_size = 300\n"));
    es.throttle_next.store(3, Ordering::SeqCst);
    env.run_once().await.expect("run --once");
    assert_eq!(*es.problems.lock().expect("lock"), Vec::<String>::new());
    // Throttled batches were resent whole; what was stored answered 409.
    assert!(es.conflicts.load(Ordering::SeqCst) > 0);
    let (poisoned, clean): (Vec<String>, Vec<String>) = env
        .delivered()
        .into_iter()
        .partition(|e| e.contains(&format!("\"taskDisplayName\":\"{POISON}\"")));
    let stored: Vec<String> = es
        .docs
        .lock()
        .expect("lock")
        .values()
        .map(|d| {
            d["event"]["original"]
                .as_str()
                .expect("original")
                .to_string()
        })
        .collect();
    assert_same_multiset(&stored, &clean);
    let db =
        workday_collector::store::Store::open(&env.path("state/workday-collector.db")).expect("db");
    let dead = db.dead_letter_summary().expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1 as usize, poisoned.len());
    assert!(
        dead[0].2.contains("document_parsing_exception"),
        "{}",
        dead[0].2
    );
}
