//! The one integration-test binary: every test drives the real `aws-sdk-workmail` client
//! (directly, or through the daemon) against the emulator over loopback HTTP.
// Test helpers outside `#[test]` functions may unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod admin;
mod browser;
mod cleanup;
mod config;
mod edge;
mod errors;
mod faults;
mod generate;
mod ledger;
mod monitor;
mod prometheus;
mod reload;
mod report;
mod secrets;
mod shards;
mod sim;
mod support;
mod textfile;
mod tidy;
mod web;
