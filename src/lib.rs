//! workday-collector: brings a Workday tenant's user activity log into a SIEM, exactly once.
//!
//! Data flows `workday` → `collect` → `store` → `forward` → `sink`; `daemon` supervises the
//! tasks, `auth` keeps tokens fresh, `sim` is the Workday tenant the tests and `demo` run against.
//! See docs/ARCHITECTURE.md for the invariants.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod forward;
pub mod maintenance;
pub mod normalize;
pub mod secret;
pub mod sim;
pub mod sink;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod workday;
