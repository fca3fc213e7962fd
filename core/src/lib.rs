//! # handover-core
//!
//! The offline heart of *handover*: a postman or vaccinator hands an item over
//! only against the one-time code the recipient received by SMS, and the
//! device proves it did, even with no network at the door.
//!
//! The crate is pure Rust with no FFI and no CLI; `handover-office` and
//! `handover-ffi` build on it.
//!
//! | module | concern |
//! |---|---|
//! | [`codes`] | code derivation from the office's code key; policies and their risk figures |
//! | [`verifier`] | truncated PBKDF2 verifiers the device holds instead of codes |
//! | [`keys`] | Ed25519 keys, key ids, device ids |
//! | [`envelope`] | the office's signed envelope (manifests, acks) |
//! | [`manifest`] | the daily manifest: items of both programmes, validation |
//! | [`s10`] | UPU S10 article numbers and their check digit |
//! | [`upi`] | `upi://pay` requests and their QR modules for cash on delivery |
//! | [`rules`] | rules the device and office share: clock tolerance, safe time arithmetic, id and text checks |
//! | [`db`] | opening a SQLite database: integrity check first, WAL, migrations |
//! | [`event`] | outbox events, the hash chain, device signatures |
//! | [`sync`] | batch and ack formats |
//! | [`api`] | the office sync API over HTTP: tokens, signed requests, bodies |
//! | [`device`] | the SQLite device store and its API |
//! | [`error`] | the error type |
//!
//! ## The flow
//!
//! 1. The office derives each item's code ([`codes::derive_code`]), texts it
//!    to the recipient, and puts only a truncated [`verifier::Verifier`] in
//!    the device's signed [`manifest::Manifest`].
//! 2. The device imports the manifest ([`device::Device::import_manifest`])
//!    and checks codes offline ([`device::Device::verify`]); every outcome is
//!    a signed, chained [`event::Event`] committed before the UI hears of it.
//! 3. Back at the office, the device exports a [`sync::Batch`]; the office
//!    re-derives every handed-over code and answers with a signed
//!    [`sync::Ack`], which the device applies.
//!
//! See `docs/design.md` and `docs/threat-model.md` in the repository for the
//! reasoning behind each choice.

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();

pub mod api;
pub mod codes;
pub mod db;
pub mod device;
pub mod digipin;
pub mod envelope;
pub mod error;
pub mod event;
mod hexser;
pub mod keys;
pub mod manifest;
pub mod rules;
pub mod s10;
pub mod statement;
pub mod sync;
pub mod upi;
pub mod verifier;

pub use error::{Error, Result};
