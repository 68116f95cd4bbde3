//! `once --metrics-file`: a batch run's metrics, for node_exporter's textfile collector, so that
//! a failed deletion in a CronJob raises the same alert as one in the daemon.

use std::io::Read as _;

use workmail_pat_monitor::sim::{OpFaults, SimServer};

use crate::errors::{corp_config, write_config};
use crate::monitor::BASIC;
use crate::support::*;

fn enforce(ledger: &str) -> String {
    format!(
        "[cleanup]\nmode = \"enforce\"\nmax_deletions_percent = 100\naudit_log = {ledger:?}\n\
         [[cleanup.rules]]\nname = \"expired\"\nexpired_for = \"1d\"\n"
    )
}

/// An emulator that refuses every delete, and an enforce configuration of corp (in `dir`).
async fn refused_deletes() -> (SimServer, tempfile::TempDir, std::path::PathBuf) {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "DeletePersonalAccessToken",
        OpFaults {
            access_denied: true,
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &corp_config("us-east-1", &enforce(&scratch_file("ledger.jsonl"))),
    );
    (server, dir, config)
}

#[tokio::test]
async fn a_failed_deletion_reaches_the_textfile_which_replaces_the_old_one_whole() {
    let (server, dir, config) = refused_deletes().await;
    let textfiles = dir.path().join("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    let prom = textfiles.join("workmail_pat_cleanup.prom");
    let old = "# an earlier run\nworkmail_pat_old 1\n";
    std::fs::write(&prom, old).unwrap();
    // A reader that opened the file before the run (node_exporter in mid-read).
    let mut reader = std::fs::File::open(&prom).unwrap();

    let out = output_of(
        "once --metrics-file",
        bin_against(&server)
            .args(["once", "--config"])
            .arg(&config)
            .arg("--metrics-file")
            .arg(&prom),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed delete exits 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut seen = String::new();
    reader.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, old, "the old file was changed in place, not replaced");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.ends_with('\n'), "not a whole file:\n{text}");
    let failed = text
        .lines()
        .find(|l| {
            l.starts_with("workmail_pat_cleanup_actions_total{") && l.contains("action=\"failed\"")
        })
        .unwrap_or_else(|| panic!("no failed cleanup action in:\n{text}"));
    // One attempt per call (max_attempts = 1): every refused delete is one failure.
    let refused = server
        .sim
        .calls()
        .by_operation
        .get("DeletePersonalAccessToken")
        .copied()
        .unwrap_or(0);
    assert!(refused > 0, "no delete was tried");
    assert!(
        failed.ends_with(&format!(" {refused}")),
        "{refused} refused deletes, yet: {failed}"
    );
    assert!(
        text.contains("workmail_pat_organization_up{"),
        "no scan health in:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.contains("process_")),
        "process metrics would collide with node_exporter's own:\n{text}"
    );
    let left: Vec<_> = std::fs::read_dir(&textfiles)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![prom.file_name().unwrap().to_owned()],
        "temporary files left"
    );
}

#[tokio::test]
async fn an_unwritable_metrics_file_stops_the_run_before_anything_is_called() {
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &corp_config("us-east-1", &enforce(&scratch_file("ledger.jsonl"))),
    );
    let missing = dir.path().join("no-such-dir").join("workmail_pat.prom");
    let out = output_of(
        "once --metrics-file into a missing directory",
        bin_against(&server)
            .args(["once", "--config"])
            .arg(&config)
            .arg("--metrics-file")
            .arg(&missing),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-file {}", missing.display())),
        "the error does not name the file: {stderr}"
    );
    assert_eq!(
        server.sim.calls().by_operation.values().sum::<u64>(),
        0,
        "calls were made: {:?}",
        server.sim.calls()
    );
    assert!(server.sim.deleted().is_empty());
}

/// A real Prometheus Pushgateway (`apt-get install prometheus-pushgateway`), or `None` when it
/// is not installed and `WORKMAIL_PAT_REQUIRE_PUSHGATEWAY` is unset.
async fn pushgateway() -> Option<(tokio::process::Child, String)> {
    let bin = ["prometheus-pushgateway", "pushgateway"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(bin) = bin else {
        assert!(
            std::env::var_os("WORKMAIL_PAT_REQUIRE_PUSHGATEWAY").is_none(),
            "prometheus-pushgateway not on PATH but WORKMAIL_PAT_REQUIRE_PUSHGATEWAY is set"
        );
        eprintln!(
            "SKIPPED: the Pushgateway test needs prometheus-pushgateway on PATH \
             (apt-get install prometheus-pushgateway)"
        );
        return None;
    };
    let addr = free_addr();
    let child = tokio::process::Command::new(bin)
        .arg(format!("--web.listen-address={addr}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Pushgateway");
    let url = format!("http://{addr}");
    wait_for_async("the Pushgateway to listen", DEADLINE, async || {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    assert_eq!(http_get(&format!("{url}/-/ready")).await.0, 200);
    Some((child, url))
}

#[tokio::test]
async fn a_failed_deletion_is_pushed_to_a_real_pushgateway() {
    let Some((_gateway, url)) = pushgateway().await else {
        return;
    };
    let (server, _dir, config) = refused_deletes().await;
    let out = output_of(
        "once --push-gateway",
        bin_against(&server)
            .args(["once", "--config"])
            .arg(&config)
            .args(["--push-gateway", &url]),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed delete exits 1: {stderr}"
    );
    assert!(
        !stderr.contains("--push-gateway"),
        "the push failed: {stderr}"
    );

    // The Pushgateway accepted the exposition and serves it, grouped under our job.
    let (status, text) = http_get(&format!("{url}/metrics")).await;
    assert_eq!(status, 200);
    let failed = text
        .lines()
        .find(|l| {
            l.starts_with("workmail_pat_cleanup_actions_total{")
                && l.contains("action=\"failed\"")
                && l.contains("job=\"workmail-pat-monitor-once\"")
        })
        .unwrap_or_else(|| panic!("no pushed failure in:\n{text}"));
    let refused = server.sim.calls().by_operation["DeletePersonalAccessToken"];
    assert!(
        failed.ends_with(&format!(" {refused}")),
        "{refused} refused deletes, yet: {failed}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("process_") && l.contains("workmail-pat-monitor-once")),
        "process metrics were pushed"
    );
}

#[tokio::test]
async fn a_push_gateway_that_is_not_a_plain_http_url_is_refused_before_the_run() {
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &corp_config("us-east-1", ""));
    for (url, needle) in [
        ("https://pushgateway:9091", "https is not supported"),
        ("pushgateway:9091", "must start with http://"),
        ("http://pushgateway:9091/?x=1", "without a query"),
    ] {
        let out = output_of(
            "once with a bad --push-gateway",
            bin_against(&server)
                .args(["once", "--config"])
                .arg(&config)
                .args(["--push-gateway", url]),
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains(needle), "{url}: no {needle:?} in {stderr}");
    }
    assert_eq!(server.sim.calls().by_operation.values().sum::<u64>(), 0);
}
