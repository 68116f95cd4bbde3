//! The admin plane under load and neglect: `/metrics` rendered once per snapshot and served
//! gzip-compressed or streamed; slow, idle and non-reading clients cut off without starving
//! a scrape or a probe; a log reader that stops reading costs log lines, never the daemon.

use std::io::Read as _;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use workmail_pat_monitor::app::{Daemon, Options};
use workmail_pat_monitor::httpd::ServeOptions;
use workmail_pat_monitor::ledger::Action;
use workmail_pat_monitor::sim::Mutation;
use workmail_pat_monitor::sim::world::{GenSpec, generate};

use crate::monitor::{BASIC, CORP, base_config};
use crate::support::*;

/// A GET on a fresh connection: (head, lower-cased; body, dechunked, not decoded).
async fn fetch(addr: std::net::SocketAddr, path: &str, gzip: bool) -> (String, Vec<u8>) {
    let headers: &[(&str, &str)] = if gzip {
        &[("Accept-Encoding", "gzip")]
    } else {
        &[]
    };
    let r = request(&addr.to_string(), "GET", path, headers, b"").await;
    (r.head.to_ascii_lowercase(), r.body)
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    // A single member: the kept part and the live part are one gzip stream.
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// The lines of an exposition without the process metrics, which change from one scrape to
/// the next (CPU time, memory).
fn without_process(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.contains(" process_") && !l.starts_with("process_"))
        .collect()
}

async fn daemon(
    config: workmail_pat_monitor::config::Config,
    server: &workmail_pat_monitor::sim::SimServer,
    http: ServeOptions,
) -> Daemon {
    let (opts, _) = options();
    let opts = Options { http, ..opts };
    let daemon = Daemon::start(config, source(server), opts).await.unwrap();
    wait_ready(daemon.addr).await;
    daemon
}

#[tokio::test]
async fn a_gzip_scrape_is_the_plain_scrape_compressed_and_follows_every_publish() {
    let server = start_scenario(BASIC).await;
    let mut config = base_config("");
    config.scan.interval = Duration::from_secs(1);
    let d = daemon(config, &server, ServeOptions::default()).await;

    let (head, gz) = fetch(d.addr, "/metrics", true).await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let (plain_head, plain) = fetch(d.addr, "/metrics", false).await;
    assert!(!plain_head.contains("content-encoding"), "{plain_head}");
    let plain = String::from_utf8(plain).unwrap();
    let decoded = gunzip(&gz);
    assert!(decoded.contains("workmail_pat_token_info{"), "{decoded}");
    assert_eq!(without_process(&decoded), without_process(&plain));

    // A scan publishes a change: the next scrape shows it (the kept part was re-rendered).
    server
        .sim
        .mutate(Mutation::AddToken {
            organization_id: CORP.to_owned(),
            token_id: "t9-new".to_owned(),
            user_id: "11111111-1111-1111-1111-111111111111".to_owned(),
            name: "new laptop".to_owned(),
            created: now(),
            last_used: None,
            expires: now() + chrono::Duration::days(300),
            scopes: vec!["IMAP".to_owned()],
        })
        .unwrap();
    wait_for_async("the new token in a gzip scrape", DEADLINE, async || {
        gunzip(&fetch(d.addr, "/metrics", true).await.1).contains("token_id=\"t9-new\"")
    })
    .await;

    // Counters are live between renders: one counted now shows in the next scrape, while the
    // kept part stays the one rendered for the last publish.
    let before = sample(
        &gunzip(&fetch(d.addr, "/metrics", true).await.1),
        "workmail_pat_cleanup_actions_total",
        &["rule=\"live-test\""],
    );
    assert_eq!(before, None);
    d.ctx
        .metrics
        .cleanup_action(CORP, "corp", "live-test", Action::WouldDelete);
    let after = gunzip(&fetch(d.addr, "/metrics", true).await.1);
    assert_eq!(
        sample(
            &after,
            "workmail_pat_cleanup_actions_total",
            &["rule=\"live-test\""]
        ),
        Some(1.0)
    );
    for family in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "workmail_pat_http_connections",
    ] {
        assert!(sample(&after, family, &[]).is_some(), "{family}");
    }
    let build = after
        .lines()
        .find(|l| l.starts_with("workmail_pat_monitor_build_info{"))
        .unwrap();
    assert!(
        build.contains("revision=\"") && build.contains("rustc=\"1."),
        "{build}"
    );

    // The tokens API and the status page are kept the same way.
    let (head, api) = fetch(d.addr, "/api/v1/tokens", true).await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let api: serde_json::Value = serde_json::from_str(&gunzip(&api)).unwrap();
    let (_, api_plain) = fetch(d.addr, "/api/v1/tokens", false).await;
    let api_plain: serde_json::Value = serde_json::from_slice(&api_plain).unwrap();
    assert_eq!(api, api_plain);
    assert!(
        api["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["token_id"] == "t9-new")
    );
    d.stop().await;
}

