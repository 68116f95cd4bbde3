//! The command line: argument definitions ([`args`]), what each command does
//! ([`commands`]) and their human output ([`output`]). This is the only module that prints to
//! stdout.
#![allow(clippy::print_stdout)]

pub mod args;
pub mod commands;
pub mod output;

pub use args::{Cli, Command, LogFormat, ReportFormat, SimArgs};
pub use commands::{
    DEMO_CONFIG, EXIT_ABANDONED, EXIT_CONFIG, EXIT_INCOMPLETE, Exit, demo_sim, execute,
    parse_faults, shutdown_signal,
};
pub use output::{preflight_text, print_once, report_output, rule_matches};

use args::LogFormat as Format;

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

/// The log filter without `--log-level` or `RUST_LOG`. Off EC2, the SDK's region chain asks the
/// instance metadata service, fails, and logs a WARN with the error's `Debug` form (hundreds of
/// characters); the pre-flight and our own errors already say that no region is set.
const DEFAULT_LOG: &str = "info,aws_config::imds=error";

/// Sets up logging on stderr, through a bounded, non-blocking writer: a stuck log shipper or
/// a full pipe costs log lines (counted in `workmail_pat_log_lines_dropped_total`), never the
/// daemon's progress.
pub fn init_tracing(format: Format, level: Option<&str>) -> Logging {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
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
        Format::Text => builder.init(),
        Format::Json => builder.json().flatten_event(true).init(),
    }
    Logging {
        _guard: guard,
        drops,
    }
}
