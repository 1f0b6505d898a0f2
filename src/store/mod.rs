//! The only code that runs SQL. One SQLite database (WAL) per daemon holds the deduplicated
//! events, each tenant's checkpoint, each sink's cursor and any rotated refresh token.
//!
//! Invariants kept here:
//! - events of one window and the checkpoint that covers them commit in one transaction;
//! - a sink's cursor (and a file sink's committed length) move in one transaction;
//! - an event is pruned only once every configured sink has it and it is older than the dedup
//!   horizon, so a re-read can never bring it back.
//!
//! Every write transaction is `BEGIN IMMEDIATE`: a deferred one that reads first and writes
//! later can fail at once with SQLITE_BUSY when another connection wrote in between (the busy
//! timeout does not cover that upgrade), which would stop a tenant for nothing.
//!
//! Rows are kept in insertion order (`seq`, an AUTOINCREMENT rowid, so it never goes backwards
//! even after pruning) with the 32-byte event id in a separate unique index: measured, that is
//! several times faster to insert into than a table clustered on the random id.
//!
//! It does not know Workday's JSON or any sink's protocol.

mod migrations;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = migrations::LATEST;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Written into the database header, so a foreign SQLite file is refused rather than altered.
const APPLICATION_ID: i64 = 0x5744_4331; // "WDC1"
/// SQLite page size for new databases.
pub const PAGE_SIZE: i64 = 16_384;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Turns for the busy writers of this database file in this process (see [`Turns`]).
    turns: Arc<Turns>,
}

/// One event ready to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: [u8; 32],
    /// Workday's `requestTime`, when the entry has one that parses. The stored `time_ms` falls
    /// back to the collection time; the dedup key falls back to 0 (it must be the same on every
    /// read of the entry).
    pub request_time_ms: Option<i64>,
    /// The entry exactly as Workday sent it.
    pub raw: String,
}

