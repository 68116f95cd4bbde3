//! Soak test: the daemon on a short interval against a faulty emulator, with cleanup in
//! enforce mode and new expired tokens arriving all the time. Checks that RSS and open file
//! descriptors stay flat and that every deletion has exactly one audit line (none lost,
//! none duplicated). Loopback only; bounded by `--duration`.
//!
//! `cargo run --example soak -- --duration 60s` (`.ci/run` runs it with a short duration).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use workmail_pat_monitor::app::{Daemon, Options, Source};
use workmail_pat_monitor::cleanup::Action;
use workmail_pat_monitor::config::Config;
use workmail_pat_monitor::ledger::Record;
use workmail_pat_monitor::sim::world::{GenSpec, generate};
use workmail_pat_monitor::sim::{Faults, Mutation, OpFaults, Sim, SimConfig};
use workmail_pat_monitor::workmail::ClientFactory;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let duration = args
        .iter()
        .position(|a| a == "--duration")
        .and_then(|i| args.get(i + 1))
        .map_or(Duration::from_secs(60), |d| {
            humantime::parse_duration(d).expect("--duration: a humantime duration")
        });

    let now = chrono::Utc::now();
    let world = generate(&GenSpec {
        seed: 11,
        organizations: 3,
        users_per_org: 300,
        tokens_per_org: Some(1_000),
        inactive_organization: false,
        now,
    });
    let orgs: Vec<(String, String)> = world
        .orgs
        .values()
        .map(|o| (o.id.clone(), o.users.keys().next().cloned().unwrap()))
        .collect();
    let faults = Faults {
        default: OpFaults {
            latency_ms: 1,
            jitter_ms: 3,
            internal_error_rate: 0.03,
            unavailable_rate: 0.02,
            truncated_rate: 0.005,
            throttle_rate: Some(400.0),
            throttle_burst: Some(50.0),
            retry_after_ms: Some(20),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Sim::new(
        world,
        SimConfig {
            faults,
            seed: 11,
            ..Default::default()
        },
    )
    .start("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[scan]
interval = "1s"
call_timeout = "2s"
max_attempts = 3
retry_mode = "standard"
[discovery]
regions = ["us-east-1"]
[cleanup]
mode = "enforce"
interval = "2s"
max_deletions_per_run = 10
max_deletions_per_day = 1000000
max_deletions_percent = 100
audit_log = {audit:?}
[[cleanup.rules]]
name = "expired"
expired_for = "1d"
"#
    );
    let config = Config::parse(&text, "soak").unwrap();
    let source = Source::Sdk(Box::new(ClientFactory::static_sdk_config(
        &server.endpoint(),
        "us-east-1",
    )));
    let last_pass = {
        // After the soak, one more run with the faults gone and no deletions: what the next
        // scheduled run does first, reconciling deletes whose answers were lost.
        let mut c = config.clone();
        c.cleanup.max_deletions_per_run = 0;
        (c, source.clone())
    };
    let opts = Options {
        initial_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let daemon = Daemon::start(config, source, opts).await.unwrap();
    let base = format!("http://{}/metrics", daemon.addr);
    println!(
        "soak: {} against {} for {}",
        daemon.addr,
        server.endpoint(),
        humantime::format_duration(duration)
    );

    let started = Instant::now();
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let mut added = 0u64;
    let mut scrapes = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while started.elapsed() < duration {
        tick.tick().await;
        // New work keeps arriving: an expired token per organization per tick.
        for (org, user) in &orgs {
            added += 1;
            server
                .sim
                .mutate(Mutation::AddToken {
                    organization_id: org.clone(),
                    token_id: format!("soak-{added}"),
                    user_id: user.clone(),
                    name: "soak".into(),
                    created: now - chrono::Duration::days(400),
                    last_used: None,
                    expires: now - chrono::Duration::days(1),
                    scopes: vec!["IMAP".into()],
                })
                .unwrap();
        }
        // Scrape like Prometheus would.
        let body = scrape(&base).await;
        assert!(
            body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
            "scrape failed: {}",
            body.lines().next().unwrap_or_default()
        );
        scrapes += 1;
        if samples.len() < 1000 {
            samples.push((
                started.elapsed().as_secs_f64(),
                status_kib("VmRSS:"),
                open_fds(),
            ));
        }
    }
    daemon.stop().await;
    server.sim.set_faults(Faults::default());
    let reconciled =
        workmail_pat_monitor::app::once(last_pass.0, last_pass.1, Options::default(), None)
            .await
            .unwrap()
            .cleanup
            .map_or(0, |c| c.reconciled);
    let deleted = server.sim.deleted();
    server.stop().await;

    let lines = std::fs::read_to_string(&audit).unwrap_or_default();
    let records: Vec<Record> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is a whole JSON record"))
        .collect();
    let mut audited: HashMap<(String, String), usize> = HashMap::new();
    for r in records.iter().filter(|r| r.outcome == Action::Deleted) {
        *audited
            .entry((r.organization_id.clone(), r.token_id.clone()))
            .or_default() += 1;
    }
    let mut failures = Vec::new();
    for d in &deleted {
        match audited.get(&(d.organization_id.clone(), d.token_id.clone())) {
            Some(1) => {}
            Some(n) => failures.push(format!("{} audited {n} times", d.token_id)),
            None => failures.push(format!("{} deleted without an audit line", d.token_id)),
        }
    }
    if audited.len() != deleted.len() {
        failures.push(format!(
            "{} audited deletions but {} deletions",
            audited.len(),
            deleted.len()
        ));
    }

    // Flat: compare the second quarter (after warm-up) with the last samples.
    let quarter = samples.len() / 4;
    let warm = &samples[quarter.max(1).min(samples.len() - 1)];
    let last = samples.last().unwrap();
    let rss_growth_kib = last.1 as i64 - warm.1 as i64;
    let fd_growth = last.2 as i64 - warm.2 as i64;
    println!(
        "soak: {scrapes} scrapes, {added} tokens added, {} deleted, {} ledger lines, {} failed and {} unconfirmed deletes, {reconciled} reconciled after the run",
        deleted.len(),
        records.len(),
        records
            .iter()
            .filter(|r| r.outcome == Action::Failed)
            .count(),
        records
            .iter()
            .filter(|r| r.outcome == Action::Unconfirmed)
            .count(),
    );
    println!(
        "soak: RSS {} KiB at {:.0}s -> {} KiB at {:.0}s ({rss_growth_kib:+} KiB); open fds {} -> {} ({fd_growth:+})",
        warm.1, warm.0, last.1, last.0, warm.2, last.2
    );
    let curve: Vec<String> = [1, 2, 3, 4]
        .iter()
        .filter_map(|q| samples.get((samples.len() * q / 4).saturating_sub(1)))
        .map(|(t, rss, fds)| format!("{t:.0}s {} KiB {fds} fds", rss))
        .collect();
    println!("soak: by quarter: {}", curve.join(", "));
    if rss_growth_kib > 32 * 1024 {
        failures.push(format!("RSS grew by {rss_growth_kib} KiB"));
    }
    if fd_growth > 16 {
        failures.push(format!("open file descriptors grew by {fd_growth}"));
    }
    if deleted.is_empty() {
        failures.push("nothing was deleted: the soak exercised no cleanup".to_owned());
    }
    if failures.is_empty() {
        println!("soak: 1 passed, 0 failed");
    } else {
        for f in &failures {
            println!("soak: FAILED: {f}");
        }
        println!("soak: 0 passed, 1 failed");
        std::process::exit(1);
    }
}

async fn scrape(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}
