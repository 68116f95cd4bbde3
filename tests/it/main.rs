//! The one integration-test binary: every test drives the real `aws-sdk-workmail` client
//! (directly, or through the daemon) against the emulator over loopback HTTP.

mod cleanup;
mod config;
mod monitor;
mod sim;
mod support;
