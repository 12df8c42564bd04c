//! Sigil server library: the roles `sigil-server` runs (log, CA, TSA), usable in-process by tests.

pub mod app;
pub mod ca;
pub mod ca_token;
pub mod ca_wiring;
pub mod config;
pub mod dev_oidc;
pub mod error;
pub mod init;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod storage;
pub mod trust;
pub mod tsa;
