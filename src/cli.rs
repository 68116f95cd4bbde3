//! The command line: argument definitions and the commands' human output. This is the only
//! module that prints to stdout.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{self, Options, Source};
use crate::config::Config;
use crate::inventory::OwnerState;
use crate::report;
use crate::sim::{self, Faults, GenSpec, Scenario, Sim, SimConfig};
use crate::webconfig::LiveWebConfig;
use crate::workmail::ClientFactory;

/// The demo's daemon configuration.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Exit code of a configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code of an incomplete scan.
pub const EXIT_INCOMPLETE: u8 = 1;

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
    },
    /// Scan once (and run cleanup once, when configured); exit 0 only if every
    /// organization was scanned completely.
    Once {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
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

impl SimArgs {
    /// Builds the emulator these arguments describe.
    pub fn build(&self) -> anyhow::Result<Sim> {
        let now = match &self.now {
            Some(t) => sim::world::parse_time(t, chrono::Utc::now(), "--now")?,
            None => chrono::Utc::now(),
        };
        let world = match &self.scenario {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read", p.display()))?;
                Scenario::parse(&text)
                    .and_then(|s| s.build(now))
                    .with_context(|| format!("{}", p.display()))?
            }
            None => sim::world::generate(&GenSpec {
                seed: self.seed,
                organizations: self.organizations,
                users_per_org: self.users,
                tokens_per_org: self.tokens,
                inactive_organization: true,
                now,
            }),
        };
        let faults = match &self.faults {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read", p.display()))?;
                parse_faults(&text).with_context(|| format!("{}", p.display()))?
            }
            None => Faults::default(),
        };
        let mut credentials = std::collections::HashMap::new();
        for c in &self.credentials {
            let (k, s) = c
                .split_once(':')
                .with_context(|| format!("--credentials {c:?}: expected ACCESS_KEY_ID:SECRET"))?;
            credentials.insert(k.to_owned(), s.to_owned());
        }
        Ok(Sim::new(
            world,
            SimConfig {
                region: self.region.clone(),
                other_regions: self.other_regions.clone(),
                credentials,
                faults,
                seed: self.seed,
            },
        ))
    }
}

/// Parses a fault file (TOML, or JSON when it starts with `{`).
pub fn parse_faults(text: &str) -> anyhow::Result<Faults> {
    Ok(if text.trim_start().starts_with('{') {
        serde_json::from_str(text)?
    } else {
        toml::from_str(text)?
    })
}

/// Log lines the writer holds while nobody reads stderr; beyond that, lines are dropped
/// (and counted), never waited for.
const LOG_BUFFER_LINES: usize = 8_192;

/// The logging set up by [`init_tracing`]: keep it alive for the life of the process, so
/// that the lines still buffered are written when it ends.
pub struct Logging {
    _guard: tracing_appender::non_blocking::WorkerGuard,
    drops: crate::metrics::LogDrops,
}

impl Logging {
    /// Counts the lines dropped because stderr was not read in time.
    pub fn drops(&self) -> crate::metrics::LogDrops {
        self.drops.clone()
    }
}

/// Sets up logging on stderr, through a bounded, non-blocking writer: a stuck log shipper or
/// a full pipe costs log lines (counted in `workmail_pat_log_lines_dropped_total`), never the
/// daemon's progress.
pub fn init_tracing(format: LogFormat, level: Option<&str>) -> Logging {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colours only for a person at a terminal, never in journald or a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let drops = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Logging {
        _guard: guard,
        drops,
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn load(path: &Path) -> Result<Config, u8> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_CONFIG
    })
}

fn load_web(path: Option<&Path>) -> Result<Option<Arc<LiveWebConfig>>, u8> {
    let Some(path) = path else { return Ok(None) };
    match LiveWebConfig::load(path) {
        Ok(w) => Ok(Some(Arc::new(w))),
        Err(e) => {
            eprintln!("error: {e}");
            Err(EXIT_CONFIG)
        }
    }
}

