//! The only code that knows Workday's URLs and JSON: the activity-log client, its wire types and
//! errors, and the event identity derived from an entry.

pub mod client;
pub mod wire;

pub use client::{ApiError, Query, WorkdayClient};

/// Workday answers at most this many entries for one `from`/`to` query (`instancesReturned=1`);
/// entries beyond it are silently absent, so a window that could reach it is split.
pub const ENTRY_CAP: u64 = 10_000;

/// The task name Workday logs for our own polling of this endpoint.
pub const OWN_POLLING_TASK: &str = "privacy/activityLogging/userActivity (GET) (v1 -  )";
