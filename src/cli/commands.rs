//! The commands: what each does, from a parsed command line to an exit code.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::args::{Cli, Command, Generate, ShardArgs, SimArgs};
use super::output;
use crate::app::{self, Options, Source};
use crate::config::Config;
use crate::report;
use crate::sim::{self, Faults, GenSpec, Scenario, Sim, SimConfig};
use crate::webconfig::LiveWebConfig;
use crate::workmail::ClientFactory;

/// The demo's daemon configuration.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// Exit code of a configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code of an incomplete scan.
pub const EXIT_INCOMPLETE: u8 = 1;
/// Exit code when a second signal abandons the work in hand.
pub const EXIT_ABANDONED: u8 = 130;

/// The Pushgateway job of `once --push-gateway`.
pub const PUSH_JOB: &str = "workmail-pat-monitor-once";

/// An error that ends the command with an exit code of its own, after its message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The exit code.
    pub code: u8,
    /// What to print (after `error: `).
    pub message: String,
}

/// `config` with the command line's `--shard`/`--total-shards`, when given.
fn with_shard(mut config: Config, args: ShardArgs) -> Result<Config, Exit> {
    if let (Some(shard), Some(total)) = (args.shard, args.total_shards) {
        config.scan.set_shard(shard, total).map_err(|m| Exit {
            code: EXIT_CONFIG,
            message: format!("--shard {shard} --total-shards {total}: {m}"),
        })?;
    }
    Ok(config)
}

fn load(path: &Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| Exit {
        code: EXIT_CONFIG,
        message: e.to_string(),
    })
}

fn load_web(path: Option<&Path>) -> Result<Option<Arc<LiveWebConfig>>, Exit> {
    path.map(|p| LiveWebConfig::load(p).map(Arc::new))
        .transpose()
        .map_err(|e| Exit {
            code: EXIT_CONFIG,
            message: e.to_string(),
        })
}

/// Ends the process at once, on a second signal: the log writer's buffer may not be
/// written out any more, so the line goes straight to stderr.
fn abandon(what: &str) -> ! {
    eprintln!("second signal: exiting now, abandoning {what} (exit code {EXIT_ABANDONED})");
    std::process::exit(i32::from(EXIT_ABANDONED));
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

/// A message for every SIGHUP (a reload of the configuration file).
fn reload_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    // One reload pending is enough: it reads the file as it is then.
                    let _ = tx.try_send(());
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload")
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Runs a command; returns the process exit code. `log_drops` counts the lines the log
/// writer dropped (see [`init_tracing`]).
pub async fn execute(cli: Cli, log_drops: Option<crate::metrics::LogDrops>) -> anyhow::Result<u8> {
    match command(cli, log_drops).await {
        Err(e) => match e.downcast::<Exit>() {
            Ok(exit) => {
                eprintln!("error: {}", exit.message);
                Ok(exit.code)
            }
            Err(e) => Err(e),
        },
        ok => ok,
    }
}

async fn command(cli: Cli, log_drops: Option<crate::metrics::LogDrops>) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run {
            config,
            web_config,
            shard,
        } => {
            let path = config;
            let config = with_shard(load(&path)?, shard)?;
            let web = load_web(web_config.as_deref())?;
            // A reload reads the same file, with the same command-line overrides.
            let loader: app::Loader = Arc::new(move || {
                load(&path)
                    .and_then(|c| with_shard(c, shard))
                    .map_err(|e| e.message)
            });
            let opts = Options {
                web,
                log_drops,
                loader: Some(loader),
                ..Default::default()
            };
            // A second signal while the work drains (it may take minutes) ends the process at
            // once.
            tokio::spawn(async {
                shutdown_signal().await;
                shutdown_signal().await;
                abandon("the drain");
            });
            app::run(
                config,
                Source::Env,
                opts,
                shutdown_signal(),
                reload_signals(),
            )
            .await?;
            Ok(0)
        }
        Command::Once {
            config,
            metrics_file,
            push_gateway,
            shard,
        } => {
            let config = with_shard(load(&config)?, shard)?;
            if let Some(path) = &metrics_file {
                // Before anything is scanned or deleted: a file that cannot be written is
                // found now, not after the run.
                crate::metrics::check_textfile(path).map_err(|e| Exit {
                    code: EXIT_CONFIG,
                    message: format!("--metrics-file {}: {e}", path.display()),
                })?;
            }
            let opts = Options::default();
            let stop = opts.stop.clone();
            let signals = tokio::spawn(async move {
                shutdown_signal().await;
                tracing::warn!("signal received: finishing the token in hand, then stopping");
                stop.cancel();
                shutdown_signal().await;
                abandon("the token in hand");
            });
            let outcome = app::once(config, Source::Env, opts, None).await?;
            signals.abort();
            let code = output::print_once(&outcome);
            if metrics_file.is_none() && push_gateway.is_none() {
                return Ok(code);
            }
            let text = outcome.ctx.metrics.render(&outcome.ctx.shared);
            if let Some(path) = metrics_file {
                crate::metrics::write_textfile(&path, &text).map_err(|e| Exit {
                    code: EXIT_INCOMPLETE,
                    message: format!("--metrics-file {}: {e}", path.display()),
                })?;
            }
            if let Some(url) = push_gateway {
                let scan = &outcome.ctx.config().scan;
                let shard = (scan.total_shards > 1).then_some(scan.shard);
                crate::metrics::push(&url, PUSH_JOB, shard, &text)
                    .await
                    .map_err(|e| Exit {
                        code: EXIT_INCOMPLETE,
                        message: format!("--push-gateway: {e}"),
                    })?;
            }
            Ok(code)
        }
        Command::CheckConfig { config: path, scan } => {
            let config = load(&path)?;
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
            print!("{}", output::preflight_text(&preflight));
            let outcome =
                app::once(read_only(config), Source::Env, Options::default(), None).await?;
            print!("{}", output::rule_matches(&outcome));
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
            let web = load_web(web_config.as_deref())?;
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
        Command::Generate(what) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut text = Vec::new();
            match what {
                Generate::Completions { shell } => {
                    clap_complete::generate(shell, &mut cmd, "workmail-pat-monitor", &mut text);
                }
                Generate::Man => clap_mangen::Man::new(cmd).render(&mut text)?,
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&text)?;
            out.flush()?;
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
            let config = load(&config)?;
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
            let code = output::report_output(&outcome, &filter, format, output.as_deref())?;
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

impl SimArgs {
    /// Builds the emulator these arguments describe.
    pub fn build(&self) -> anyhow::Result<Sim> {
        let now = match &self.now {
            Some(t) => sim::world::parse_time(t, chrono::Utc::now(), "--now")?,
            None => chrono::Utc::now(),
        };
        let (world, roles) = match &self.scenario {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read", p.display()))?;
                Scenario::parse(&text)
                    .and_then(|s| Ok((s.build(now)?, s.roles()?)))
                    .with_context(|| format!("{}", p.display()))?
            }
            None => (
                sim::world::generate(&GenSpec {
                    seed: self.seed,
                    organizations: self.organizations,
                    users_per_org: self.users,
                    tokens_per_org: self.tokens,
                    inactive_organization: true,
                    now,
                }),
                Default::default(),
            ),
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
                roles,
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
