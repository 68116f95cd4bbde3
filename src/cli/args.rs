//! The command line's arguments: the clap definitions of every command and flag.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::inventory::OwnerState;

#[derive(Debug, Parser)]
#[command(
    name = "workmail-pat-monitor",
    version,
    about = "Prometheus exporter and policy-driven cleanup for Amazon WorkMail personal access tokens",
    after_help = "Examples:\n  workmail-pat-monitor demo\n  workmail-pat-monitor run --config /etc/workmail-pat-monitor/config.toml\n  workmail-pat-monitor once --config config.toml\n  workmail-pat-monitor report --config config.toml --format csv --expiring-within 7d\n  workmail-pat-monitor sim --listen 127.0.0.1:4566 --seed 7 --organizations 3 --users 200"
)]
/// The command line.
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log level or filter (overrides RUST_LOG), e.g. `debug` or `info,aws_smithy_runtime=debug`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Report formats.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    /// A table for the terminal, soonest expiry first.
    Table,
    /// RFC 4180 CSV.
    Csv,
    /// The JSON schema of /api/v1/tokens.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: scan on a schedule, serve /metrics, run cleanup when configured.
    Run {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// A Prometheus exporter-toolkit web configuration (TLS, basic auth, headers).
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config: Option<PathBuf>,
        #[command(flatten)]
        shard: ShardArgs,
    },
    /// Scan once (and run cleanup once, when configured); exit 0 only if every
    /// organization was scanned completely.
    Once {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Also write the run's metrics to this file (for node_exporter's textfile
        /// collector: name it `*.prom`), atomically, whatever the outcome.
        #[arg(long, value_name = "FILE")]
        metrics_file: Option<PathBuf>,
        /// Also push the run's metrics to this Prometheus Pushgateway (http://host:9091),
        /// as job `workmail-pat-monitor-once`, whatever the outcome.
        #[arg(long, value_name = "URL", value_parser = crate::metrics::push_gateway_url)]
        push_gateway: Option<http::Uri>,
        #[command(flatten)]
        shard: ShardArgs,
    },
    /// Validate a configuration and print the effective configuration.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Also scan once (read-only) and print how many tokens each cleanup rule would
        /// match right now. Needs AWS credentials; without it, nothing is called.
        #[arg(long)]
        scan: bool,
    },
    /// Run the daemon against the embedded WorkMail emulator with a seeded data set.
    Demo {
        /// Where the daemon listens.
        #[arg(long, default_value = "127.0.0.1:9795")]
        listen: SocketAddr,
        /// Where the emulator listens.
        #[arg(long, default_value = "127.0.0.1:0")]
        sim_listen: SocketAddr,
        /// Seed of the data set.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// A Prometheus exporter-toolkit web configuration (TLS, basic auth, headers).
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config: Option<PathBuf>,
    },
    /// Serve the WorkMail emulator.
    Sim(SimArgs),
    /// Print shell completions or the man page, generated from these definitions.
    #[command(subcommand)]
    Generate(Generate),
    /// Scan once and print every matching token with its owner and cleanup verdict.
    Report {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Only this organization (id or alias).
        #[arg(long)]
        organization: Option<String>,
        /// Only tokens expiring within this duration (expired ones included), e.g. 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        expiring_within: Option<Duration>,
        /// Only tokens unused for at least this duration, e.g. 90d.
        #[arg(long, value_parser = humantime::parse_duration)]
        unused_for: Option<Duration>,
        /// Only tokens whose owner is in this state.
        #[arg(long, value_parser = parse_owner_state)]
        owner_state: Option<OwnerState>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// `--shard N --total-shards M`: overrides `scan.shard` and `scan.total_shards`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ShardArgs {
    /// This process's shard, from 0 (overrides scan.shard). With a StatefulSet, the pod's
    /// ordinal.
    #[arg(long, requires = "total_shards", value_name = "N")]
    pub shard: Option<u32>,
    /// How many shards split the organizations (overrides scan.total_shards).
    #[arg(long, requires = "shard", value_name = "M")]
    pub total_shards: Option<u32>,
}

/// What `generate` prints.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Shell completions, e.g. `generate completions bash > /etc/bash_completion.d/workmail-pat-monitor`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff), e.g. `generate man > /usr/share/man/man1/workmail-pat-monitor.1`.
    Man,
}

fn parse_owner_state(s: &str) -> Result<OwnerState, String> {
    OwnerState::parse(s).ok_or_else(|| {
        format!("unknown state {s:?} (expected ENABLED, DISABLED, DELETED or UNKNOWN)")
    })
}

/// Arguments of `sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:4566")]
    pub listen: SocketAddr,
    /// Region requests must be signed for, where the organizations live.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Also answer as this region's endpoint, where none of the organizations are (to try
    /// an organization configured in the wrong region; repeatable).
    #[arg(long = "also-region", value_name = "REGION")]
    pub other_regions: Vec<String>,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Active organizations to generate (one more, not Active, is added).
    #[arg(long, default_value_t = 3)]
    pub organizations: usize,
    /// Users per organization.
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// Tokens per organization (default: 1.5 per user).
    #[arg(long)]
    pub tokens: Option<usize>,
    /// The instant generated times are relative to (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
    /// A scenario file (TOML or JSON) instead of generated data.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// A fault file (TOML or JSON).
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Verify signatures with these credentials (ACCESS_KEY_ID:SECRET; repeatable).
    #[arg(long = "credentials")]
    pub credentials: Vec<String>,
}