#[tokio::test]
async fn the_tokens_api_is_the_report_as_json() {
    let server = start_scenario(BASIC).await;
    let config = base_config(
        "[cleanup]\nmode = \"dry-run\"\nexclude_tokens = [\"break-glass*\"]\n[[cleanup.rules]]\nname = \"unused-90d\"\nunused_for = \"90d\"\n",
    );
    let (out, _) = once(&server, config).await;
    let ctx = &out.ctx;
    let snapshot = ctx.shared.snapshot();
    let mut streamed = Vec::new();
    workmail_pat_monitor::report::write_json(&ctx.config(), &snapshot, now(), &mut streamed)
        .unwrap();
    let streamed: serde_json::Value = serde_json::from_slice(&streamed).unwrap();
    let built = serde_json::to_value(workmail_pat_monitor::report::build(
        &ctx.config(),
        &snapshot,
        now(),
    ))
    .unwrap();
    assert_eq!(streamed, built);
    assert_eq!(built["tokens"].as_array().unwrap().len(), 7);
}

/// An organization large enough that its plain `/metrics` fills any socket buffer.
fn big_world() -> workmail_pat_monitor::sim::World {
    generate(&GenSpec {
        seed: 5,
        organizations: 1,
        users_per_org: 500,
        tokens_per_org: Some(8_000),
        inactive_organization: false,
        now: now(),
    })
}

#[tokio::test]
async fn idle_slow_and_non_reading_clients_do_not_starve_a_scrape_or_a_probe() {
    const SLOW_LORIS: usize = 300;
    const NON_READING: usize = 64;
    let server = start_sim(big_world(), Default::default()).await;
    let config = config(
        "[server]\nlisten = \"127.0.0.1:0\"\n[scan]\ninterval = \"1h\"\n[metrics]\nuser_labels = [\"user_name\", \"email\"]\n[discovery]\nregions = [\"us-east-1\"]\n",
    );
    // Long enough to connect every client first on a loaded machine, short enough to wait
    // for the server to cut them off.
    let limits = ServeOptions {
        header_read_timeout: Duration::from_secs(8),
        write_timeout: Duration::from_secs(8),
        ..Default::default()
    };
    let d = daemon(config, &server, limits).await;
    let baseline = d.connections.open();

    // Slow-loris: request heads that never end.
    let mut held = Vec::new();
    for _ in 0..SLOW_LORIS {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(s);
    }
    // Clients that ask for the whole plain exposition and never read a byte of it, with
    // small receive buffers so that the server's writes stall at once.
    for _ in 0..NON_READING {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(d.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    wait_for(
        "the server to hold every abusive connection",
        DEADLINE,
        || d.connections.open() >= baseline + SLOW_LORIS + NON_READING,
    )
    .await;

    // A probe and a real scrape are answered at once all the same.
    for (path, gzip) in [("/healthz", false), ("/metrics", true), ("/healthz", false)] {
        let started = std::time::Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(1), fetch(d.addr, path, gzip))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{path} not answered within 1 s with {} connections open",
                    d.connections.open()
                )
            });
        assert!(
            answered.0.starts_with("http/1.1 200"),
            "{path}: {}",
            answered.0
        );
        println!("{path} answered in {:?}", started.elapsed());
    }

    // The server cuts them all off by itself (header-read and write timeouts), with the
    // clients still holding their ends open.
    wait_for(
        "the server to close every slow and non-reading connection",
        DEADLINE,
        || d.connections.open() == baseline,
    )
    .await;
    drop(held);
    d.stop().await;
}

