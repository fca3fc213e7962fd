//! # handover-cli
//!
//! The `handover` command line over `handover-office` (the office) and
//! `handover-core` (a field device), and `handover demo`, a whole working
//! day end to end.
//!
//! | file | concern |
//! |---|---|
//! | `main.rs` | the binary |
//! | `cli.rs` | commands, flags, output; a contract other tools depend on |
//! | `error.rs` | the CLI's error and its advice |
//! | `client.rs` | the device's HTTP client: enrolment and sync with retries |
//! | `demo.rs` | `handover demo` |
//! | `load.rs` | `handover load`: a load generator for the sync service |

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod client;
pub mod demo;
pub mod error;
pub mod load;
pub mod local;

pub use error::{Error, Result};
