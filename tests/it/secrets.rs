//! Credentials never reach the logs: the binary at `trace` level, with a secret key and a
//! session token in the environment, scans through the emulator and runs a dry-run cleanup;
//! neither value, nor a request signature, appears in what it writes.

use crate::monitor::{BASIC, CORP};
use crate::support::*;

#[tokio::test]
async fn secrets_never_reach_the_logs_even_at_trace_level() {
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[[organizations]]\nid = \"{CORP}\"\nalias = \"corp\"\n[cleanup]\nmode = \"dry-run\"\n\
             [[cleanup.rules]]\nname = \"expired\"\nexpired_for = \"1d\"\n"
        ),
    )
    .unwrap();
    let secret = "SeCrEt-KeY-that-must-not-leak-0123456789";
    let session = "SeSsIoN-ToKeN-that-must-not-leak-9876543210";
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor"));
    cmd.args([
        "--log-level",
        "trace",
        "--log-format",
        "json",
        "once",
        "--config",
    ])
    .arg(&path)
    .env("AWS_ENDPOINT_URL", server.endpoint())
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
    .env("AWS_SECRET_ACCESS_KEY", secret)
    .env("AWS_SESSION_TOKEN", session)
    .env_remove("AWS_PROFILE");
    let out = output_of("the binary", &mut cmd).await;
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The run did real work (so the logs had something to leak).
    assert!(
        logs.contains("cleanup decision"),
        "{}",
        &logs[..logs.len().min(2000)]
    );
    assert!(server.sim.calls().count("ListPersonalAccessTokens") >= 1);
    for (what, needle) in [
        ("secret key", secret),
        ("session token", session),
        ("signature", "Signature="),
    ] {
        assert!(!logs.contains(needle), "the {what} appears in the logs");
    }
}
