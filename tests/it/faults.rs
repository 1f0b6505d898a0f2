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
    // Retry-After: 1 was honoured for both 429s.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
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
