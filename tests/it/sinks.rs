//! Network sinks against a strict in-process receiver: framing, auth, signatures, retries,
//! dead letters, and one sink's outage never holding back another.

use crate::cli::bin;
use crate::support::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Receiver {
    pub(crate) events: Mutex<Vec<Value>>,
    requests: AtomicU32,
    down: AtomicBool,
    reject_next: AtomicU32,
    problems: Mutex<Vec<String>>,
    expect_auth: Mutex<String>,
    hmac_key: Mutex<Option<String>>,
}

async fn intake(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, String) {
    r.requests.fetch_add(1, Ordering::SeqCst);
    let mut out = HeaderMap::new();
    let problem = |p: String| r.problems.lock().expect("lock").push(p);
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if r.down.load(Ordering::SeqCst) {
        out.insert("retry-after", "1".parse().expect("hv"));
        return (StatusCode::SERVICE_UNAVAILABLE, out, "down".into());
    }
    if h("authorization") != *r.expect_auth.lock().expect("lock") {
        return (StatusCode::UNAUTHORIZED, out, "bad auth".into());
    }
    let body = if h("content-encoding") == "gzip" {
        let mut s = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut s)
            .is_err()
        {
            problem("body is not gzip".into());
        }
        s
    } else {
        body.to_vec()
    };
    if let Some(key) = r.hmac_key.lock().expect("lock").clone() {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
        mac.update(&body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        if h("x-signature-256") != want {
            problem("bad signature".into());
        }
    }
    if h("x-source") != "workday" {
        problem("missing static header".into());
    }
    let docs: Vec<Value> = match h("content-type").as_str() {
        "application/x-ndjson" => {
            let text = String::from_utf8(body).unwrap_or_default();
            if !text.ends_with('\n') {
                problem("NDJSON body does not end with a newline".into());
            }
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                .collect()
        }
        "application/json" => match serde_json::from_slice(&body) {
            Ok(Value::Array(a)) => a,
            _ => {
                problem("not a JSON array".into());
                Vec::new()
            }
        },
        other => {
            problem(format!("content-type {other}"));
            Vec::new()
        }
    };
    if docs.iter().any(Value::is_null) {
        problem("a line is not JSON".into());
    }
    if r.reject_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::BAD_REQUEST,
            out,
            "{\"error\":\"schema violation\"}".into(),
        );
    }
    r.events.lock().expect("lock").extend(docs);
    (StatusCode::OK, out, "{}".into())
}

pub(crate) async fn receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/intake", axum::routing::post(intake))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/intake", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (r, url)
}

