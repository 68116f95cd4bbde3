//! Admin-plane benchmark: the daemon (`run`) and the emulator (`sim`) as separate processes,
//! so that the daemon's memory is its own, at 10k and 100k tokens with per-token series. It
//! prints, per size: idle RSS per token; time to first byte and total time of one plain and
//! one gzip scrape of `/metrics`; the gzip size as a share of the plain one; the peak RSS that
//! 8 concurrent gzip scrapes add; and `/api/v1/tokens`' time and the peak RSS it adds.
//!
//! `cargo bench --bench admin` runs both sizes. Without `--bench` (as `cargo test
//! --all-targets` runs it) it runs one small size, so the benchmark itself stays tested.
//! Peaks come from `VmHWM`, reset through `/proc/PID/clear_refs` before each measurement
//! (Linux; where that is refused the peak is the process's whole life, and says so).
//! `WORKMAIL_PAT_BIN=PATH` measures another build of the binary (an older one, to compare).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary measured: this build's, unless `WORKMAIL_PAT_BIN` names another.
fn bin() -> String {
    std::env::var("WORKMAIL_PAT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_workmail-pat-monitor").to_owned())
}

/// A child process that is killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak RSS of `pid`; false where the kernel refuses.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

struct Reply {
    status: u16,
    first_byte: Duration,
    total: Duration,
    body_len: usize,
    body: Vec<u8>,
}

/// One GET on a fresh connection; the body is read to the end (Connection: close).
fn get(addr: &str, path: &str, gzip: bool, keep_body: bool) -> Reply {
    request(addr, "GET", path, gzip, keep_body)
}

