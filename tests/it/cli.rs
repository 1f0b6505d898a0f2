//! The built binary: exit codes, messages, and what reaches its logs.

use crate::support::*;
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_workday-collector"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_reports_every_problem_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        r#"
state_dir = "state"
stat_dir = "typo"

[[tenant]]
name = "acme corp"
rest_api_endpoint = "http://wd2-impl-services1.workday.com/ccx/api/v1/acme"
token_endpoint = "not a url"
client_id = "abc"
client_secret = "inline-secret-value"
refresh_token_file = "missing-file"
poll_interval = "5 minutes"
page_size = 5000
lag = "2m"

[[sink]]
name = "siem"
type = "kafka"
format = "cef"
"#,
    )
    .expect("write");
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    for key in [
        "stat_dir",
        "tenant[0].name",
        "rest_api_endpoint",
        "token_endpoint",
        "client_secret",
        "refresh_token_file",
        "poll_interval",
        "page_size",
        "sink[0] (siem).type",
        "sink[0] (siem).format",
    ] {
        assert!(msg.contains(key), "no problem reported for {key}:\n{msg}");
    }
    assert!(
        !msg.contains("inline-secret-value"),
        "a secret was echoed:\n{msg}"
    );
}

#[test]
fn example_config_is_valid() {
    let creds = tempfile::tempdir().expect("tempdir");
    for f in [
        "acme-client-secret",
        "acme-refresh-token",
        "acme-sandbox-client-secret",
        "acme-sandbox-refresh-token",
    ] {
        std::fs::write(creds.path().join(f), "x").expect("write");
    }
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let out = bin()
        .args(["check-config", "--config", example])
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn run_without_a_config_file_fails_clearly() {
    let out = bin()
        .args(["run", "--once", "--config", "/nonexistent/wc.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(
        msg.contains("/nonexistent/wc.toml") && msg.contains("cannot read"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_and_invalid_grant_exits_with_its_message() {
    let env = Env::live(41, 8_000, 0, |c| {
        c.rotate_refresh_tokens = true;
        c.expires_in = workday_collector::sim::ExpiresIn::Seconds(-1);
    })
    .await;
    env.sim
        .faults()
        .server_error_next
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let mut logs = String::new();
    // Debug logs in both formats, through a rotation and a 5xx.
    for format in ["text", "json"] {
        let out = bin()
            .args([
                "run",
                "--once",
                "--log-level",
                "debug",
                "--log-format",
                format,
                "--config",
            ])
            .arg(&env.config_path)
            .output()
            .expect("run");
        logs.push_str(&text(&out));
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_same_multiset(
        &env.delivered(),
        &env.sim.visible_entries(i64::MIN, i64::MAX),
    );

    // Revoked: exit non-zero, one message naming the tenant and the fix.
    env.sim.revoke_refresh_tokens();
    let out = bin()
        .args(["run", "--once", "--log-level", "debug", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("invalid_grant") && last.contains("acme"),
        "{stderr}"
    );
    logs.push_str(&stderr);

    let secrets = env.sim.secrets();
    assert!(secrets.len() >= 4, "{}", secrets.len());
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret appeared in the logs");
        // Not even a prefix of one.
        assert!(
            !logs.contains(&s[..s.len().min(16)]),
            "a secret's prefix appeared in the logs"
        );
    }
}