pub(crate) fn originals(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|v| v["raw_data"].as_str().expect("raw_data").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_gzip_bearer_hmac_ndjson_delivers_everything() {
    let env = Env::frozen(91, 5_000, 0, |_| {}).await;
    let (r, url) = receiver().await;
    *r.expect_auth.lock().expect("lock") = "Bearer intake-token".into();
    *r.hmac_key.lock().expect("lock") = Some("hmac-key".into());
    std::fs::write(env.path("intake-token"), "intake-token\n").expect("write");
    std::fs::write(env.path("hmac-key"), "hmac-key").expect("write");
    env.append_config(
        &format!(
            "[[sink]]\nname = \"siem-http\"\ntype = \"http\"\nurl = \"{url}\"\nformat = \"ocsf\"\ngzip = true\n\
             token_file = \"intake-token\"\nhmac_secret_file = \"hmac-key\"\nheaders = {{ \"X-Source\" = \"workday\" }}\nbatch_size = 700\n"
        ),
    );
    env.append_config(
        "[[sink]]\nname = \"writes\"\ntype = \"file\"\npath = \"writes.jsonl\"\ninclude_activity_actions = [\"write\"]\nexclude_system_accounts = [\"ISU_*\"]\n",
    );
    env.run_once().await.expect("run --once");
    assert_eq!(*r.problems.lock().expect("lock"), Vec::<String>::new());
    let got = r.events.lock().expect("lock").clone();
    assert_same_multiset(&originals(&got), &env.delivered());
    // The filtered sink got exactly the WRITEs by people.
    let want_writes: Vec<String> = env
        .delivered()
        .into_iter()
        .filter(|e| {
            e.contains("\"activityAction\":\"WRITE\"") && !e.contains("\"systemAccount\":\"ISU_")
        })
        .collect();
    assert!(!want_writes.is_empty());
    assert_same_multiset(&read_events(&env.path("writes.jsonl")), &want_writes);
    assert!(
        r.requests.load(Ordering::SeqCst) >= 8,
        "batches were not limited to 700"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batches_become_dead_letters_and_replay_delivers_them() {
    let env = Env::live(92, 3_000, 0, |_| {}).await;
    let (r, url) = receiver().await;
    *r.expect_auth.lock().expect("lock") = format!("Basic {}", base64_basic("siem", "pw"));
    std::fs::write(env.path("pw"), "pw").expect("write");
    env.append_config(
        &format!(
            "[[sink]]\nname = \"siem-http\"\ntype = \"http\"\nurl = \"{url}\"\nformat = \"ocsf\"\nencoding = \"json_array\"\n\
             username = \"siem\"\npassword_file = \"pw\"\nheaders = {{ \"X-Source\" = \"workday\" }}\nbatch_size = 500\n"
        ),
    );
    r.reject_next.store(1, Ordering::SeqCst);
    env.run_binary_once();
    let want = env.delivered();
    let got = r.events.lock().expect("lock").len();
    let refused = want.len() - got;
    assert!(refused > 0, "no batch was refused");

    let out = bin()
        .args(["dead-letters", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("list");
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains(&format!("siem-http: {refused} event(s)"))
            && listing.contains("schema violation"),
        "{listing}"
    );
    let out = bin()
        .args([
            "dead-letters",
            "--replay",
            "--sink",
            "siem-http",
            "--config",
        ])
        .arg(&env.config_path)
        .output()
        .expect("replay");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("marked {refused}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = bin()
        .args(["run", "--once", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("run");
    assert!(out.status.success());
    let got = r.events.lock().expect("lock").clone();
    assert_same_multiset(&originals(&got), &want);
    let out = bin()
        .args(["dead-letters", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("list");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no dead letters"));
    assert_eq!(*r.problems.lock().expect("lock"), Vec::<String>::new());
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sink_down_never_holds_back_another_and_catches_up_after() {
    let env = Env::frozen(93, 6_000, 0, |_| {}).await;
    let (r, url) = receiver().await;
    r.down.store(true, Ordering::SeqCst);
    env.append_config(
        &format!("[[sink]]\nname = \"siem-http\"\ntype = \"http\"\nurl = \"{url}\"\nformat = \"ocsf\"\nheaders = {{ \"X-Source\" = \"workday\" }}\n"),
    );
    let (tx, daemon) = env.spawn_daemon();
    let want = env.truth(2 * MIN_MS);
    let file = env.path("events.jsonl");
    wait_until(
        "the file sink, while the HTTP sink is down",
        Duration::from_secs(60),
        || complete_lines(&file) >= want.len(),
    )
    .await;
    assert!(
        r.requests.load(Ordering::SeqCst) >= 1,
        "the down sink was never tried"
    );
    assert!(r.events.lock().expect("lock").is_empty());

    r.down.store(false, Ordering::SeqCst);
    wait_until("the HTTP sink to catch up", Duration::from_secs(60), || {
        r.events.lock().expect("lock").len() >= want.len()
    })
    .await;
    tx.send(true).expect("stop");
    daemon.await.expect("join").expect("clean exit");
    let got = r.events.lock().expect("lock").clone();
    assert_same_multiset(&originals(&got), &want);
    assert_same_multiset(&env.delivered(), &want);
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    workday_collector::bench::proc_memory(&pid.to_string(), "VmRSS").unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_sink_outage_keeps_memory_flat_and_the_backlog_drains_after() {
    // The outage lasts OUTAGE_SECS (default 120; longer runs: OUTAGE_SECS=600).
    let outage: u64 = std::env::var("OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let env = Env::live(94, 60_000, 0, |_| {}).await;
    env.write_config(&Knobs::default());
    let (r, url) = receiver().await;
    r.down.store(true, Ordering::SeqCst);
    env.append_config(
        &format!("[[sink]]\nname = \"siem-http\"\ntype = \"http\"\nurl = \"{url}\"\nformat = \"ocsf\"\nheaders = {{ \"X-Source\" = \"workday\" }}\n"),
    );
    let mut child = env.spawn_binary(&["run"]);
    let pid = child.id();
    let file = env.path("events.jsonl");
    wait_until(
        "the backfill into the file sink",
        Duration::from_secs(120),
        || complete_lines(&file) >= 60_000,
    )
    .await;
    // The whole backlog is queued for the HTTP sink, which keeps failing and being retried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = rss(pid);
    let mut peak = settled;
    let tries_before = r.requests.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(outage) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss(pid));
    }
    let tries = r.requests.load(Ordering::SeqCst) - tries_before;
    eprintln!(
        "outage {outage}s: RSS {} MB settled, {} MB peak; {tries} delivery attempts refused",
        settled / 1_000_000,
        peak / 1_000_000
    );
    assert!(tries >= 3, "the sink was not retried during the outage");
    assert!(
        peak <= settled + 16_000_000,
        "memory grew during the outage: {settled} → {peak} bytes"
    );

    r.down.store(false, Ordering::SeqCst);
    let want = env.truth(2 * MIN_MS);
    wait_until("the backlog to drain", Duration::from_secs(120), || {
        r.events.lock().expect("lock").len() >= want.len()
    })
    .await;
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();
    // Events that appeared after `truth` was taken may be there too; none may be missing.
    let got = originals(&r.events.lock().expect("lock"));
    let got: std::collections::HashSet<&String> = got.iter().collect();
    assert!(want.iter().all(|w| got.contains(w)), "events were lost");
}