/// Runs a command; returns the process exit code. `log_drops` counts the lines the log
/// writer dropped (see [`init_tracing`]).
pub async fn execute(cli: Cli, log_drops: Option<crate::metrics::LogDrops>) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run { config, web_config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let web = match load_web(web_config.as_deref()) {
                Ok(w) => w,
                Err(code) => return Ok(code),
            };
            let opts = Options {
                web,
                log_drops,
                ..Default::default()
            };
            app::run(config, Source::Env, opts, shutdown_signal()).await?;
            Ok(0)
        }
        Command::Once { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let opts = Options::default();
            let stop = opts.stop.clone();
            let signals = tokio::spawn(async move {
                shutdown_signal().await;
                tracing::warn!("signal received: finishing the token in hand, then stopping");
                stop.cancel();
            });
            let outcome = app::once(config, Source::Env, opts, None).await?;
            signals.abort();
            Ok(print_once(&outcome))
        }
        Command::CheckConfig { config: path, scan } => {
            let config = match load(&path) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            println!("# {}: valid. Effective configuration:\n", path.display());
            print!("{}", config.to_toml());
            if !scan {
                return Ok(0);
            }
            let ledger = config.cleanup.audit_log.clone();
            // The pre-flight check runs with the configuration as written: it tries each
            // permission that configuration needs, with calls that change nothing.
            let preflight = app::Context::new(config.clone(), Source::Env, &Options::default())
                .await
                .preflight()
                .await?;
            print!("{}", preflight_text(&preflight));
            let outcome =
                app::once(read_only(config), Source::Env, Options::default(), None).await?;
            print!("{}", rule_matches(&outcome));
            for e in &outcome.discovery_errors {
                println!("# INCOMPLETE: {e}");
            }
            let mut complete = outcome.complete() && preflight.passed();
            if let Some(p) = ledger {
                let mut l = crate::ledger::Ledger::open(&p)?;
                let s = outcome
                    .ctx
                    .reconcile(&mut l, &tokio_util::sync::CancellationToken::new())
                    .await;
                println!(
                    "\n# Cleanup ledger {}: {} open delete intent(s) reconciled, {} still open{}",
                    p.display(),
                    s.reconciled,
                    s.unreconciled,
                    s.aborted
                        .as_ref()
                        .map(|a| format!("; {a}"))
                        .unwrap_or_default()
                );
                complete &= !s.needs_attention();
            }
            Ok(if complete { 0 } else { EXIT_INCOMPLETE })
        }
        Command::Demo {
            listen,
            sim_listen,
            seed,
            web_config,
        } => {
            let web = match load_web(web_config.as_deref()) {
                Ok(w) => w,
                Err(code) => return Ok(code),
            };
            demo(listen, sim_listen, seed, web, log_drops).await
        }
        Command::Sim(args) => {
            let sim = args.build()?;
            let server = sim.start(args.listen).await?;
            let endpoint = server.endpoint();
            println!(
                "WorkMail emulator listening on {endpoint} (region {})",
                args.region
            );
            for o in server.sim.world().orgs.values() {
                println!(
                    "  {}  {:<10} {:<9} users={:<6} tokens={}",
                    o.id,
                    o.alias,
                    o.state,
                    o.users.len(),
                    o.tokens.len()
                );
            }
            println!(
                "Try: AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws workmail list-organizations --region {} --endpoint-url {endpoint}",
                args.region
            );
            let _ = std::io::stdout().flush();
            shutdown_signal().await;
            server.stop().await;
            Ok(0)
        }
        Command::Report {
            config,
            format,
            organization,
            expiring_within,
            unused_for,
            owner_state,
            output,
        } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let filter = report::Filter {
                organization,
                expiring_within,
                unused_for,
                owner_state,
            };
            // A progress line only for a person watching: never in logs or pipes.
            let progress: Option<crate::scan::Progress> =
                std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
                    Arc::new(|org: &crate::inventory::OrgRef, n: usize| {
                        eprint!("\rscanning {}: {n} tokens   ", org.label);
                    }) as crate::scan::Progress
                });
            // A report never deletes: cleanup verdicts are computed, not acted on.
            let config = read_only(config);
            let watched = progress.is_some();
            let outcome = app::once(config, Source::Env, Options::default(), progress).await?;
            if watched {
                eprintln!();
            }
            let code = report_output(&outcome, &filter, format, output.as_deref())?;
            Ok(code)
        }
    }
}

/// The configuration with cleanup off everywhere and no audit log: verdicts are still
/// computed from the rules, but nothing can act on them.
fn read_only(mut config: Config) -> Config {
    config.cleanup.mode = crate::config::CleanupMode::Off;
    config.cleanup.audit_log = None;
    for o in &mut config.organizations {
        o.cleanup.mode = None;
    }
    config
}

