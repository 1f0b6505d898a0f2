//! workday-collector: brings a Workday tenant's user activity log into a SIEM, exactly once.
//!
//! Data flows `workday` → `collect` → `store` → `forward` → `sink`; `daemon` supervises the
//! tasks, `auth` keeps tokens fresh, `sim` is the Workday tenant the tests and `demo` run against.
//! See docs/ARCHITECTURE.md for the invariants.

pub mod auth;
pub mod clock;
pub mod config;
pub mod secret;
pub mod store;
pub mod workday;
