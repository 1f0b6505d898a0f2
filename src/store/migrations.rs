//! Append-only schema migrations. Never edit a shipped step: add the next one.
//! `PRAGMA user_version` records how many steps ran.

use anyhow::{bail, Result};
use rusqlite::Connection;

const STEPS: &[&str] = &[
    // 1: events, checkpoints, sink cursors, rotated refresh tokens.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id BLOB NOT NULL,
        tenant TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        collected_at_ms INTEGER NOT NULL,
        raw TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_id ON events (id);
    CREATE INDEX events_tenant_time ON events (tenant, time_ms);
    CREATE TABLE checkpoints (
        tenant TEXT PRIMARY KEY,
        start_ms INTEGER NOT NULL,
        collected_until_ms INTEGER,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE sink_cursors (
        sink TEXT PRIMARY KEY,
        delivered_seq INTEGER NOT NULL,
        file_len INTEGER,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE refresh_tokens (
        tenant TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        origin_fp TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );",
    // 2: tenant health (credential state, last poll result) and pending sign-ins.
    "CREATE TABLE tenant_health (
        tenant TEXT PRIMARY KEY,
        credential_state TEXT NOT NULL DEFAULT 'unknown',
        credential_message TEXT,
        last_refresh_ok_ms INTEGER,
        expires_in_raw TEXT,
        last_error TEXT,
        last_error_ms INTEGER,
        last_success_ms INTEGER,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE pending_authorizations (
        tenant TEXT PRIMARY KEY,
        csrf_state TEXT NOT NULL,
        pkce_verifier TEXT,
        created_at_ms INTEGER NOT NULL
    );",
    // 3: events a sink refused for good, kept (with their entry) for `dead-letters`.
    "CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sink TEXT NOT NULL,
        event_id BLOB NOT NULL,
        tenant TEXT NOT NULL,
        collected_at_ms INTEGER NOT NULL,
        raw TEXT NOT NULL,
        reason TEXT NOT NULL,
        replay INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX dead_letters_sink ON dead_letters (sink, replay);",
    // 4: the dedup index leads with the entry's requestTime, so a window's inserts touch a few
    // neighbouring index pages instead of one random page per event (the random 32-byte id
    // alone made every commit rewrite most of the index as it grew). The key must be the same
    // on every read of an entry: its requestTime, or 0 when it has none. Rows stored before
    // kept the collection time in time_ms when they had no requestTime, which is exactly when
    // time_ms equals collected_at_ms (a requestTime is always older than the read that found it).
    "ALTER TABLE events ADD COLUMN dedup_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE events SET dedup_ms = CASE WHEN time_ms = collected_at_ms THEN 0 ELSE time_ms END;
    DROP INDEX events_id;
    CREATE UNIQUE INDEX events_dedup ON events (dedup_ms, id);",
];

pub const LATEST: i64 = STEPS.len() as i64;

pub fn migrate(conn: &mut Connection, application_id: i64) -> Result<()> {
    migrate_to(conn, application_id, LATEST)
}

/// Runs the steps up to `target` (tests build older databases with it).
pub(crate) fn migrate_to(conn: &mut Connection, application_id: i64, target: i64) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        bail!(
            "schema version {current} is newer than this build understands ({LATEST}); \
             run the newer workday-collector or restore a backup"
        );
    }
    for (i, step) in STEPS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(current as usize)
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(step)?;
        tx.execute_batch(&format!(
            "PRAGMA user_version = {}; PRAGMA application_id = {application_id};",
            i + 1
        ))?;
        tx.commit()?;
    }
    Ok(())
}
