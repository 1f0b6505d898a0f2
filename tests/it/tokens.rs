//! Token lifecycle against the simulator's token endpoint.

use crate::support::*;
use workday_collector::sim::ExpiresIn;
use workday_collector::store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_in_minus_one_is_an_hour_not_zero() {
    let env = Env::frozen(21, 15_000, 0, |c| c.expires_in = ExpiresIn::Seconds(-1)).await;
    env.run_once().await.expect("run --once");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
    let c = env.sim.counts();
    assert!(c.pages > 10);
    // One refresh for the whole backfill: -1 was not taken as "already expired".
    assert_eq!(c.token_ok, 1, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_expires_in_works_too() {
    let env = Env::frozen(22, 3_000, 0, |c| c.expires_in = ExpiresIn::Missing).await;
    env.run_once().await.expect("run --once");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
    assert_eq!(env.sim.counts().token_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_refresh_token_survives_a_restart_and_a_new_configured_token_wins() {
    let env = Env::frozen(23, 5_000, 0, |c| {
        c.rotate_refresh_tokens = true;
        c.dataset.end_ms += 30 * MIN_MS;
    })
    .await;
    env.run_once().await.expect("first run");
    // Workday rotated the token: the configured one is dead now.
    let db = env.path("state/workday-collector.db");
    let (stored, _) = Store::open(&db)
        .expect("db")
        .refresh_token("acme")
        .expect("read")
        .expect("stored");
    assert_ne!(stored, env.sim.config().refresh_token);

    // A restart (a fresh daemon, same config) uses the stored token and collects what is new.
    env.clock.advance(std::time::Duration::from_secs(600));
    env.run_once().await.expect("run after restart");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
    assert_eq!(env.sim.counts().token_ok, 2);

    // The admin revokes everything and pastes a freshly generated token into the file:
    // the configured token is newer than the stored one, so it is used.
    env.sim.revoke_refresh_tokens();
    let fresh = env.sim.issue_refresh_token();
    std::fs::write(env.path("refresh-token"), format!("{fresh}\n")).expect("write");
    env.clock.advance(std::time::Duration::from_secs(600));
    env.run_once().await.expect("run with the new token");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_stops_the_tenant_with_one_message_and_no_retry_loop() {
    let env = Env::frozen(24, 2_000, 0, |_| {}).await;
    env.sim.revoke_refresh_tokens();
    let err = env.run_once().await.expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("invalid_grant"), "{msg}");
    assert!(msg.contains("acme"), "{msg}");
    assert!(msg.contains("refresh_token_file"), "{msg}");
    let c = env.sim.counts();
    assert_eq!(c.token_failed, 1, "retried a rejected refresh token: {c:?}");
    assert_eq!(c.pages, 0);
    assert!(env.delivered().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_client_secret_is_invalid_client() {
    let env = Env::frozen(25, 100, 0, |_| {}).await;
    // Rewrite the secret after the config is written.
    std::fs::write(env.path("client-secret"), "not-the-secret").expect("write");
    let err = env.run_once().await.expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("invalid_client") && msg.contains("client_id"),
        "{msg}"
    );
    assert_eq!(env.sim.counts().token_failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_in_the_form_body_work_too() {
    let env = Env::frozen(26, 2_000, 0, |_| {}).await;
    env.write_config(&Knobs {
        extra: "client_auth = \"body\"".into(),
        ..Knobs::default()
    });
    env.run_once().await.expect("run --once");
    assert_same_multiset(&env.delivered(), &env.truth(2 * MIN_MS));
}