#[tokio::test]
async fn a_log_reader_that_stops_reading_costs_log_lines_not_the_daemon() {
    let server = start_sim(
        generate(&GenSpec {
            seed: 3,
            organizations: 2,
            users_per_org: 50,
            tokens_per_org: None,
            inactive_organization: false,
            now: now(),
        }),
        Default::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\n[scan]\ninterval = \"1s\"\n\
             [discovery]\nregions = [\"us-east-1\"]\n\
             [cleanup]\nmode = \"dry-run\"\ninterval = \"1s\"\n\
             [[cleanup.rules]]\nname = \"unused-90d\"\nunused_for = \"90d\"\n"
        ),
    )
    .unwrap();
    // Trace logs (every SDK request, every connection, every cleanup decision) fill a pipe and
    // the log writer's buffer within seconds; nobody ever reads this pipe.
    let mut child = bin_against(&server)
        .args(["--log-level", "trace", "run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(addr).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut answered = 0;
    while tokio::time::Instant::now() < until {
        for path in ["/healthz", "/metrics"] {
            let (status, _) = tokio::time::timeout(
                Duration::from_secs(5),
                http_get(&format!("http://{addr}{path}")),
            )
            .await
            .unwrap_or_else(|_| panic!("{path} not answered within 5 s while stderr is not read"));
            assert_eq!(status, 200, "{path}");
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, metrics) = http_get(&format!("http://{addr}/metrics")).await;
    let dropped = sample(&metrics, "workmail_pat_log_lines_dropped_total", &[]).unwrap();
    assert!(
        dropped > 0.0,
        "no log line was dropped: the pipe never filled?"
    );
    println!("{answered} answers in 30 s; {dropped} log lines dropped");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_second_signal_during_the_drain_exits_at_once_with_130() {
    let server = start_scenario(BASIC).await;
    // The cleanup run's delete is carried out but answered only much later: the drain
    // would wait for it.
    server.sim.set_op_faults(
        "DeletePersonalAccessToken",
        workmail_pat_monitor::sim::OpFaults {
            late_answer_ms: Some(600_000),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\n[scan]\ncall_timeout = \"5m\"\nmax_attempts = 1\n\
             [[organizations]]\nid = \"{CORP}\"\nregion = \"us-east-1\"\n\
             [cleanup]\nmode = \"enforce\"\nmax_deletions_percent = 100\naudit_log = {:?}\n\
             [[cleanup.rules]]\nname = \"expired\"\nexpired_for = \"1d\"\n",
            dir.path().join("ledger.jsonl").display().to_string()
        ),
    )
    .unwrap();
    let child = bin_against(&server)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    wait_for(
        "the cleanup run's delete to reach the emulator",
        DEADLINE,
        || server.sim.calls().count("DeletePersonalAccessToken") > 0,
    )
    .await;
    let term = || async {
        let out = output_of(
            "kill -TERM",
            tokio::process::Command::new("kill").args(["-TERM", &pid]),
        )
        .await;
        assert!(out.status.success());
    };
    term().await;
    // The first signal starts the drain: not ready any more, still serving.
    wait_for_async(
        "/readyz to answer 503 during the drain",
        DEADLINE,
        async || http_get(&format!("http://{addr}/readyz")).await.0 == 503,
    )
    .await;
    term().await;
    let out = within(
        "the daemon to exit on the second signal",
        DEADLINE,
        child.wait_with_output(),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("second signal: exiting now, abandoning the drain"),
        "{stderr}"
    );
}
