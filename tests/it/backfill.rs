//! Seven-day backfills compared with the simulator's ground truth.

use crate::support::*;
use workday_collector::workday::ENTRY_CAP;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_day_backfill_with_a_busy_hour_delivers_ground_truth_exactly_once() {
    let env = Env::frozen(11, 40_000, 26_000, |_| {}).await;
    let summary = env.run_once().await.expect("run --once");
    let got = env.delivered();
    let want = env.truth(2 * MIN_MS);
    assert!(want.len() > 60_000, "ground truth has {}", want.len());
    assert_same_multiset(&got, &want);
    // The busy hour was above the cap, so windows were split rather than truncated.
    assert!(summary.splits >= 1, "no window was split: {summary:?}");
    assert_eq!(summary.truncated_windows, 0);
    // The traps were present in what was delivered: twins, missing fields, unknown fields.
    assert!(twins(&got) > 10, "only {} twins", twins(&got));
    assert!(got.iter().any(|e| !e.contains("\"ipAddress\"")));
    assert!(got.iter().any(|e| !e.contains("\"target\"")));
    assert!(got.iter().any(|e| e.contains("\"tenantSandboxMarker\"")));
    // Re-reads absorbed by dedup, not delivered: adjacent windows overlap.
    assert!(summary.duplicates > 0);
    assert_eq!(summary.collected as usize, got.len());

    // Nothing new: a second cycle delivers nothing twice.
    let again = env.run_once().await.expect("second run");
    assert_eq!(again.collected, 0);
    assert_same_multiset(&env.delivered(), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusive_bounds_and_capped_totals_lose_nothing() {
    // The other reading of Workday's unknowns: `to` inclusive, `total` capped at 10,000.
    let env = Env::frozen(12, 8_000, 2 * ENTRY_CAP + 500, |c| {
        c.to_inclusive = true;
        c.total_capped = true;
    })
    .await;
    let summary = env.run_once().await.expect("run --once");
    assert!(summary.splits >= 1);
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_and_a_401_mid_run_are_handled_by_the_running_daemon() {
    // A third of events surface 1 to 12 minutes late; the log keeps growing past t0.
    let env = Env::frozen(13, 20_000, 0, |c| {
        c.dataset.late_per_mille = 300;
        c.dataset.end_ms += 40 * MIN_MS;
        c.dataset.events = 24_000;
    })
    .await;
    let (tx, daemon) = env.spawn_daemon();

    let first_truth = env.truth(2 * MIN_MS);
    let file = env.path("events.jsonl");
    wait_until(
        "the backfill to be delivered",
        std::time::Duration::from_secs(120),
        || complete_lines(&file) >= first_truth.len(),
    )
    .await;
    let first = env.delivered();
    assert_same_multiset(&first, &first_truth);

    // Twenty minutes pass; every access token expires; late events surface.
    env.sim.expire_access_tokens();
    env.clock.advance(std::time::Duration::from_secs(20 * 60));
    let second_truth = env.truth(2 * MIN_MS);
    assert!(second_truth.len() > first_truth.len());
    wait_until(
        "the next poll to be delivered",
        std::time::Duration::from_secs(60),
        || complete_lines(&file) >= second_truth.len(),
    )
    .await;
    let second = env.delivered();
    assert_same_multiset(&second, &second_truth);

    // Some of what the second poll found was older than the first poll's end: late events.
    let first_end = env.t0 - 2 * MIN_MS;
    let late = second[first.len()..]
        .iter()
        .filter(|e| request_time(e) < first_end)
        .count();
    assert!(late > 0, "no late event was caught");
    let counts = env.sim.counts();
    assert!(
        counts.by_status.get(&401).copied().unwrap_or(0) >= 1,
        "no 401 was served: {counts:?}"
    );
    assert!(counts.token_ok >= 2);

    tx.send(true).expect("shutdown");
    let summary = daemon.await.expect("join").expect("clean exit");
    assert_eq!(summary.collected as usize, second.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_events_are_pruned_past_the_dedup_horizon_and_never_come_back() {
    let env = Env::frozen(14, 5_000, 0, |_| {}).await;
    env.run_once().await.expect("run --once");
    let want = env.truth(2 * MIN_MS);
    assert_same_multiset(&env.delivered(), &want);
    let db = env.path("state/workday-collector.db");
    let stored = || {
        workday_collector::store::Store::open(&db)
            .expect("db")
            .count_events()
            .expect("count")
    };
    assert_eq!(stored() as usize, want.len());

    // Nine days on, everything collected is older than backfill + overlap: pruned.
    env.clock
        .advance(std::time::Duration::from_secs(9 * 86_400));
    env.run_once().await.expect("run after nine days");
    assert_eq!(stored(), 0, "delivered events past the horizon were kept");
    // And a further cycle re-reads its overlap without re-delivering anything.
    env.clock.advance(std::time::Duration::from_secs(600));
    let s = env.run_once().await.expect("run again");
    assert_eq!(s.collected, 0);
    assert_same_multiset(&env.delivered(), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_an_external_logrotate_loses_and_doubles_nothing() {
    let env = Env::frozen(15, 4_000, 0, |c| c.dataset.end_ms += 30 * MIN_MS).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (hup_tx, hup_rx) = tokio::sync::watch::channel(0u64);
    let mut opts = workday_collector::daemon::RunOptions::new(false, rx);
    opts.clock = env.clock.clone();
    opts.reopen = hup_rx;
    let daemon = tokio::spawn(workday_collector::daemon::run(env.config(), opts));
    let file = env.path("events.jsonl");
    let first = env.truth(2 * MIN_MS).len();
    wait_until("the backfill", std::time::Duration::from_secs(60), || {
        complete_lines(&file) >= first
    })
    .await;

    // logrotate moves the file away and signals; new events arrive.
    std::fs::rename(&file, env.path("events.jsonl.rotated")).expect("rename");
    hup_tx.send_modify(|n| *n += 1);
    env.clock.advance(std::time::Duration::from_secs(20 * 60));
    let want = env.truth(2 * MIN_MS);
    wait_until(
        "delivery into the new file",
        std::time::Duration::from_secs(60),
        || complete_lines(&file) + first >= want.len(),
    )
    .await;
    tx.send(true).expect("stop");
    daemon.await.expect("join").expect("clean exit");
    let mut got = read_events(&env.path("events.jsonl.rotated"));
    got.extend(env.delivered());
    assert!(complete_lines(&file) > 0);
    assert_same_multiset(&got, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_reads_around_a_split_window_neither_hang_nor_lose_anything() {
    // Small pages: every window has several, read in parallel, so reads still in flight can
    // hold every request slot at the moment the busy hour must be split.
    let env = Env::frozen(13, 60_000, 26_000, |_| {}).await;
    env.write_config(&Knobs {
        max_concurrent_requests: 2,
        page_size: 100,
        ..Knobs::default()
    });
    let summary = tokio::time::timeout(std::time::Duration::from_secs(120), env.run_once())
        .await
        .expect("the backfill hung")
        .expect("run --once");
    assert!(summary.splits >= 1);
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_keep_to_the_configured_rate() {
    let env = Env::frozen(14, 3_000, 0, |_| {}).await;
    env.write_config(&Knobs {
        max_requests_per_second: 5,
        extra: "max_window = \"12h\"".into(),
        ..Knobs::default()
    });
    let started = std::time::Instant::now();
    env.run_once().await.expect("run --once");
    let requests = env.sim.counts().by_status.get(&200).copied().unwrap_or(0);
    // 7 days in 12-hour windows: 14 page requests (plus the start-up probe, which is not
    // limited) at most 5 a second take at least 2.6 s.
    assert!(requests >= 15, "{requests} requests");
    let floor = std::time::Duration::from_millis((requests as u64 - 2) * 200);
    assert!(
        started.elapsed() >= floor,
        "{requests} requests in {:?}: faster than 5/s",
        started.elapsed()
    );
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}
