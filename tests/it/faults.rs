//! Workday misbehaving: 429 with Retry-After, 5xx HTML pages, truncated bodies.

use crate::support::*;
use std::sync::atomic::Ordering;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_server_errors_and_broken_bodies_are_retried_without_loss() {
    let env = Env::frozen(31, 12_000, 0, |_| {}).await;
    let f = env.sim.faults();
    f.rate_limit_next.store(2, Ordering::SeqCst);
    f.retry_after_secs.store(1, Ordering::SeqCst);
    f.server_error_next.store(3, Ordering::SeqCst);
    env.sim.faults().truncate_next.store(0, Ordering::SeqCst);
    let started = std::time::Instant::now();
    env.run_once().await.expect("run --once");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
    let c = env.sim.counts();
    assert_eq!(c.by_status.get(&429), Some(&2));
    assert_eq!(c.by_status.get(&500), Some(&3));
    // Retry-After: 1 was honoured (requests run in parallel, so the two waits may overlap; the
    // whole tenant holds off, not just the request that got the 429).
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_is_an_error_for_the_window_then_retried() {
    let env = Env::frozen(32, 6_000, 0, |_| {}).await;
    env.sim.faults().truncate_next.store(3, Ordering::SeqCst);
    env.run_once().await.expect("run --once");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_keeps_failing_leaves_the_checkpoint_and_a_later_run_catches_up() {
    let env = Env::frozen(33, 6_000, 0, |_| {}).await;
    env.write_config(&Knobs {
        max_attempts: 3,
        ..Knobs::default()
    });
    env.sim
        .faults()
        .server_error_next
        .store(1000, Ordering::SeqCst);
    let err = env.run_once().await.expect_err("must give up");
    let msg = format!("{err:#}");
    assert!(msg.contains("gave up after 3 attempts"), "{msg}");
    assert!(env.delivered().is_empty());
    let db =
        workday_collector::store::Store::open(&env.path("state/workday-collector.db")).expect("db");
    let cp = db.checkpoint("acme").expect("read").expect("row");
    assert_eq!(
        cp.collected_until_ms, None,
        "checkpoint moved past a failed window"
    );
    drop(db);

    env.sim
        .faults()
        .server_error_next
        .store(0, Ordering::SeqCst);
    env.run_once().await.expect("recovers");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_api_times_out_and_is_retried_not_waited_on_forever() {
    let env = Env::frozen(34, 3_000, 0, |_| {}).await;
    env.write_config(&Knobs {
        max_attempts: 2,
        extra: "request_timeout = \"1s\"".into(),
        ..Knobs::default()
    });
    env.sim.faults().delay_ms.store(5_000, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = env.run_once().await.expect_err("must time out");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "waited on a slow answer"
    );
    let msg = format!("{err:#}");
    assert!(msg.contains("gave up after 2 attempts"), "{msg}");

    env.sim.faults().delay_ms.store(0, Ordering::SeqCst);
    env.run_once().await.expect("recovers");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}

// ---- hostile answers: each an error for its window, retried, never a panic or a hang -------

use workday_collector::sim::Hostile;

/// Runs a cycle with `hostile` answers queued and checks the result is still the ground truth.
async fn survives(seed: u64, hostile: &[(Hostile, usize)], knobs: Knobs) -> Env {
    let env = Env::frozen(seed, 4_000, 0, |_| {}).await;
    env.write_config(&knobs);
    for (h, n) in hostile {
        env.sim.faults().push_hostile(h.clone(), *n);
    }
    let started = std::time::Instant::now();
    env.run_once().await.expect("the cycle recovers");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
    assert!(
        env.sim
            .faults()
            .hostile_next
            .lock()
            .expect("lock")
            .is_empty(),
        "not every hostile answer was asked for"
    );
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_non_object_entries_and_html_pages_are_refused_then_retried() {
    survives(
        35,
        &[
            (Hostile::WrongTypes, 2),
            (Hostile::NonObjectEntries, 2),
            (Hostile::HtmlPage, 2),
        ],
        Knobs::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigantic_body_is_cut_off_at_the_cap_not_read_into_memory() {
    // 80 MiB of a well-formed page: without the 64 MiB cap its padded entry would be delivered.
    survives(36, &[(Hostile::Gigantic(80 << 20), 1)], Knobs::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_a_byte_per_second_times_out() {
    // Without the request timeout the trickle ends, 21 s later, in an empty page that would
    // close the window with its events unread.
    let started = std::time::Instant::now();
    survives(
        37,
        &[(Hostile::Trickle, 1)],
        Knobs {
            extra: "request_timeout = \"2s\"".into(),
            ..Knobs::default()
        },
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_host_are_not_followed() {
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;
    // Another host that would happily take our token and answer with made-up events.
    let asked = Arc::new(AtomicU32::new(0));
    let counter = asked.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            axum::Json(serde_json::json!({
                "total": 1,
                "data": [{"requestTime": "2026-11-30T10:00:00Z", "taskDisplayName": "injected"}]
            }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let thief = format!("http://{}/steal", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    survives(38, &[(Hostile::RedirectTo(thief), 2)], Knobs::default()).await;
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the redirect was followed");
}
