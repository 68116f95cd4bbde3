//! The `workmail-pat-monitor` binary: parses the command line, sets up logging and runs the
//! command. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use workmail_pat_monitor::cli::{self, Cli};

// jemalloc gives memory back to the system a few seconds after it is freed: without it the
// heap keeps the high-water mark of every rescan (an old and a new inventory at once) for
// good.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let logging = cli::init_tracing(cli.log_format, cli.log_level.as_deref());
    match cli::execute(cli, Some(logging.drops())).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
