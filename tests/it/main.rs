//! One integration-test binary: the real daemon, in-process or as the built binary, against the
//! Workday simulator on 127.0.0.1:0 and a temporary directory.

mod support;

mod backfill;
mod cli;
mod crash;
mod daemon;
mod diskfull;
mod doctor;
mod elastic;
mod faults;
mod formats;
mod fuzz;
mod signin;
mod sinks;
mod splunk;
mod syslog;
mod tokens;
