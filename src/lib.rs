//! workmail-pat-monitor: a Prometheus exporter and policy-driven cleanup for Amazon WorkMail
//! personal access tokens. See `ARCHITECTURE.md` for the map of the crate.

pub mod app;
pub mod cleanup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod httpd;
pub mod inventory;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod render;
pub mod report;
pub mod scan;
pub mod server;
pub mod sim;
pub mod state;
pub mod status;
pub mod webconfig;
pub mod workmail;
