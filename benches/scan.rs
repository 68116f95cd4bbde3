//! Scan benchmark: drives the emulator at scale and prints API calls per operation against
//! the minimum, scan wall time, peak RSS, and /metrics render time and size.
//!
//! `cargo bench --bench scan` runs the full size (5 organizations × 5,000 users × 20,000
//! tokens, 5 ms latency per call). Without `--bench` (as `cargo test --all-targets` runs
//! it) it runs a small size, so the benchmark itself stays tested.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use workmail_pat_monitor::app::{Context, Options, Source};
use workmail_pat_monitor::clock::Clock;
use workmail_pat_monitor::config::{Config, OwnerLookup};
use workmail_pat_monitor::sim::world::{GenSpec, generate};
use workmail_pat_monitor::sim::{Faults, OpFaults, Sim, SimConfig};
use workmail_pat_monitor::workmail::ClientFactory;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (orgs, users, tokens, latency) = if full {
        (5, 5_000, 20_000, 5)
    } else {
        (2, 200, 600, 1)
    };
    let now = chrono::Utc::now();
    let world = generate(&GenSpec {
        seed: 42,
        organizations: orgs,
        users_per_org: users,
        tokens_per_org: Some(tokens),
        inactive_organization: false,
        now,
    });
    let pages: u64 = world
        .orgs
        .values()
        .map(|o| o.tokens.len().div_ceil(100) as u64)
        .sum();
    let owners: u64 = world
        .orgs
        .values()
        .map(|o| {
            o.tokens
                .values()
                .map(|t| &t.user_id)
                .collect::<HashSet<_>>()
                .len() as u64
        })
        .sum();
    let faults = Faults {
        default: OpFaults {
            latency_ms: latency,
            ..Default::default()
        },
        ..Default::default()
    };
    let rss_before = rss_kib("VmRSS:");
    let server = Sim::new(
        world,
        SimConfig {
            faults,
            ..Default::default()
        },
    )
    .start("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    println!(
        "scan benchmark: {orgs} organizations x {users} users x {tokens} tokens, {latency} ms per call{}",
        if full {
            ""
        } else {
            " (smoke size; run `cargo bench --bench scan` for the full size)"
        }
    );
    println!(
        "minimum calls: cold = {pages} token pages + {owners} distinct owners = {}; warm = {pages}",
        pages + owners
    );

    for lookup in [OwnerLookup::Describe, OwnerLookup::Auto] {
        let mut text = String::from(
            "[server]\nlisten = \"127.0.0.1:0\"\n[discovery]\nregions = [\"us-east-1\"]\n",
        );
        text.push_str("[scan]\npage_size = 100\nmax_concurrency = 8\n");
        let mut config = Config::parse(&text, "bench").unwrap();
        config.scan.owner_lookup = lookup;
        let source = Source::Sdk(Box::new(ClientFactory::static_sdk_config(
            &server.endpoint(),
            "us-east-1",
        )));
        let opts = Options {
            clock: Clock::System,
            initial_backoff: Duration::from_millis(10),
            ..Default::default()
        };
        let ctx = Context::new(config, source, &opts).await;
        let targets = ctx.resolve_orgs().await.unwrap();
        for round in ["cold", "warm"] {
            server.sim.reset_calls();
            let started = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for org in targets.clone() {
                let ctx = ctx.clone();
                set.spawn(async move { ctx.scan_and_publish(&org, None).await.is_ok() });
            }
            let mut ok = 0;
            while let Some(r) = set.join_next().await {
                ok += usize::from(r.unwrap());
            }
            let wall = started.elapsed();
            let calls = server.sim.calls();
            let per_op: Vec<String> = calls
                .by_operation
                .iter()
                .map(|(op, n)| format!("{op}={n}"))
                .collect();
            let data_calls = calls.count("ListPersonalAccessTokens")
                + calls.count("DescribeUser")
                + calls.count("ListUsers");
            let minimum = if round == "cold" {
                pages + owners
            } else {
                pages
            };
            println!(
                "{lookup:?} {round}: {ok}/{} organizations complete in {:.2}s; calls: {} (token+owner calls {data_calls} vs minimum {minimum})",
                targets.len(),
                wall.as_secs_f64(),
                per_op.join(" "),
            );
        }
        let started = Instant::now();
        let rendered = ctx.metrics.render(&ctx.shared);
        let render = started.elapsed();
        println!(
            "{lookup:?} /metrics: {} bytes, {} series, rendered in {:.1} ms",
            rendered.len(),
            rendered.lines().filter(|l| !l.starts_with('#')).count(),
            render.as_secs_f64() * 1000.0
        );
    }
    println!(
        "peak RSS: {} MiB (process: emulator with its data set + daemon; {} MiB before the emulator started)",
        rss_kib("VmHWM:") / 1024,
        rss_before / 1024
    );
    server.stop().await;
}
