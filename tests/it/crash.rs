//! SIGKILL at random moments of backfill, polling and delivery, many times, with a file sink and
//! an HTTP sink: the file must end up holding the ground truth exactly once, the HTTP receiver
//! every event at least once, with duplicates bounded by one batch per kill.

use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let env = Env::live(51, 100_000, 26_000, |c| c.dataset.late_per_mille = 0).await;
    // Small batches and windows: more commits, more moments to be killed between.
    env.write_config(&Knobs {
        extra: "max_window = \"4h\"".into(),
        ..Knobs::default()
    });
    // Rotation too: a crash around a rotation must not lose or double anything either.
    env.edit_config(
        "format = \"raw\"",
        "format = \"raw\"\nbatch_size = 700\nrotate_bytes = 4000000\nrotate_keep = 1000",
    );
    let (receiver, url) = crate::sinks::receiver().await;
    env.append_config(&format!(
        "[[sink]]\nname = \"siem-http\"\ntype = \"http\"\nurl = \"{url}\"\nformat = \"ocsf\"\n\
             batch_size = {HTTP_BATCH}\nheaders = {{ \"X-Source\" = \"workday\" }}\n"
    ));

    let mut killed = 0;
    let mut seed = 0x5151_u64;
    for round in 0..14 {
        seed = workday_collector::sim::dataset::mix(seed);
        // Every third round runs as the daemon (polling every second) rather than --once.
        let mode: &[&str] = if round % 3 == 2 {
            &["run"]
        } else {
            &["run", "--once"]
        };
        let mut child = env.spawn_binary(mode);
        // Anywhere from start-up (opening the database, cutting a torn batch) to mid-delivery.
        let wait_ms = 30 + seed % 420;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        child.wait().expect("wait");
    }
    assert!(
        killed >= 10,
        "only {killed} of 14 runs were killed mid-way; the test proves little"
    );

    env.run_binary_once();
    // Oldest rotated file first, then the current one.
    let mut got = Vec::new();
    let mut n = 1000;
    while n > 0 {
        let p = env.path(&format!("events.jsonl.{n}"));
        if p.exists() {
            got.extend(read_events(&p));
        }
        n -= 1;
    }
    let listing: Vec<String> = std::fs::read_dir(env.dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        env.path("events.jsonl.2").exists(),
        "the file never rotated: {listing:?}"
    );
    got.extend(env.delivered());
    // Event ids are unique across all files.
    let want = env.sim.visible_entries(i64::MIN, i64::MAX);
    assert!(want.len() > 120_000);
    assert_same_multiset(&got, &want);

    // The HTTP sink: everything at least once; a kill between the receiver's acknowledgement
    // and the cursor's commit re-sends at most the batch in flight.
    let http = crate::sinks::originals(&receiver.events.lock().expect("lock"));
    let mut counts: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for w in &want {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let mut seen: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for h in &http {
        *seen.entry(h.as_str()).or_default() += 1;
    }
    let missing: i64 = counts
        .iter()
        .map(|(k, n)| (n - seen.get(k).copied().unwrap_or(0)).max(0))
        .sum();
    let foreign = seen.keys().filter(|k| !counts.contains_key(*k)).count();
    let duplicates = http.len() as i64 - want.len() as i64;
    eprintln!(
        "http sink: {} received, {duplicates} duplicates after {killed} kills",
        http.len()
    );
    assert_eq!(missing, 0, "the HTTP sink lost events");
    assert_eq!(
        foreign, 0,
        "the HTTP sink got events that are not in the log"
    );
    assert!(
        duplicates <= killed as i64 * HTTP_BATCH,
        "{duplicates} duplicates after {killed} kills: more than one batch per kill"
    );
}

const HTTP_BATCH: i64 = 500;