/// One request without a body on a fresh connection.
fn request(addr: &str, method: &str, path: &str, gzip: bool, keep_body: bool) -> Reply {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let enc = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{enc}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    let first_byte = started.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let total = started.elapsed();
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut body = all[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        first_byte,
        total,
        body_len: body.len(),
        body: if keep_body { body } else { Vec::new() },
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
        rest = &rest[eol + 4 + n..];
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Starts the emulator and returns it with its endpoint.
fn start_sim(orgs: usize, users: usize, tokens: usize) -> (Proc, String) {
    let mut child = Command::new(bin())
        .args(["sim", "--listen", "127.0.0.1:0", "--seed", "42"])
        .args(["--organizations", &orgs.to_string()])
        .args(["--users", &users.to_string()])
        .args(["--tokens", &tokens.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let endpoint = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("the emulator did not print its endpoint: {line}"))
        .to_owned();
    // Keep reading its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Proc(child), endpoint)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn measure(orgs: usize, users: usize, tokens_per_org: usize) {
    let total_tokens = orgs * tokens_per_org;
    let (_sim, endpoint) = start_sim(orgs, users, tokens_per_org);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.toml");
    let text = |windows: &str| {
        format!(
            r#"[server]
listen = "{addr}"
enable_lifecycle = true
[scan]
interval = "1h"
page_size = 100
[metrics]
per_token = true
user_labels = ["user_name", "email"]
expiry_windows = [{windows}]
[discovery]
regions = ["us-east-1"]
[cleanup]
mode = "dry-run"
interval = "1h"
[[cleanup.rules]]
name = "expired"
expired_for = "7d"
[[cleanup.rules]]
name = "unused-180d"
unused_for = "180d"
"#
        )
    };
    std::fs::write(&config, text(r#""1d", "7d", "30d""#)).unwrap();
    let daemon = Proc(
        Command::new(bin())
            .args(["run", "--config"])
            .arg(&config)
            .env_clear()
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "the daemon was not ready within 10 minutes"
        );
        if TcpStream::connect(&addr).is_ok() && get(&addr, "/readyz", false, false).status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // One scrape first, so that whatever a first scrape sets up is in place; then idle.
    let warm = get(&addr, "/metrics", true, false);
    assert_eq!(warm.status, 200);
    std::thread::sleep(Duration::from_secs(3));
    let idle_kib = status_kib(pid, "VmRSS:");
    println!(
        "{total_tokens} tokens ({orgs} organizations x {tokens_per_org}): idle RSS {} MiB = {:.2} KiB per token; peak so far (first scan, render, a scrape) {} MiB",
        idle_kib / 1024,
        idle_kib as f64 / total_tokens as f64,
        status_kib(pid, "VmHWM:") / 1024
    );

    let plain = get(&addr, "/metrics", false, false);
    let gzip = get(&addr, "/metrics", true, true);
    assert_eq!((plain.status, gzip.status), (200, 200));
    let mut decoded = Vec::new();
    flate2::read::MultiGzDecoder::new(&gzip.body[..])
        .read_to_end(&mut decoded)
        .map_err(|e| format!("the gzip scrape did not decode: {e}"))
        .unwrap_or_else(|e| {
            // An identity answer to a gzip request also decodes to nothing: say which.
            println!("  {e} ({} bytes received)", gzip.body_len);
            0
        });
    println!(
        "  /metrics plain: {} bytes, first byte {}, total {}",
        plain.body_len,
        ms(plain.first_byte),
        ms(plain.total)
    );
    println!(
        "  /metrics gzip: {} bytes ({:.1}% of plain; decodes to {} bytes), first byte {}, total {}",
        gzip.body_len,
        100.0 * gzip.body_len as f64 / plain.body_len.max(1) as f64,
        decoded.len(),
        ms(gzip.first_byte),
        ms(gzip.total)
    );

    let exact = reset_peak(pid);
    let before = status_kib(pid, "VmRSS:");
    let started = Instant::now();
    let scrapes: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || get(&addr, "/metrics", true, false))
        })
        .collect();
    let slowest = scrapes
        .into_iter()
        .map(|h| h.join().unwrap())
        .inspect(|r| assert_eq!(r.status, 200))
        .map(|r| r.total)
        .max()
        .unwrap();
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "  8 concurrent gzip scrapes: {} in all (slowest {}), peak RSS +{} MiB{}",
        ms(started.elapsed()),
        ms(slowest),
        peak.saturating_sub(before) / 1024,
        if exact {
            ""
        } else {
            " (clear_refs refused: peak of the whole run)"
        }
    );

    let exact = reset_peak(pid);
    let before = status_kib(pid, "VmRSS:");
    let api = get(&addr, "/api/v1/tokens", false, false);
    assert_eq!(api.status, 200);
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "  /api/v1/tokens: {} bytes, first byte {}, total {}, peak RSS +{} MiB{}",
        api.body_len,
        ms(api.first_byte),
        ms(api.total),
        peak.saturating_sub(before) / 1024,
        if exact { "" } else { " (whole run)" }
    );
    let api_gz = get(&addr, "/api/v1/tokens", true, false);
    println!(
        "  /api/v1/tokens gzip: {} bytes, total {}",
        api_gz.body_len,
        ms(api_gz.total)
    );

    // A reload that changes the windows: every kept inventory is measured and planned again
    // (in the request), then /metrics is rendered again.
    std::fs::write(&config, text(r#""1d", "7d", "30d", "90d""#)).unwrap();
    let exact = reset_peak(pid);
    let before = status_kib(pid, "VmRSS:");
    let started = Instant::now();
    let reload = request(&addr, "POST", "/-/reload", false, false);
    assert_eq!(reload.status, 200);
    let answered = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "/metrics never showed the reloaded windows"
        );
        let m = get(&addr, "/metrics", false, true);
        if String::from_utf8_lossy(&m.body).contains("within=\"90d\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "  POST /-/reload (new expiry windows): answered in {}, /metrics shows them after {}, peak RSS +{} MiB{}",
        ms(answered),
        ms(started.elapsed()),
        status_kib(pid, "VmHWM:").saturating_sub(before) / 1024,
        if exact { "" } else { " (whole run)" }
    );
    println!("  after: RSS {} MiB", status_kib(pid, "VmRSS:") / 1024);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    println!(
        "admin benchmark{}",
        if full {
            ""
        } else {
            " (smoke size; `cargo bench --bench admin` for 10k and 100k tokens)"
        }
    );
    if full {
        measure(5, 500, 2_000);
        measure(5, 5_000, 20_000);
    } else {
        measure(2, 50, 100);
    }
}