/// For `check-config --scan`: the credentials and the permissions the configuration needs.
pub fn preflight_text(p: &app::Preflight) -> String {
    use crate::workmail::Probe;
    let mut out = String::from("\n# Pre-flight (calls that change nothing):\n");
    match &p.credentials {
        Ok(c) => out.push_str(&format!(
            "#   credentials: {} (access key {}){}\n",
            c.provider,
            c.access_key,
            c.profile
                .as_ref()
                .map(|p| format!(", profile {p}"))
                .unwrap_or_default()
        )),
        Err(e) => out.push_str(&format!("#   credentials: NONE: {e}\n")),
    }
    out.push_str(&format!(
        "#   default region: {}\n",
        p.default_region
            .as_deref()
            .unwrap_or("none (set AWS_REGION or a profile's region)")
    ));
    let line = |out: &mut String, perm: &crate::workmail::Permission| {
        let (mark, note) = match &perm.probe {
            Probe::Allowed => ("ok", String::new()),
            Probe::Denied(why) => ("DENIED", format!(": {why}")),
            Probe::Failed(why) => ("FAILED", format!(": {why}")),
            Probe::NotTried(why) => ("not tried", format!(": {why}")),
        };
        let optional = if perm.optional { ", optional" } else { "" };
        out.push_str(&format!(
            "#     {mark:<9} {} ({}{optional}){note}\n",
            perm.action, perm.purpose
        ));
    };
    for (region, perm) in &p.discovery {
        out.push_str(&format!("#   discovery in {region}:\n"));
        line(&mut out, perm);
    }
    for (org, perms) in &p.orgs {
        out.push_str(&format!(
            "#   {} ({}) in {}:\n",
            org.label, org.id, org.region
        ));
        for perm in perms {
            line(&mut out, perm);
        }
    }
    out.push_str(if p.passed() {
        "#   every permission the configuration needs is allowed (or cannot be tried)\n"
    } else {
        "#   NOT READY: a permission the configuration needs is denied or could not be checked\n"
    });
    out
}

/// For `check-config --scan`: how many tokens each rule would match now, per organization.
pub fn rule_matches(outcome: &app::OnceOutcome) -> String {
    let ctx = &outcome.ctx;
    let now = ctx.clock.now();
    let mut out =
        String::from("\n# Cleanup rules against a scan made now (nothing was deleted):\n");
    if ctx.config.cleanup.rules.is_empty() {
        out.push_str("#   no rules configured\n");
        return out;
    }
    for rule in &ctx.config.cleanup.rules {
        let mut parts = Vec::new();
        let mut total = 0;
        for st in ctx.shared.snapshot() {
            let Some(inv) = &st.inventory else {
                parts.push(format!("{}: scan incomplete", st.org.label));
                continue;
            };
            if !rule.applies_to(&inv.org.id) {
                continue;
            }
            // Each rule on its own, whatever the rules before it match.
            let (mut n, mut protected) = (0, 0);
            for t in &inv.tokens {
                let owner = inv.owner_of(t);
                if crate::policy::matches(rule, t, owner, now) {
                    match crate::policy::exclusion(&ctx.config.cleanup, t, owner) {
                        Some(_) => protected += 1,
                        None => n += 1,
                    }
                }
            }
            total += n;
            parts.push(format!("{}: {n} (+{protected} excluded)", st.org.label));
        }
        out.push_str(&format!(
            "#   {}: {total} token(s) would match now; {}\n",
            rule.name,
            parts.join(", ")
        ));
    }
    out
}

/// Writes the report of a completed `once`; returns the exit code.
pub fn report_output(
    outcome: &app::OnceOutcome,
    filter: &report::Filter,
    format: ReportFormat,
    output: Option<&Path>,
) -> anyhow::Result<u8> {
    let ctx = &outcome.ctx;
    let rep = report::build_filtered(&ctx.config, &ctx.shared.snapshot(), ctx.clock.now(), filter);
    let text = match format {
        ReportFormat::Table => report::to_table(&rep),
        ReportFormat::Csv => report::to_csv(&rep)?,
        ReportFormat::Json => serde_json::to_string_pretty(&rep)? + "\n",
    };
    match output {
        // The report holds personal data (names, addresses): only its owner may read it.
        Some(p) => crate::ledger::create_private(p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("{}: cannot write", p.display()))?,
        None => print!("{text}"),
    }
    for (org, r) in &outcome.scans {
        if let Err(e) = r {
            eprintln!("warning: scan of {} incomplete: {e}", org.label);
            if let Some(h) = e.hint() {
                eprintln!("  hint: {h}");
            }
        }
    }
    for e in &outcome.discovery_errors {
        eprintln!("warning: {e}");
    }
    Ok(if rep.complete && outcome.complete() {
        0
    } else {
        EXIT_INCOMPLETE
    })
}

