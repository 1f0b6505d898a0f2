//! `doctor`: every failure the simulator can stage, mapped to its remedy.

use crate::cli::bin;
use crate::support::*;
use std::sync::atomic::Ordering;
use workday_collector::doctor::{self, Report, Status, *};

async fn doctor(env: &Env) -> Report {
    doctor::run(&env.config_path, None).await
}

fn failing<'a>(r: &'a Report, check: &str) -> &'a Check {
    r.checks
        .iter()
        .find(|c| c.check.starts_with(check) && c.status != Status::Ok)
        .unwrap_or_else(|| panic!("no failing {check} check in:\n{}", r.render_text()))
}

fn set_token_endpoint(env: &Env, url: &str) {
    let cfg = std::fs::read_to_string(&env.config_path).expect("read");
    let cfg = cfg
        .lines()
        .map(|l| {
            if l.starts_with("token_endpoint") {
                format!("token_endpoint = \"{url}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&env.config_path, cfg).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_passes_and_json_says_so() {
    let env = Env::live(71, 2_000, 0, |c| c.dataset.end_ms += 3_600_000).await;
    let r = doctor(&env).await;
    assert!(r.ok, "{}", r.render_text());
    for check in [
        "config",
        "state directory",
        "database",
        "token endpoint",
        "activity log",
        "clock",
        "refresh token",
        "sink siem-file",
    ] {
        assert!(
            r.checks
                .iter()
                .any(|c| c.check.starts_with(check) && c.status == Status::Ok),
            "no OK {check}:\n{}",
            r.render_text()
        );
    }
    let out = bin()
        .args(["doctor", "--json", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("doctor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ok"], true);
    assert!(v["checks"].as_array().is_some_and(|c| c.len() >= 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failures_each_get_their_remedy() {
    let env = Env::live(72, 100, 0, |_| {}).await;
    // invalid_client
    std::fs::write(env.path("client-secret"), "wrong").expect("write");
    assert_eq!(
        failing(&doctor(&env).await, "token endpoint")
            .remedy
            .as_deref(),
        Some(REMEDY_INVALID_CLIENT)
    );
    env.write_config(&Knobs::default());
    // invalid_grant
    env.sim.revoke_refresh_tokens();
    let r = doctor(&env).await;
    assert!(!r.ok);
    assert_eq!(
        failing(&r, "token endpoint").remedy.as_deref(),
        Some(REMEDY_INVALID_GRANT)
    );
    // a wrong path: 404
    set_token_endpoint(
        &env,
        &format!("{}/ccx/oauth2/acme/tokens", env.sim.base_url()),
    );
    assert_eq!(
        failing(&doctor(&env).await, "token endpoint")
            .remedy
            .as_deref(),
        Some(REMEDY_TOKEN_404)
    );
    // a wrong tenant name: 503 Invalid Tenant Name
    set_token_endpoint(
        &env,
        &format!("{}/ccx/oauth2/acmee/token", env.sim.base_url()),
    );
    assert_eq!(
        failing(&doctor(&env).await, "token endpoint")
            .remedy
            .as_deref(),
        Some(REMEDY_TENANT_NAME)
    );
    // no refresh token at all
    env.write_config(&Knobs {
        refresh_token_file: false,
        ..Knobs::default()
    });
    assert_eq!(
        failing(&doctor(&env).await, "token endpoint")
            .remedy
            .as_deref(),
        Some(REMEDY_NO_TOKEN)
    );
    // an endpoint nothing listens on
    set_token_endpoint(&env, "http://127.0.0.1:1/ccx/oauth2/acme/token");
    let r = doctor(&env).await;
    let c = failing(&r, "token_endpoint 127.0.0.1:1");
    assert!(c.detail.contains("TCP"), "{}", c.detail);
    let out = bin()
        .args(["doctor", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("doctor");
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_log_failures_each_get_their_remedy() {
    let env = Env::live(73, 2_000, 0, |c| c.dataset.end_ms += 3_600_000).await;
    let f = env.sim.faults();
    f.reject_access_tokens.store(true, Ordering::SeqCst);
    assert_eq!(
        failing(&doctor(&env).await, "activity log")
            .remedy
            .as_deref(),
        Some(REMEDY_API_401)
    );
    f.reject_access_tokens.store(false, Ordering::SeqCst);
    f.forbid_activity.store(true, Ordering::SeqCst);
    assert_eq!(
        failing(&doctor(&env).await, "activity log")
            .remedy
            .as_deref(),
        Some(REMEDY_API_403)
    );
    f.forbid_activity.store(false, Ordering::SeqCst);
    f.activity_not_found.store(true, Ordering::SeqCst);
    assert_eq!(
        failing(&doctor(&env).await, "activity log")
            .remedy
            .as_deref(),
        Some(REMEDY_API_404)
    );
    f.activity_not_found.store(false, Ordering::SeqCst);
    f.logging_disabled.store(true, Ordering::SeqCst);
    let r = doctor(&env).await;
    let c = failing(&r, "activity log");
    assert_eq!(
        (c.status, c.remedy.as_deref()),
        (Status::Warn, Some(REMEDY_EMPTY_LOG))
    );
    f.logging_disabled.store(false, Ordering::SeqCst);
    f.date_skew_secs.store(-600, Ordering::SeqCst);
    let r = doctor(&env).await;
    let c = failing(&r, "clock");
    assert_eq!(
        (c.status, c.remedy.as_deref()),
        (Status::Fail, Some(REMEDY_CLOCK))
    );
    assert!(
        c.detail.contains("+600s") || c.detail.contains("+599s") || c.detail.contains("+601s"),
        "{}",
        c.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_refresh_token_expiry_fails_with_its_remedy() {
    let env = Env::live(74, 100, 0, |_| {}).await;
    env.write_config(&Knobs {
        extra: "refresh_token_expires = \"2020-01-01\"".into(),
        ..Knobs::default()
    });
    let r = doctor(&env).await;
    let c = failing(&r, "refresh token");
    assert_eq!(
        (c.status, c.remedy.as_deref()),
        (Status::Fail, Some(REMEDY_INVALID_GRANT))
    );
    assert!(!r.ok);
}
