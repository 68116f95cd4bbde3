//! A real Prometheus against the daemon: every dashboard expression and recording rule
//! returns data, the seeded expiring token's alert is pending or firing, and
//! `promtool check metrics` finds nothing in `/metrics`.
//!
//! Needs `prometheus` and `promtool` on PATH. Without them the test says loudly that it
//! skipped, unless `WORKMAIL_PAT_REQUIRE_PROMETHEUS=1` (set by `.ci/run`) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use workmail_pat_monitor::app::{Daemon, Options};
use workmail_pat_monitor::cli::{DEMO_CONFIG, demo_sim};
use workmail_pat_monitor::config::Config;

use crate::support::*;

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The tools, or `None` after saying loudly why the test is skipped.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (which("prometheus"), which("promtool")) {
        (Some(p), Some(t)) => Some((p, t)),
        _ => {
            assert!(
                std::env::var_os("WORKMAIL_PAT_REQUIRE_PROMETHEUS").is_none(),
                "prometheus/promtool not on PATH but WORKMAIL_PAT_REQUIRE_PROMETHEUS is set"
            );
            eprintln!(
                "SKIPPED: the real-Prometheus test needs prometheus and promtool on PATH \
                 (apt-get install prometheus); set WORKMAIL_PAT_REQUIRE_PROMETHEUS=1 to require them"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn query(base: &str, expr: &str) -> Value {
    let (status, body) = http_get(&format!("{base}/api/v1/query?query={}", urlencode(expr))).await;
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "query {expr:?} failed: {body}");
    v
}

/// Polls Prometheus until `check` holds, for at most a minute: Prometheus scrapes and
/// evaluates on its own schedule, so its state can only be observed, not awaited.
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    wait_for_async(what, Duration::from_secs(60), check).await;
}

fn dashboard_exprs(path: &Path) -> Vec<(String, String)> {
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![&dash["panels"]];
    while let Some(panels) = stack.pop() {
        for p in panels.as_array().into_iter().flatten() {
            stack.push(&p["panels"]);
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or("?").to_owned(), e.to_owned()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_evaluates_and_alerts() {
    let Some((prometheus, promtool)) = tools() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let server = demo_sim(7)
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut config = Config::parse(DEMO_CONFIG, "config/demo.toml").unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let opts = Options {
        initial_backoff: Duration::from_millis(20),
        ..Default::default()
    };
    let daemon = Daemon::start(config, source(&server), opts).await.unwrap();
    wait_ready(daemon.addr).await;

    // promtool's linter on the exposition.
    let (_, metrics) = http_get(&format!("http://{}/metrics", daemon.addr)).await;
    let mut lint = tokio::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = lint.stdin.take().unwrap();
        stdin.write_all(metrics.as_bytes()).await.unwrap();
    }
    let lint = within("promtool check metrics", DEADLINE, lint.wait_with_output())
        .await
        .unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        lint.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {findings}"
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rules = root.join("config/prometheus/rules.yml");
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules:?}\nscrape_configs:\n  - job_name: workmail-pat-monitor\n    static_configs:\n      - targets: [\"{}\"]\n",
        daemon.addr
    );
    std::fs::write(dir.path().join("prometheus.yml"), prom_config).unwrap();
    let mut prom = tokio::process::Command::new(&prometheus)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");

    // Prometheus accepts connections before it is ready (its API answers 503 while the
    // TSDB opens): wait for /-/ready, then for at least three scrapes, so rates over the
    // last seconds have data.
    eventually("prometheus to be ready", async || {
        let up = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        up && http_get(&format!("{base}/-/ready")).await.0 == 200
    })
    .await;
    eventually("three scrapes", async || {
        query(
            &base,
            "count_over_time(up{job=\"workmail-pat-monitor\"}[1m]) >= 3",
        )
        .await["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;

    let mut empty = Vec::new();
    for (panel, expr) in dashboard_exprs(&root.join("dashboards/workmail-pat-overview.json")) {
        let e = expr
            .replace("$organization", ".*")
            .replace("$account", ".*")
            .replace("$region", ".*")
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m");
        let v = query(&base, &e).await;
        assert_eq!(v["status"], "success", "panel {panel:?}: {e}: {v}");
        if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            empty.push(format!("{panel}: {e}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );

    let rules_text = std::fs::read_to_string(&rules).unwrap();
    let records: Vec<&str> = rules_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(str::trim)
        .collect();
    assert!(!records.is_empty());
    eventually("recording rules", async || {
        let mut all = true;
        for r in &records {
            all &= query(&base, r).await["data"]["result"]
                .as_array()
                .is_some_and(|x| !x.is_empty());
        }
        all
    })
    .await;

    // The demo data has tokens expiring within a day: their alert is pending (or firing).
    eventually("the expiring-token alert", async || {
        let (_, body) = http_get(&format!("{base}/api/v1/alerts")).await;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["alerts"].as_array().is_some_and(|alerts| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == "WorkMailPatExpiringCritical"
                    && matches!(a["state"].as_str(), Some("pending" | "firing"))
                    && a["labels"]["token_id"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty())
            })
        })
    })
    .await;

    let _ = prom.kill().await;
    daemon.stop().await;
    server.stop().await;
}