fn print_once(outcome: &app::OnceOutcome) -> u8 {
    let mut complete = outcome.complete();
    for e in &outcome.discovery_errors {
        println!("INCOMPLETE: {e}");
    }
    for (org, r) in &outcome.scans {
        let st = outcome.ctx.shared.org(&org.id);
        match r {
            Ok(()) => {
                let s = st
                    .as_ref()
                    .and_then(|s| s.stats.clone())
                    .unwrap_or_default();
                println!(
                    "{} ({}): complete: {} tokens ({} active, {} expired, {} never used), {} owners; tokens of inactive owners: {}",
                    org.label,
                    org.id,
                    s.active + s.expired,
                    s.active,
                    s.expired,
                    s.never_used,
                    s.owners,
                    s.inactive_owner_tokens(),
                );
                for (w, n) in &s.expiring {
                    println!("    expiring within {w}: {n}");
                }
            }
            Err(e) => {
                complete = false;
                println!("{} ({}): INCOMPLETE: {e}", org.label, org.id);
                if let Some(h) = e.hint() {
                    println!("  hint: {h}");
                }
            }
        }
    }
    if let Some(c) = &outcome.cleanup {
        let mut notes = Vec::new();
        if c.reconciled > 0 {
            notes.push(format!(
                "{} earlier delete intent(s) reconciled",
                c.reconciled
            ));
        }
        if c.unreconciled > 0 {
            notes.push(format!(
                "{} delete intent(s) still unreconciled (their re-read failed)",
                c.unreconciled
            ));
        }
        if !c.skipped_orgs.is_empty() {
            notes.push(format!(
                "{} organization(s) skipped (incomplete scan)",
                c.skipped_orgs.len()
            ));
        }
        if let Some(a) = &c.aborted {
            notes.push(format!("ABORTED: {a}"));
        }
        let mut line = format!("cleanup: {}", c.counts());
        for n in notes {
            line.push_str("; ");
            line.push_str(&n);
        }
        println!("{line}");
        // Aborted runs, failed or unconfirmed deletions and unreconciled intents are
        // failures of a scheduled job.
        if c.needs_attention() {
            complete = false;
        }
    }
    if complete { 0 } else { EXIT_INCOMPLETE }
}

/// The demo's emulator: seeded data, some throttling, so every panel has data.
pub fn demo_sim(seed: u64) -> Sim {
    let world = sim::world::generate(&GenSpec {
        seed,
        organizations: 3,
        users_per_org: 120,
        tokens_per_org: None,
        inactive_organization: true,
        now: chrono::Utc::now(),
    });
    let mut faults = Faults::default();
    // A little throttling, absorbed by the SDK's retries, so the dashboards' throttling
    // panels have data: the first scan's token pages alone (three organizations at once)
    // exceed the burst.
    for op in ["ListPersonalAccessTokens", "ListUsers", "DescribeUser"] {
        faults.operations.insert(
            op.to_owned(),
            sim::OpFaults {
                latency_ms: 2,
                throttle_rate: Some(10.0),
                throttle_burst: Some(4.0),
                retry_after_ms: Some(200),
                ..Default::default()
            },
        );
    }
    Sim::new(
        world,
        SimConfig {
            region: "us-east-1".to_owned(),
            faults,
            seed,
            ..Default::default()
        },
    )
}

async fn demo(
    listen: SocketAddr,
    sim_listen: SocketAddr,
    seed: u64,
    web: Option<Arc<LiveWebConfig>>,
    log_drops: Option<crate::metrics::LogDrops>,
) -> anyhow::Result<u8> {
    let server = demo_sim(seed).start(sim_listen).await?;
    let mut config = Config::parse(DEMO_CONFIG, "config/demo.toml")?;
    config.server.listen = listen;
    let source = Source::Sdk(Box::new(ClientFactory::static_sdk_config(
        &server.endpoint(),
        "us-east-1",
    )));
    let scheme = match &web {
        Some(w) if w.current().tls.is_some() => "https",
        _ => "http",
    };
    let opts = Options {
        initial_backoff: Duration::from_millis(50),
        web,
        log_drops,
        ..Default::default()
    };
    let daemon = app::Daemon::start(config, source, opts).await?;
    println!("WorkMail emulator: {} (seed {seed})", server.endpoint());
    println!("Metrics:           {scheme}://{}/metrics", daemon.addr);
    println!("Status page:       {scheme}://{}/", daemon.addr);
    println!(
        "Tokens API:        {scheme}://{}/api/v1/tokens",
        daemon.addr
    );
    println!("Cleanup runs in dry-run mode: nothing is deleted. Ctrl-C to stop.");
    let _ = std::io::stdout().flush();
    shutdown_signal().await;
    daemon.stop().await;
    server.stop().await;
    Ok(0)
}
