//! SIGKILL at random moments of a backfill, many times; the file must end up holding the
//! ground truth exactly once.

use crate::cli::bin;
use crate::support::*;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let env = Env::live(51, 100_000, 26_000, |c| c.dataset.late_per_mille = 0).await;
    // Small batches and windows: more commits, more moments to be killed between.
    env.write_config(&Knobs {
        extra: "max_window = \"4h\"".into(),
        ..Knobs::default()
    });
    let cfg = std::fs::read_to_string(&env.config_path).expect("read");
    std::fs::write(
        &env.config_path,
        // Rotation too: a crash around a rotation must not lose or double anything either.
        cfg.replace(
            "format = \"raw\"",
            "format = \"raw\"\nbatch_size = 700\nrotate_bytes = 4000000\nrotate_keep = 1000",
        ),
    )
    .expect("write");

    let mut killed = 0;
    let mut seed = 0x5151_u64;
    for round in 0..14 {
        seed = workday_collector::sim::dataset::mix(seed);
        let mut child = bin()
            .args(["run", "--once", "--config"])
            .arg(&env.config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Anywhere from start-up (opening the database, cutting a torn batch) to mid-delivery.
        let _ = round;
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

    let out = bin()
        .args(["run", "--once", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("final run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
}
