//! A full disk under the state directory or under the file sink: a clear error, a database
//! that is still sound, and collection that resumes, exactly once, when space returns.
//!
//! Needs a small filesystem of its own: a tmpfs mounted by root. Without the privilege the
//! tests say SKIPPED loudly (CI runs as root).

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).expect("mkdir");
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs at {} (needs root); the disk-full test did not run",
                at.display()
            );
            return None;
        }
        Some(SmallDisk(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "cannot resize the tmpfs");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_is_a_clear_error_and_collection_resumes_when_space_returns() {
    let env = Env::frozen(71, 20_000, 0, |_| {}).await;
    env.write_config(&Knobs::default());
    let Some(disk) = SmallDisk::mount(&env.path("small"), "1m") else {
        return;
    };
    env.edit_config("state_dir = \"state\"", "state_dir = \"small/state\"");

    let err = env
        .run_once()
        .await
        .expect_err("1 MB cannot hold the backfill");
    let msg = format!("{err:#}");
    assert!(msg.contains("full"), "not a clear disk-full error: {msg}");

    // Space returns: the database is sound (the run verifies it) and nothing is lost or doubled.
    disk.resize("256m");
    env.run_once().await.expect("resumes");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
    workday_collector::store::Store::open_verified(&env.path("small/state/workday-collector.db"))
        .expect("the database is sound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sink_disk_is_retried_and_the_file_ends_up_exactly_once() {
    let env = Env::frozen(72, 20_000, 0, |_| {}).await;
    env.write_config(&Knobs {
        max_attempts: 3,
        ..Knobs::default()
    });
    let Some(disk) = SmallDisk::mount(&env.path("small"), "2m") else {
        return;
    };
    env.edit_config("path = \"events.jsonl\"", "path = \"small/events.jsonl\"");

    let err = env
        .run_once()
        .await
        .expect_err("2 MB cannot hold the events");
    let msg = format!("{err:#}");
    assert!(
        msg.to_lowercase().contains("no space"),
        "not a clear disk-full error: {msg}"
    );
    disk.resize("256m");
    env.run_once().await.expect("resumes");
    let got = read_events(&env.path("small/events.jsonl"));
    assert_same_multiset(&got, &env.truth(2 * MIN_MS));
}