/// A stored event, as handed to sinks.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: [u8; 32],
    pub tenant: String,
    pub collected_at_ms: i64,
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Where the first backfill began; nothing before it is collected.
    pub start_ms: i64,
    /// Everything with a `requestTime` before this has been read at least once.
    pub collected_until_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCursor {
    pub delivered_seq: i64,
    pub file_len: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    /// For each new event older than the checkpoint before this window (an event Workday made
    /// visible after an earlier poll had covered its time): how late it was found, in ms.
    pub late_delays_ms: Vec<i64>,
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`.
    /// Refuses a file that is not a workday-collector database, without changing it.
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with(path, false)
    }

    /// `open`, and an integrity check of every page first.
    pub fn open_verified(path: &Path) -> Result<Store> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, verify: bool) -> Result<Store> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)
                .with_context(|| format!("cannot create state directory {}", dir.display()))?;
        }
        let fresh = !path.exists();
        if fresh {
            create_private_file(path)
                .with_context(|| format!("cannot create database {}", path.display()))?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", path.display()))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            turns: Turns::for_path(path),
        };
        store.prepare(verify).with_context(|| {
            format!(
                "database {} is unusable; it was left untouched (move it aside to start afresh, \
                 or restore it from a backup)",
                path.display()
            )
        })?;
        Ok(store)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        let mut store = Store {
            conn,
            path: PathBuf::from(":memory:"),
            turns: Arc::new(Turns::default()),
        };
        store.prepare(false)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn prepare(&mut self, verify: bool) -> Result<()> {
        // Waiting for another connection's write lock (the collector's window transaction, a
        // forwarder's cursor) polls every millisecond for up to 30 s. SQLite's own busy timeout
        // backs off to 100 ms sleeps, which left a forwarder asleep long after the collector's
        // commit: during a backfill it delivered at a fifth of its speed.
        self.conn.busy_handler(Some(wait_for_lock))?;
        // A header check before anything writes: a foreign file must not be touched.
        let app_id: i64 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .context("not a SQLite database")?;
        let objects: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .context("not a SQLite database")?;
        if app_id != APPLICATION_ID && (app_id != 0 || objects != 0) {
            bail!("not a workday-collector database (application_id {app_id:#x})");
        }
        // A damaged file is refused here, whole, rather than failing some later write halfway.
        // It reads every page once (about a second per GB from the page cache), so only the
        // daemon's start asks for it.
        if verify && objects != 0 {
            let verdict: String = self
                .conn
                .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
                .context("the integrity check could not run")?;
            if verdict != "ok" {
                bail!("the database is damaged (SQLite's integrity check: {verdict})");
            }
        }
        // WAL lets `status` read while the daemon writes; FULL makes each commit durable, which
        // matters for rotated refresh tokens (Workday may have invalidated the old one).
        // A new database gets 16 KiB pages: a window's inserts touch and log fewer pages
        // (measured: a 1000-event window stores in 20% less time than with 4 KiB). The size
        // of an existing database never changes.
        if objects == 0 {
            self.conn
                .execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
        }
        self.conn
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        self.conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )?;
        migrations::migrate(&mut self.conn, APPLICATION_ID)
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    // ---- events ---------------------------------------------------------------------------

    /// Stores a window's events and moves the tenant's checkpoint with the last of them.
    ///
    /// The events go in transactions of at most [`INSERT_CHUNK`], so a sink's forwarder waits
    /// for one chunk, not a whole window, before it can move its cursor (each takes its turn,
    /// see [`Turns`]). The checkpoint moves only in the last one: a crash part-way leaves some
    /// of the window stored and the checkpoint before it, and the next poll reads the window
    /// again (what is stored already counts as a duplicate).
    pub fn insert_window(
        &mut self,
        tenant: &str,
        events: &[NewEvent],
        collected_at_ms: i64,
        checkpoint_ms: Option<i64>,
    ) -> Result<InsertOutcome> {
        let mut outcome = InsertOutcome::default();
        let mut covered: Option<Option<i64>> = None;
        // An empty window is one (empty) chunk: it still moves the checkpoint.
        let mut chunks: Vec<&[NewEvent]> = events.chunks(INSERT_CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for (k, &chunk) in chunks.iter().enumerate() {
            let last = k + 1 == chunks.len();
            // Only the last chunk's commit waits for the disk (it carries the checkpoint, and
            // its fsync of the log covers the chunks before it, which were written to the log
            // first). A chunk lost to a power cut before then is read again, as the checkpoint
            // did not move; and a sink's cursor commit (synchronous) covers every chunk before
            // it in the log, so nothing delivered can vanish from the database.
            self.conn
                .pragma_update(None, "synchronous", if last { "FULL" } else { "NORMAL" })?;
            let turns = self.turns.clone();
            let _turn = turns.take();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            if covered.is_none() {
                covered = Some(
                    tx.query_row(
                        "SELECT collected_until_ms FROM checkpoints WHERE tenant = ?1",
                        params![tenant],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten(),
                );
            }
            let covered = covered.flatten();
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO events (id, tenant, time_ms, collected_at_ms, raw, dedup_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for e in chunk {
                    let time_ms = e.request_time_ms.unwrap_or(collected_at_ms);
                    let n = stmt.execute(params![
                        &e.id[..],
                        tenant,
                        time_ms,
                        collected_at_ms,
                        e.raw,
                        e.request_time_ms.unwrap_or(0),
                    ])?;
                    if n == 1 {
                        outcome.inserted += 1;
                        if covered.is_some_and(|c| time_ms < c) {
                            outcome.late_delays_ms.push(collected_at_ms - time_ms);
                        }
                    } else {
                        outcome.duplicates += 1;
                    }
                }
            }
            if let (true, Some(cp)) = (last, checkpoint_ms) {
                let n = tx.execute(
                    "UPDATE checkpoints SET collected_until_ms = max(coalesce(collected_until_ms, ?2), ?2),
                            updated_at_ms = ?3
                     WHERE tenant = ?1",
                    params![tenant, cp, collected_at_ms],
                )?;
                if n != 1 {
                    bail!("tenant {tenant} has no checkpoint row; init_checkpoint must run first");
                }
            }
            tx.commit()?;
        }
        Ok(outcome)
    }

    /// Up to `limit` events after `after_seq`, in insertion order.
    pub fn events_after(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, id, tenant, collected_at_ms, raw FROM events
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after_seq, limit as i64])?;
        let mut out = Vec::with_capacity(limit.min(4096));
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let id: [u8; 32] = r
                .get_ref(1)?
                .as_blob()?
                .try_into()
                .with_context(|| format!("event {seq} has a malformed id"))?;
            out.push(StoredEvent {
                seq,
                id,
                tenant: r.get(2)?,
                collected_at_ms: r.get(3)?,
                raw: r.get(4)?,
            });
        }
        Ok(out)
    }

    pub fn max_seq(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    pub fn count_events(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
    }

    /// Deletes a tenant's events that every sink has (`seq <= delivered_everywhere`) and whose
    /// time is before `before_ms`. Returns how many went.
    pub fn prune(
        &mut self,
        tenant: &str,
        before_ms: i64,
        delivered_everywhere: i64,
    ) -> Result<u64> {
        let n = self.conn.execute(
            "DELETE FROM events WHERE tenant = ?1 AND time_ms < ?2 AND seq <= ?3",
            params![tenant, before_ms, delivered_everywhere],
        )?;
        Ok(n as u64)
    }

    // ---- checkpoints ----------------------------------------------------------------------

    pub fn checkpoint(&self, tenant: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .conn
            .query_row(
                "SELECT start_ms, collected_until_ms FROM checkpoints WHERE tenant = ?1",
                params![tenant],
                |r| {
                    Ok(Checkpoint {
                        start_ms: r.get(0)?,
                        collected_until_ms: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records where a tenant's first backfill starts; a no-op when it already has a checkpoint.
    pub fn init_checkpoint(
        &mut self,
        tenant: &str,
        start_ms: i64,
        now_ms: i64,
    ) -> Result<Checkpoint> {
        self.conn.execute(
            "INSERT OR IGNORE INTO checkpoints (tenant, start_ms, collected_until_ms, updated_at_ms)
             VALUES (?1, ?2, NULL, ?3)",
            params![tenant, start_ms, now_ms],
        )?;
        self.checkpoint(tenant)?
            .context("checkpoint row vanished right after insert")
    }

    // ---- sink cursors ---------------------------------------------------------------------

    pub fn sink_cursor(&self, sink: &str) -> Result<SinkCursor> {
        Ok(self
            .conn
            .query_row(
                "SELECT delivered_seq, file_len FROM sink_cursors WHERE sink = ?1",
                params![sink],
                |r| {
                    let len: Option<i64> = r.get(1)?;
                    Ok(SinkCursor {
                        delivered_seq: r.get(0)?,
                        file_len: len.map(|l| l.max(0) as u64),
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Moves a sink's cursor after it acknowledged everything up to `seq`.
    pub fn advance_sink(&mut self, sink: &str, cursor: SinkCursor, now_ms: i64) -> Result<()> {
        let _turn = self.turns.take();
        upsert_cursor(&self.conn, sink, cursor, now_ms)
    }

    /// Moves a sink's cursor and, in the same transaction, keeps the events it refused for good.
    pub fn advance_sink_with_dead_letters(
        &mut self,
        sink: &str,
        cursor: SinkCursor,
        dead: &[(StoredEvent, String)],
        now_ms: i64,
    ) -> Result<()> {
        let turns = self.turns.clone();
        let _turn = turns.take();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO dead_letters (sink, event_id, tenant, collected_at_ms, raw, reason, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (ev, reason) in dead {
                stmt.execute(params![
                    sink,
                    &ev.id[..],
                    ev.tenant,
                    ev.collected_at_ms,
                    ev.raw,
                    reason,
                    now_ms
                ])?;
            }
        }
        upsert_cursor(&tx, sink, cursor, now_ms)?;
        tx.commit()?;
        Ok(())
    }

    /// A sink's backlog: events after its cursor, and the oldest one's collection time.
    pub fn sink_backlog(&self, sink: &str) -> Result<(i64, Option<i64>)> {
        let cursor = self.sink_cursor(sink)?.delivered_seq;
        Ok(self.conn.query_row(
            "SELECT count(*), min(collected_at_ms) FROM events WHERE seq > ?1",
            params![cursor],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Dead letters per sink: `(sink, count, latest reason)`.
    pub fn dead_letter_summary(&self) -> Result<Vec<(String, i64, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT sink, count(*), (SELECT reason FROM dead_letters d2 WHERE d2.sink = d.sink ORDER BY id DESC LIMIT 1)
             FROM dead_letters d GROUP BY sink ORDER BY sink",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Marks a sink's dead letters (or every sink's) to be sent again. Returns how many.
    pub fn mark_dead_letters_for_replay(&mut self, sink: Option<&str>) -> Result<u64> {
        let n = match sink {
            Some(s) => self.conn.execute(
                "UPDATE dead_letters SET replay = 1 WHERE sink = ?1",
                params![s],
            )?,
            None => self
                .conn
                .execute("UPDATE dead_letters SET replay = 1", [])?,
        };
        Ok(n as u64)
    }

    /// Up to `limit` dead letters marked for replay for `sink`: `(dead letter id, event)`.
    pub fn dead_letters_to_replay(
        &self,
        sink: &str,
        limit: usize,
    ) -> Result<Vec<(i64, StoredEvent)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, event_id, tenant, collected_at_ms, raw FROM dead_letters
             WHERE sink = ?1 AND replay = 1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![sink, limit as i64], |r| {
            let id: Vec<u8> = r.get(1)?;
            Ok((
                r.get::<_, i64>(0)?,
                id,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (dl, id, tenant, collected_at_ms, raw) = row?;
            let id: [u8; 32] = id
                .as_slice()
                .try_into()
                .context("dead letter with a malformed id")?;
            out.push((
                dl,
                StoredEvent {
                    seq: 0,
                    id,
                    tenant,
                    collected_at_ms,
                    raw,
                },
            ));
        }
        Ok(out)
    }

    /// After a replay: delivered ones go; refused ones stay, with the new reason, unmarked.
    pub fn finish_replay(&mut self, delivered: &[i64], refused: &[(i64, String)]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for id in delivered {
            tx.execute("DELETE FROM dead_letters WHERE id = ?1", params![id])?;
        }
        for (id, reason) in refused {
            tx.execute(
                "UPDATE dead_letters SET replay = 0, reason = ?2 WHERE id = ?1",
                params![id, reason],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    // ---- refresh tokens -------------------------------------------------------------------

    /// The stored (rotated) refresh token and the fingerprint of the configured token it
    /// descends from.
    pub fn refresh_token(&self, tenant: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT token, origin_fp FROM refresh_tokens WHERE tenant = ?1",
                params![tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// When the stored refresh token was last written.
    pub fn refresh_token_updated_at(&self, tenant: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT updated_at_ms FROM refresh_tokens WHERE tenant = ?1",
                params![tenant],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Durably stores a rotated refresh token (committed with synchronous = FULL).
    pub fn save_refresh_token(
        &mut self,
        tenant: &str,
        token: &str,
        origin_fp: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO refresh_tokens (tenant, token, origin_fp, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO UPDATE SET token = excluded.token,
                 origin_fp = excluded.origin_fp, updated_at_ms = excluded.updated_at_ms",
            params![tenant, token, origin_fp, now_ms],
        )?;
        Ok(())
    }
}

/// What the database knows about a tenant's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantHealth {
    /// `ok`, `needs_person` or `unknown`.
    pub credential_state: String,
    pub credential_message: Option<String>,
    pub last_refresh_ok_ms: Option<i64>,
    pub expires_in_raw: Option<String>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
}

/// A sign-in started by `authorize`, awaiting its code.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    pub csrf_state: String,
    pub pkce_verifier: Option<String>,
    pub created_at_ms: i64,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens an existing database read-only and returns its schema version, without creating
    /// or migrating anything (for `doctor`). `Ok(None)` when the file does not exist yet.
    pub fn inspect(path: &Path) -> Result<Option<i64>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open database {}", path.display()))?;
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .with_context(|| format!("{} is not a SQLite database", path.display()))?;
        if app_id != APPLICATION_ID {
            bail!("{} is not a workday-collector database", path.display());
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
            .with_context(|| format!("cannot read events from {}", path.display()))?;
        Ok(Some(version))
    }

    fn touch_health(&mut self, tenant: &str, now_ms: i64) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO tenant_health (tenant, updated_at_ms) VALUES (?1, ?2)",
            params![tenant, now_ms],
        )?;
        Ok(())
    }

    /// A refresh grant succeeded.
    pub fn credential_ok(
        &mut self,
        tenant: &str,
        expires_in_raw: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        self.touch_health(tenant, now_ms)?;
        self.conn.execute(
            "UPDATE tenant_health SET credential_state = 'ok', credential_message = NULL,
                 last_refresh_ok_ms = ?2, expires_in_raw = ?3, updated_at_ms = ?2 WHERE tenant = ?1",
            params![tenant, now_ms, expires_in_raw],
        )?;
        Ok(())
    }

    /// The credentials need a person; `message` says what to do.
    pub fn credential_failed(&mut self, tenant: &str, message: &str, now_ms: i64) -> Result<()> {
        self.touch_health(tenant, now_ms)?;
        self.conn.execute(
            "UPDATE tenant_health SET credential_state = 'needs_person', credential_message = ?2,
                 updated_at_ms = ?3 WHERE tenant = ?1",
            params![tenant, message, now_ms],
        )?;
        Ok(())
    }

    /// Records how a poll ended: `Ok(())` or its error message.
    pub fn poll_result(
        &mut self,
        tenant: &str,
        result: Result<(), &str>,
        now_ms: i64,
    ) -> Result<()> {
        self.touch_health(tenant, now_ms)?;
        match result {
            Ok(()) => self.conn.execute(
                "UPDATE tenant_health SET last_success_ms = ?2, updated_at_ms = ?2 WHERE tenant = ?1",
                params![tenant, now_ms],
            )?,
            Err(msg) => self.conn.execute(
                "UPDATE tenant_health SET last_error = ?2, last_error_ms = ?3, updated_at_ms = ?3
                 WHERE tenant = ?1",
                params![tenant, msg, now_ms],
            )?,
        };
        Ok(())
    }

    pub fn tenant_health(&self, tenant: &str) -> Result<Option<TenantHealth>> {
        Ok(self
            .conn
            .query_row(
                "SELECT credential_state, credential_message, last_refresh_ok_ms, expires_in_raw,
                        last_error, last_error_ms, last_success_ms
                 FROM tenant_health WHERE tenant = ?1",
                params![tenant],
                |r| {
                    Ok(TenantHealth {
                        credential_state: r.get(0)?,
                        credential_message: r.get(1)?,
                        last_refresh_ok_ms: r.get(2)?,
                        expires_in_raw: r.get(3)?,
                        last_error: r.get(4)?,
                        last_error_ms: r.get(5)?,
                        last_success_ms: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn save_pending_authorization(
        &mut self,
        tenant: &str,
        p: &PendingAuthorization,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO pending_authorizations (tenant, csrf_state, pkce_verifier, created_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO UPDATE SET csrf_state = excluded.csrf_state,
                 pkce_verifier = excluded.pkce_verifier, created_at_ms = excluded.created_at_ms",
            params![tenant, p.csrf_state, p.pkce_verifier, p.created_at_ms],
        )?;
        Ok(())
    }

    /// The pending sign-in for a tenant, removed as it is read (a code is good once).
    pub fn take_pending_authorization(
        &mut self,
        tenant: &str,
    ) -> Result<Option<PendingAuthorization>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let p = tx
            .query_row(
                "SELECT csrf_state, pkce_verifier, created_at_ms FROM pending_authorizations WHERE tenant = ?1",
                params![tenant],
                |r| {
                    Ok(PendingAuthorization {
                        csrf_state: r.get(0)?,
                        pkce_verifier: r.get(1)?,
                        created_at_ms: r.get(2)?,
                    })
                },
            )
            .optional()?;
        tx.execute(
            "DELETE FROM pending_authorizations WHERE tenant = ?1",
            params![tenant],
        )?;
        tx.commit()?;
        Ok(p)
    }
}

/// Writes a sink's cursor (and committed file length); a transaction derefs to a connection.
/// Events per insert transaction (see [`Store::insert_window`]).
pub const INSERT_CHUNK: usize = 1000;

/// First come, first served turns at writing one database file, for the writers that write
/// often (window inserts, sink cursors) in this process. SQLite's write lock is not fair: a
/// collector committing chunk after chunk would take it again at once, and a forwarder polling
/// for it could wait for the whole backfill. Other writers (and other processes) rely on the
/// busy handler alone.
#[derive(Default)]
pub struct Turns {
    /// (next ticket to hand out, ticket being served)
    tickets: Mutex<(u64, u64)>,
    turn: std::sync::Condvar,
}

/// A writer's turn; the next one's begins when it is dropped.
pub struct Turn<'a>(&'a Turns);

impl Turns {
    /// The turns of the database at `path` (one set per file in this process).
    fn for_path(path: &Path) -> Arc<Turns> {
        static ALL: Mutex<Vec<(PathBuf, std::sync::Weak<Turns>)>> = Mutex::new(Vec::new());
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, t)| t.strong_count() > 0);
        if let Some(t) = all
            .iter()
            .find(|(p, _)| *p == key)
            .and_then(|(_, t)| t.upgrade())
        {
            return t;
        }
        let t = Arc::new(Turns::default());
        all.push((key, Arc::downgrade(&t)));
        t
    }

    /// Waits for this caller's turn.
    pub fn take(&self) -> Turn<'_> {
        let mut t = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let mine = t.0;
        t.0 += 1;
        while t.1 != mine {
            t = self.turn.wait(t).unwrap_or_else(|e| e.into_inner());
        }
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut t = self.0.tickets.lock().unwrap_or_else(|e| e.into_inner());
        t.1 += 1;
        self.0.turn.notify_all();
    }
}

/// SQLite's busy handler: `tries` earlier calls for this lock; false gives up (SQLITE_BUSY).
fn wait_for_lock(tries: i32) -> bool {
    if tries >= BUSY_TRIES {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_millis(1));
    true
}

/// About 30 s of one-millisecond waits (each sleep lasts a little longer than asked).
const BUSY_TRIES: i32 = 30_000;

fn upsert_cursor(conn: &Connection, sink: &str, cursor: SinkCursor, now_ms: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO sink_cursors (sink, delivered_seq, file_len, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (sink) DO UPDATE SET delivered_seq = excluded.delivered_seq,
             file_len = excluded.file_len, updated_at_ms = excluded.updated_at_ms",
        params![
            sink,
            cursor.delivered_seq,
            cursor.file_len.map(|l| l as i64),
            now_ms
        ],
    )?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// The database holds refresh tokens: mode 0600 from its first byte. SQLite gives its -wal and
/// -shm files the same mode.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map(|_| ())
}

/// A store shared by one async task; SQLite work runs on the blocking pool.
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Mutex<Store>>,
}

impl StoreHandle {
    pub fn new(store: Store) -> Self {
        StoreHandle {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self::new(Store::open(path)?))
    }

    /// Runs `f` on the blocking pool. If the calling future is dropped, `f` still runs to
    /// completion, so a transaction is never torn by cancellation.
    pub async fn call<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner
                .lock()
                .map_err(|_| anyhow::anyhow!("database handle poisoned by an earlier panic"))?;
            f(&mut guard)
        })
        .await
        .context("database task failed")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u8, time_ms: i64) -> NewEvent {
        NewEvent {
            id: [n; 32],
            request_time_ms: Some(time_ms),
            raw: format!("{{\"n\":{n}}}"),
        }
    }

    #[test]
    fn a_window_larger_than_a_chunk_is_stored_whole_and_moves_the_checkpoint_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(&dir.path().join("db")).expect("open");
        s.init_checkpoint("acme", 0, 1).expect("init");
        let n = INSERT_CHUNK * 2 + 17;
        let events: Vec<NewEvent> = (0..n as u32)
            .map(|i| NewEvent {
                id: *sha_id(i),
                request_time_ms: Some(1000 + i as i64),
                raw: format!("{{\"n\":{i}}}"),
            })
            .collect();
        let out = s
            .insert_window("acme", &events, 50_000, Some(40_000))
            .expect("insert");
        assert_eq!((out.inserted, out.duplicates), (n as u64, 0));
        assert_eq!(s.count_events().expect("count"), n as i64);
        let cp = s.checkpoint("acme").expect("cp").expect("row");
        assert_eq!(cp.collected_until_ms, Some(40_000));
        // Read again (with one new event): the rest are duplicates, in every chunk.
        let mut again = events.clone();
        again.push(NewEvent {
            id: *sha_id(n as u32),
            request_time_ms: Some(39_000),
            raw: "{}".into(),
        });
        let out = s
            .insert_window("acme", &again, 60_000, Some(50_000))
            .expect("again");
        assert_eq!((out.inserted, out.duplicates), (1, n as u64));
        assert_eq!(out.late_delays_ms, vec![21_000]);
        // An empty window still moves the checkpoint.
        s.insert_window("acme", &[], 70_000, Some(60_000))
            .expect("empty");
        let cp = s.checkpoint("acme").expect("cp").expect("row");
        assert_eq!(cp.collected_until_ms, Some(60_000));
    }

    #[test]
    fn writers_of_one_file_share_first_come_first_served_turns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let a = Store::open(&path).expect("a");
        let b = Store::open(&path).expect("b");
        let other = Store::open(&dir.path().join("other")).expect("other");
        assert!(Arc::ptr_eq(&a.turns, &b.turns));
        assert!(!Arc::ptr_eq(&a.turns, &other.turns));
        // Three writers queue behind a held turn and are served in the order they came.
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = a.turns.take();
        let mut threads = Vec::new();
        for i in 0..3 {
            let (turns, order) = (b.turns.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _t = turns.take();
                order.lock().expect("order").push(i);
            }));
            // Each has taken its ticket before the next starts.
            while a.turns.tickets.lock().expect("tickets").0 < i + 2 {
                std::thread::yield_now();
            }
        }
        drop(held);
        for t in threads {
            t.join().expect("join");
        }
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2]);
    }

    #[test]
    fn insert_dedups_and_moves_checkpoint_atomically() {
        let mut s = Store::open_in_memory().expect("open");
        s.init_checkpoint("acme", 1000, 5000).expect("init");
        let out = s
            .insert_window("acme", &[ev(1, 1), ev(2, 2), ev(1, 1)], 10, Some(2000))
            .expect("insert");
        assert_eq!(
            out,
            InsertOutcome {
                inserted: 2,
                duplicates: 1,
                late_delays_ms: vec![],
            }
        );
        let cp = s.checkpoint("acme").expect("cp").expect("row");
        assert_eq!(cp.collected_until_ms, Some(2000));
        // A new event older than the checkpoint is late: found 9000 ms after its time.
        let out = s
            .insert_window("acme", &[ev(4, 1000), ev(5, 2500)], 10_000, Some(3000))
            .expect("insert");
        assert_eq!(out.late_delays_ms, vec![9000]);
        // The checkpoint never goes backwards.
        s.insert_window("acme", &[], 10, Some(1500))
            .expect("insert");
        assert_eq!(
            s.checkpoint("acme")
                .expect("cp")
                .expect("row")
                .collected_until_ms,
            Some(3000)
        );
        // Without a checkpoint row, the whole transaction is refused: no events either.
        assert!(s.insert_window("other", &[ev(3, 3)], 10, Some(1)).is_err());
        assert_eq!(s.count_events().expect("count"), 4);
    }

    #[test]
    fn seq_never_goes_backwards_after_pruning() {
        let mut s = Store::open_in_memory().expect("open");
        s.init_checkpoint("acme", 0, 0).expect("init");
        s.insert_window("acme", &[ev(1, 1), ev(2, 2)], 10, None)
            .expect("insert");
        assert_eq!(s.prune("acme", 100, 2).expect("prune"), 2);
        s.insert_window("acme", &[ev(3, 3)], 10, None)
            .expect("insert");
        let evs = s.events_after(2, 10).expect("after");
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].seq, 3);
    }

    #[test]
    fn prune_keeps_undelivered_and_recent() {
        let mut s = Store::open_in_memory().expect("open");
        s.init_checkpoint("acme", 0, 0).expect("init");
        s.insert_window("acme", &[ev(1, 1), ev(2, 2), ev(3, 500)], 10, None)
            .expect("insert");
        // Only seq 1 is delivered everywhere; seq 3 is recent.
        assert_eq!(s.prune("acme", 100, 1).expect("prune"), 1);
        assert_eq!(s.count_events().expect("count"), 2);
    }

    #[test]
    fn cursors_and_tokens_round_trip() {
        let mut s = Store::open_in_memory().expect("open");
        assert_eq!(s.sink_cursor("f").expect("cursor"), SinkCursor::default());
        let c = SinkCursor {
            delivered_seq: 7,
            file_len: Some(99),
        };
        s.advance_sink("f", c, 1).expect("advance");
        assert_eq!(s.sink_cursor("f").expect("cursor"), c);
        s.save_refresh_token("acme", "tok", "fp", 1).expect("save");
        assert_eq!(
            s.refresh_token("acme").expect("get"),
            Some(("tok".to_string(), "fp".to_string()))
        );
    }

    #[test]
    fn health_and_pending_sign_ins() {
        let mut s = Store::open_in_memory().expect("open");
        assert_eq!(s.tenant_health("acme").expect("read"), None);
        s.credential_failed("acme", "run authorize", 5)
            .expect("write");
        s.poll_result("acme", Err("403"), 6).expect("write");
        let h = s.tenant_health("acme").expect("read").expect("row");
        assert_eq!(h.credential_state, "needs_person");
        assert_eq!(h.last_error.as_deref(), Some("403"));
        s.credential_ok("acme", Some("-1"), 7).expect("write");
        s.poll_result("acme", Ok(()), 8).expect("write");
        let h = s.tenant_health("acme").expect("read").expect("row");
        assert_eq!(
            (
                h.credential_state.as_str(),
                h.last_refresh_ok_ms,
                h.last_success_ms
            ),
            ("ok", Some(7), Some(8))
        );
        assert_eq!(h.expires_in_raw.as_deref(), Some("-1"));

        let p = PendingAuthorization {
            csrf_state: "st".into(),
            pkce_verifier: Some("v".into()),
            created_at_ms: 1,
        };
        s.save_pending_authorization("acme", &p).expect("save");
        assert_eq!(s.take_pending_authorization("acme").expect("take"), Some(p));
        assert_eq!(s.take_pending_authorization("acme").expect("take"), None);
    }

    #[test]
    fn refuses_foreign_database_and_leaves_it_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("foreign.db");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
                .expect("create");
        }
        let before = std::fs::read(&path).expect("read");
        let err = Store::open(&path).err().expect("must refuse");
        let msg = format!("{err:#}");
        assert!(msg.contains("foreign.db"), "{msg}");
        assert!(msg.contains("not a workday-collector database"), "{msg}");
        assert_eq!(std::fs::read(&path).expect("read"), before);

        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not sqlite at all, not even close.......").expect("write");
        let msg = format!("{:#}", Store::open(&junk).err().expect("must refuse"));
        assert!(msg.contains("junk.db"), "{msg}");
    }

    #[test]
    fn a_damaged_database_is_refused_by_name_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let mut s = Store::open(&path).expect("open");
            s.init_checkpoint("acme", 0, 1).expect("init");
            let events: Vec<NewEvent> = (0..2000u32)
                .map(|i| NewEvent {
                    id: *sha_id(i),
                    request_time_ms: Some(i64::from(i)),
                    raw: format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(300)),
                })
                .collect();
            s.insert_window("acme", &events, 10_000, Some(5000))
                .expect("insert");
            s.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .expect("checkpoint");
        }
        // Scribble over the middle of the file, as a failing disk or a stray `dd` would.
        let mut bytes = std::fs::read(&path).expect("read");
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid - 8192..mid + 8192] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).expect("write");
        let msg = format!(
            "{:#}",
            Store::open_verified(&path).err().expect("must refuse")
        );
        assert!(msg.contains("state.db"), "{msg}");
        assert!(msg.contains("left untouched"), "{msg}");
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }

    fn short_id(n: u8) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[0] = n;
        id
    }

    fn sha_id(i: u32) -> Box<[u8; 32]> {
        use sha2::Digest;
        Box::new(sha2::Sha256::digest(i.to_be_bytes()).into())
    }

    impl Store {
        fn page_size(&self) -> i64 {
            self.conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page_size")
        }
    }

    #[test]
    fn migrating_an_older_database_keeps_deduplicating_what_it_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let mut c = Connection::open(&path).expect("open");
            migrations::migrate_to(&mut c, APPLICATION_ID, 3).expect("v3");
            // As version 3 stored them: time_ms is the requestTime, or the collection time.
            c.execute(
                "INSERT INTO events (id, tenant, time_ms, collected_at_ms, raw)
                   VALUES (?1, 'acme', 500, 9000, '{}'), (?2, 'acme', 9000, 9000, '{}');",
                params![&short_id(1)[..], &short_id(2)[..]],
            )
            .expect("rows");
        }
        let mut s = Store::open(&path).expect("migrate");
        assert_eq!(s.schema_version().expect("version"), migrations::LATEST);
        // An existing database keeps its page size (SQLite's default then).
        assert_eq!(s.page_size(), 4096);
        s.init_checkpoint("acme", 0, 1).expect("init");
        let again = |id: u8, request_time_ms| NewEvent {
            id: short_id(id),
            request_time_ms,
            raw: "{}".into(),
        };
        let out = s
            .insert_window(
                "acme",
                &[again(1, Some(500)), again(2, None), again(3, None)],
                20_000,
                None,
            )
            .expect("insert");
        assert_eq!((out.inserted, out.duplicates), (1, 2));
    }

    #[cfg(unix)]
    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/db.sqlite");
        let s = Store::open(&path).expect("open");
        assert_eq!(s.schema_version().expect("version"), migrations::LATEST);
        assert_eq!(s.page_size(), PAGE_SIZE);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(s);
        // Reopening is fine and keeps the schema.
        let s = Store::open(&path).expect("reopen");
        assert_eq!(s.schema_version().expect("version"), migrations::LATEST);
    }
}
