//! Running under systemd: notify/watchdog messages, metrics, readiness, status, and tenants
//! isolated from each other.

use crate::cli::bin;
use crate::support::*;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;
use workday_collector::sim::{SimConfig, SimHandle};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_watchdog_metrics_readiness_and_status_of_a_running_daemon() {
    let env = Env::live(131, 4_000, 0, |_| {}).await;
    let port = free_port();
    env.write_config(&Knobs {
        metrics_listen: format!("127.0.0.1:{port}"),
        ..Knobs::default()
    });
    let sock_path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&env.config_path)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");

    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    while !(seen.iter().any(|m| m == "READY=1")
        && seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3)
    {
        let n = sock.recv(&mut buf).expect("a notify message within 20s");
        seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(
        seen.iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("tenant(s) healthy")),
        "{seen:?}"
    );

    let want = env.sim.visible_entries(i64::MIN, i64::MAX);
    let file = env.path("events.jsonl");
    wait_until("delivery", Duration::from_secs(60), || {
        complete_lines(&file) >= want.len()
    })
    .await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let mut ready = (0, String::new());
    for _ in 0..50 {
        ready = get(&format!("{base}/readyz")).await;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &text,
            "workday_collector_events_collected_total{tenant=\"acme\"}"
        ),
        Some(want.len() as u64),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "workday_collector_delivered_total{sink=\"siem-file\"}"
        ),
        Some(want.len() as u64)
    );
    assert_eq!(
        metric(&text, "workday_collector_queue_depth{sink=\"siem-file\"}"),
        Some(0)
    );
    assert_eq!(
        metric(&text, "workday_collector_credentials_ok{tenant=\"acme\"}"),
        Some(1)
    );
    assert!(metric(
        &text,
        "workday_collector_api_requests_total{tenant=\"acme\",status=\"200\"}"
    )
    .is_some_and(|n| n > 0));
    assert!(metric(
        &text,
        "workday_collector_token_refreshes_total{tenant=\"acme\",result=\"ok\"}"
    )
    .is_some_and(|n| n >= 1));
    assert!(metric(
        &text,
        "workday_collector_checkpoint_lag_seconds{tenant=\"acme\"}"
    )
    .is_some());

    // status, read while the daemon runs.
    let out = bin()
        .args(["status", "--json", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("status");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tenants"][0]["credential_state"], "ok");
    assert!(v["tenants"][0]["checkpoint"].is_string());
    assert!(v["tenants"][0]["last_success"].is_string());
    assert_eq!(v["sinks"][0]["queue_depth"], 0);

    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 within 20s");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    let status = child.wait().expect("wait");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_tenant_never_delays_a_healthy_one() {
    let env = Env::frozen(132, 3_000, 0, |c| c.dataset.end_ms += 30 * MIN_MS).await;
    // A second tenant on its own simulator, whose token was revoked and whose API is slow.
    let mut cfg2 = SimConfig::new(env.t0, 133, 2_000, 0);
    cfg2.tenant = "beta".into();
    let sim2 = SimHandle::start(
        cfg2,
        env.clock.clone(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sim2");
    sim2.revoke_refresh_tokens();
    sim2.faults()
        .delay_ms
        .store(2_000, std::sync::atomic::Ordering::SeqCst);
    std::fs::write(env.path("beta-secret"), &sim2.config().client_secret).expect("write");
    std::fs::write(env.path("beta-token"), &sim2.config().refresh_token).expect("write");
    let port = free_port();
    env.write_config(&Knobs {
        metrics_listen: format!("127.0.0.1:{port}"),
        ..Knobs::default()
    });
    env.append_config(&format!(
            "[[tenant]]\nname = \"beta\"\nrest_api_endpoint = \"{}\"\ntoken_endpoint = \"{}\"\nclient_id = \"{}\"\n\
             client_secret_file = \"beta-secret\"\nrefresh_token_file = \"beta-token\"\npoll_interval = \"1s\"\n",
            sim2.rest_api_endpoint(),
            sim2.token_endpoint(),
            sim2.config().client_id
        ));
    let (tx, daemon) = env.spawn_daemon();
    let file = env.path("events.jsonl");
    let first = env.truth(2 * MIN_MS);
    wait_until(
        "the healthy tenant's backfill",
        Duration::from_secs(60),
        || complete_lines(&file) >= first.len(),
    )
    .await;
    // Later polls keep their pace while beta is refused.
    env.clock.advance(Duration::from_secs(20 * 60));
    let started = std::time::Instant::now();
    let want = env.truth(2 * MIN_MS);
    wait_until(
        "the healthy tenant's next poll",
        Duration::from_secs(30),
        || complete_lines(&file) >= want.len(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the healthy tenant waited {:?}",
        started.elapsed()
    );
    assert_same_multiset(&env.delivered(), &want);
    let (status, body) = get(&format!("http://127.0.0.1:{port}/readyz")).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("tenant/beta") && body.contains("invalid_grant"),
        "{body}"
    );
    assert!(!body.contains("tenant/acme"), "{body}");
    tx.send(true).expect("stop");
    daemon.await.expect("join").expect("clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_inside_the_maintenance_window_are_quiet_and_retried_after_it() {
    // Friday 23:30 US Pacific (PST): inside the default window, which ends Saturday 04:00.
    let t0 = workday_collector::clock::parse_rfc3339_ms("2026-12-05T07:30:00Z").expect("time");
    let env = Env::frozen_at(t0, 134, 3_000, |_| {}).await;
    let port = free_port();
    env.write_config(&Knobs {
        metrics_listen: format!("127.0.0.1:{port}"),
        max_attempts: 2,
        extra: "credential_recheck = \"1s\"".into(),
        ..Knobs::default()
    });
    env.sim
        .faults()
        .server_error_next
        .store(1_000_000, std::sync::atomic::Ordering::SeqCst);
    let (tx, daemon) = env.spawn_daemon();
    wait_until("a failed poll", Duration::from_secs(30), || {
        env.sim.counts().by_status.get(&500).copied().unwrap_or(0) >= 4
    })
    .await;
    // Not alerted: still ready.
    let (status, body) = get(&format!("http://127.0.0.1:{port}/readyz")).await;
    assert_eq!(status, 200, "{body}");

    // Maintenance ends; Workday answers again; the backlog is collected.
    env.sim
        .faults()
        .server_error_next
        .store(0, std::sync::atomic::Ordering::SeqCst);
    env.clock.advance(Duration::from_secs(5 * 3600));
    let want = env.truth(2 * MIN_MS);
    let file = env.path("events.jsonl");
    wait_until(
        "collection after the window",
        Duration::from_secs(30),
        || complete_lines(&file) >= want.len(),
    )
    .await;
    assert_same_multiset(&env.delivered(), &want);
    tx.send(true).expect("stop");
    daemon.await.expect("join").expect("clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_drives_the_polls_and_late_events_are_measured() {
    // A third of events surface 1 to 12 minutes late.
    let env = Env::frozen(135, 2_000, 0, |c| {
        // Two dense hours, so the newest minutes hold plenty of late events.
        c.dataset.start_ms = c.dataset.end_ms - 120 * MIN_MS;
        c.dataset.end_ms += 30 * MIN_MS;
        c.dataset.late_per_mille = 300;
    })
    .await;
    let port = free_port();
    // An hour between interval polls: only the every-second schedule can bring the next one.
    env.write_config(&Knobs {
        poll_interval: "1h",
        metrics_listen: format!("127.0.0.1:{port}"),
        extra: "schedule = \"* * * * * *\"".into(),
        ..Knobs::default()
    });
    let (tx, daemon) = env.spawn_daemon();
    let file = env.path("events.jsonl");
    let first = env.truth(2 * MIN_MS).len();
    wait_until("the first poll", Duration::from_secs(60), || {
        complete_lines(&file) >= first
    })
    .await;
    env.clock.advance(Duration::from_secs(20 * 60));
    let want = env.truth(2 * MIN_MS);
    assert!(want.len() > first);
    wait_until("a scheduled poll", Duration::from_secs(20), || {
        complete_lines(&file) >= want.len()
    })
    .await;
    let got = env.delivered();
    assert_same_multiset(&got, &want);

    // Late: found by a later poll although older than what the first poll covered.
    let covered = env.t0 - 2 * MIN_MS;
    let late = got[first..]
        .iter()
        .filter(|e| request_time(e) < covered)
        .count() as u64;
    assert!(late > 0);
    let (_, text) = get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(
        metric(
            &text,
            "workday_collector_late_events_total{tenant=\"acme\"}"
        ),
        Some(late),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "workday_collector_late_event_delay_seconds_count{tenant=\"acme\"}"
        ),
        Some(late)
    );
    assert_eq!(
        metric(
            &text,
            "workday_collector_late_event_delay_seconds_bucket{tenant=\"acme\",le=\"+Inf\"}"
        ),
        Some(late)
    );
    tx.send(true).expect("stop");
    daemon.await.expect("join").expect("clean exit");
}

/// The file sink's entries of one tenant.
fn entries_of(path: &std::path::Path, tenant: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (v["tenant"] == tenant).then(|| v["event"].to_string())
        })
        .collect()
}

fn canonical(entries: Vec<String>) -> Vec<String> {
    entries
        .into_iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e)
                .expect("json")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_tenant_and_a_sink_and_a_bad_config_keeps_the_old_one() {
    let env = Env::frozen(136, 2_000, 0, |c| c.dataset.end_ms += 30 * MIN_MS).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (hup_tx, hup_rx) = tokio::sync::watch::channel(0u64);
    let mut opts = workday_collector::daemon::RunOptions::new(false, rx);
    opts.clock = env.clock.clone();
    opts.reopen = hup_rx;
    opts.config_path = Some(env.config_path.clone());
    let daemon = tokio::spawn(workday_collector::daemon::run(env.config(), opts));
    let file = env.path("events.jsonl");
    let acme = env.truth(2 * MIN_MS);
    wait_until("acme's backfill", Duration::from_secs(60), || {
        complete_lines(&file) >= acme.len()
    })
    .await;

    // Add a tenant on its own simulator, and a second sink.
    let mut cfg2 = SimConfig::new(env.t0, 137, 1_500, 0);
    cfg2.tenant = "beta".into();
    let beta_sim = SimHandle::start(
        cfg2,
        env.clock.clone(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sim");
    std::fs::write(env.path("beta-secret"), &beta_sim.config().client_secret).expect("write");
    std::fs::write(env.path("beta-token"), &beta_sim.config().refresh_token).expect("write");
    let good = format!(
        "{}\n[[tenant]]\nname = \"beta\"\nrest_api_endpoint = \"{}\"\ntoken_endpoint = \"{}\"\nclient_id = \"{}\"\n\
         client_secret_file = \"beta-secret\"\nrefresh_token_file = \"beta-token\"\npoll_interval = \"1s\"\nlag = \"2m\"\n\
         \n[[sink]]\nname = \"second\"\ntype = \"file\"\npath = \"second.jsonl\"\n",
        std::fs::read_to_string(&env.config_path).expect("read"),
        beta_sim.rest_api_endpoint(),
        beta_sim.token_endpoint(),
        beta_sim.config().client_id
    );
    std::fs::write(&env.config_path, &good).expect("write");
    hup_tx.send_modify(|n| *n += 1);
    let beta = beta_sim.visible_entries(env.t0 - 7 * DAY_MS, env.t0 - 2 * MIN_MS);
    let second = env.path("second.jsonl");
    wait_until("beta and the new sink", Duration::from_secs(60), || {
        complete_lines(&second) >= acme.len() + beta.len()
            && complete_lines(&file) >= acme.len() + beta.len()
    })
    .await;
    // The new sink got everything retained, each sink holds both tenants, nothing twice.
    for f in [&file, &second] {
        assert_same_multiset(&canonical(entries_of(f, "acme")), &canonical(acme.clone()));
        assert_same_multiset(&canonical(entries_of(f, "beta")), &canonical(beta.clone()));
    }

    // A broken config is refused; the running one keeps collecting.
    std::fs::write(
        &env.config_path,
        "state_dir = \"state\"\n[[tenant]]\nname = \"no endpoints\"\n",
    )
    .expect("write");
    hup_tx.send_modify(|n| *n += 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!daemon.is_finished(), "a bad config stopped the daemon");
    env.clock.advance(Duration::from_secs(20 * 60));
    let acme2 = env.truth(2 * MIN_MS);
    assert!(acme2.len() > acme.len());
    wait_until(
        "acme's next poll under the kept config",
        Duration::from_secs(30),
        || entries_of(&second, "acme").len() >= acme2.len(),
    )
    .await;
    assert_same_multiset(&canonical(entries_of(&second, "acme")), &canonical(acme2));
    tx.send(true).expect("stop");
    daemon.await.expect("join").expect("clean exit");
}
