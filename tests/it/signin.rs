//! `authorize`: the loopback and paste sign-ins against the simulator's authorize endpoint,
//! state and PKCE checks, importing a token, and a running daemon picking up a new token.

use crate::cli::bin;
use crate::support::*;
use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;
use workday_collector::auth::authorize;
use workday_collector::store::StoreHandle;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The browser: open Workday's authorize URL and return where Workday redirects it.
async fn browser_allow(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = http.get(url).send().await.expect("authorize page");
    assert_eq!(resp.status().as_u16(), 302, "authorize did not redirect");
    resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string()
}

fn sign_in_config(env: &Env, redirect: &str, pkce: bool) {
    env.write_config(&Knobs {
        refresh_token_file: false,
        extra: format!("redirect_uri = \"{redirect}\"\npkce = {pkce}"),
        ..Knobs::default()
    });
}

fn first_url(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    for line in lines {
        let line = line.expect("line");
        if let Some(u) = line.trim().strip_prefix("http") {
            return format!("http{u}");
        }
    }
    panic!("authorize printed no URL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_sign_in_end_to_end_then_collection_uses_the_stored_token() {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let r = redirect.clone();
    let env = Env::live(61, 3_000, 0, move |c| c.redirect_uri = r).await;
    sign_in_config(&env, &redirect, true);

    // Without a token the daemon says exactly what to do.
    let out = bin()
        .args(["run", "--once", "--config"])
        .arg(&env.config_path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("authorize"));

    let mut child = bin()
        .args(["authorize", "--tenant", "acme", "--config"])
        .arg(&env.config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn authorize");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = first_url(&mut lines);
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("state="),
        "{url}"
    );
    // Give the listener a moment to be up: it prints "Waiting" once it is.
    for line in lines.by_ref() {
        if line.expect("line").starts_with("Waiting") {
            break;
        }
    }
    let location = browser_allow(&url).await;
    assert!(location.starts_with(&redirect), "{location}");
    let page = reqwest::get(&location)
        .await
        .expect("redirect")
        .text()
        .await
        .expect("body");
    assert!(page.contains("close this window"), "{page}");
    let rest: Vec<String> = lines.map(|l| l.expect("line")).collect();
    let status = child.wait().expect("wait");
    let stderr = std::io::read_to_string(child.stderr.take().expect("stderr")).expect("stderr");
    assert!(status.success(), "{rest:?} {stderr}");
    let out = rest.join("\n");
    assert!(
        out.contains("Test API:") && out.contains("activity entries"),
        "{out}"
    );
    for s in env.sim.secrets() {
        assert!(
            !out.contains(&s) && !stderr.contains(&s),
            "a secret was printed"
        );
    }

    env.run_binary_once();
    assert_same_multiset(
        &env.delivered(),
        &env.sim.visible_entries(i64::MIN, i64::MAX),
    );
}

const REMOTE_REDIRECT: &str = "https://collector.example.com/workday/callback";

/// Starts a paste-mode sign-in with nothing on stdin; returns the printed URL.
fn start_paste_sign_in(env: &Env) -> String {
    let out = bin()
        .args(["authorize", "--tenant", "acme", "--config"])
        .arg(&env.config_path)
        .stdin(Stdio::null())
        .output()
        .expect("authorize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("--code"), "{stdout}");
    first_url(&mut stdout.lines().map(|l| Ok(l.to_string())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paste_sign_in_finished_with_code_and_a_mismatched_state_is_refused() {
    let env = Env::live(62, 2_000, 0, |c| c.redirect_uri = REMOTE_REDIRECT.into()).await;
    sign_in_config(&env, REMOTE_REDIRECT, true);

    // A tampered state is refused, and nothing is stored.
    let url = start_paste_sign_in(&env);
    let location = browser_allow(&url).await;
    let tampered = location.replace("state=", "state=x");
    let out = bin()
        .args([
            "authorize",
            "--tenant",
            "acme",
            "--code",
            &tampered,
            "--config",
        ])
        .arg(&env.config_path)
        .output()
        .expect("authorize --code");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.sim.counts().token_ok,
        0,
        "a code was exchanged despite a bad state"
    );

    // A fresh sign-in, finished non-interactively with the full URL.
    let url = start_paste_sign_in(&env);
    let location = browser_allow(&url).await;
    let out = bin()
        .args([
            "authorize",
            "--tenant",
            "acme",
            "--code",
            &location,
            "--config",
        ])
        .arg(&env.config_path)
        .output()
        .expect("authorize --code");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Test API:"));
    env.run_binary_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_is_sent_and_the_verifier_is_checked() {
    let env = Env::live(63, 500, 0, |c| c.redirect_uri = REMOTE_REDIRECT.into()).await;
    sign_in_config(&env, REMOTE_REDIRECT, true);
    let config = env.config();
    let t = &config.tenants[0];
    let store = StoreHandle::open(&config.database_path()).expect("db");
    let http = reqwest::Client::new();

    // A wrong verifier: Workday refuses the code.
    let signin = authorize::begin(t, 0).expect("begin");
    let location = browser_allow(signin.url.as_str()).await;
    let (code, checked) =
        authorize::code_from_paste(&location, &signin.pending.csrf_state).expect("code");
    assert!(checked);
    let mut wrong = signin.pending.clone();
    wrong.pkce_verifier = Some("x".repeat(64));
    let err = authorize::complete(t, &store, &http, &wrong, &code)
        .await
        .expect_err("must refuse");
    assert!(format!("{err:#}").contains("invalid_grant"), "{err:#}");

    // The right verifier works.
    let signin = authorize::begin(t, 0).expect("begin");
    let location = browser_allow(signin.url.as_str()).await;
    let (code, _) =
        authorize::code_from_paste(&location, &signin.pending.csrf_state).expect("code");
    authorize::complete(t, &store, &http, &signin.pending, &code)
        .await
        .expect("sign-in");

    // With pkce = false the client sends no challenge; a client that requires PKCE says no.
    sign_in_config(&env, REMOTE_REDIRECT, false);
    let config = env.config();
    let signin = authorize::begin(&config.tenants[0], 0).expect("begin");
    assert!(!signin.url.as_str().contains("code_challenge"));
    let location = browser_allow(signin.url.as_str()).await;
    let err =
        authorize::code_from_paste(&location, &signin.pending.csrf_state).expect_err("refused");
    assert!(err.to_string().contains("invalid_request"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refresh_token_from_stdin_tests_and_stores_it() {
    let env = Env::live(64, 500, 0, |_| {}).await;
    env.write_config(&Knobs {
        refresh_token_file: false,
        ..Knobs::default()
    });
    let mut child = bin()
        .args([
            "authorize",
            "--tenant",
            "acme",
            "--import-refresh-token",
            "-",
            "--config",
        ])
        .arg(&env.config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", env.sim.config().refresh_token).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Test API:"));
    // A revoked token is refused with its remedy and nothing is stored.
    env.sim.revoke_refresh_tokens();
    let bad = env.path("old-token");
    std::fs::write(&bad, env.sim.config().refresh_token.as_bytes()).expect("write");
    let out = bin()
        .args(["authorize", "--tenant", "acme", "--import-refresh-token"])
        .arg(&bad)
        .arg("--config")
        .arg(&env.config_path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_recovers_when_a_revoked_token_is_replaced_without_restart() {
    let env = Env::frozen(65, 4_000, 0, |c| c.dataset.end_ms += 60 * MIN_MS).await;
    env.write_config(&Knobs {
        extra: "credential_recheck = \"1s\"".into(),
        ..Knobs::default()
    });
    let (tx, daemon) = env.spawn_daemon();
    let file = env.path("events.jsonl");
    let first = env.truth(2 * MIN_MS).len();
    wait_until("the backfill", Duration::from_secs(60), || {
        complete_lines(&file) >= first
    })
    .await;

    // The token is revoked (sandbox refresh, say) and the access token lapses.
    env.sim.revoke_refresh_tokens();
    env.sim.expire_access_tokens();
    env.clock.advance(Duration::from_secs(15 * 60));
    let db = env.path("state/workday-collector.db");
    let health = || {
        workday_collector::store::Store::open(&db)
            .ok()
            .and_then(|s| s.tenant_health("acme").ok().flatten())
    };
    wait_until(
        "the tenant to be marked as needing a person",
        Duration::from_secs(30),
        || health().is_some_and(|h| h.credential_state == "needs_person"),
    )
    .await;
    let refreshes = env.sim.counts().token_failed;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        env.sim.counts().token_failed,
        refreshes,
        "the rejected token was retried in a loop"
    );

    // An admin generates a new token and imports it; the daemon picks it up by itself.
    let config = env.config();
    let store = StoreHandle::open(&config.database_path()).expect("db");
    let fresh = workday_collector::secret::Secret::new(env.sim.issue_refresh_token());
    authorize::import(&config.tenants[0], &store, &reqwest::Client::new(), fresh)
        .await
        .expect("import");
    let want = env.truth(2 * MIN_MS);
    wait_until("collection to resume", Duration::from_secs(30), || {
        complete_lines(&file) >= want.len()
    })
    .await;
    assert_same_multiset(&env.delivered(), &want);
    assert_eq!(health().map(|h| h.credential_state), Some("ok".to_string()));
    tx.send(true).expect("stop");
    daemon.await.expect("join").expect("clean exit");
}
