//! The cleanup ledger: an intent is synced before every delete and an outcome after it, so
//! that a deletion the service carried out always ends with exactly one final `deleted`
//! record, whatever was killed or timed out in between; one writer at a time; a daily budget
//! that holds across processes; exclusions that fail closed when the API omits what they need.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use workmail_pat_monitor::sim::OpFaults;

use crate::monitor::{BASIC, CORP};
use crate::support::*;

/// One organization, one user, eight tokens unused for 300 days.
fn stale_scenario() -> String {
    let mut s = format!(
        "[[organizations]]\nid = \"{CORP}\"\nalias = \"corp\"\n\
         [[organizations.users]]\nid = \"11111111-1111-1111-1111-111111111111\"\nname = \"alice\"\n"
    );
    for i in 1..=8 {
        s.push_str(&format!(
            "[[organizations.tokens]]\nid = \"stale-{i}\"\nuser_id = \"11111111-1111-1111-1111-111111111111\"\n\
             name = \"old client {i}\"\ncreated = \"now-400d\"\nlast_used = \"now-300d\"\nexpires = \"now+30d\"\n"
        ));
    }
    s
}

/// A config file for the binary: corp in us-east-1, enforce, one rule, a ledger.
fn write_config(dir: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let ledger = dir.join("ledger.jsonl");
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[scan]\ncall_timeout = \"2s\"\nmax_attempts = 1\n\
             [[organizations]]\nid = \"{CORP}\"\nalias = \"corp\"\nregion = \"us-east-1\"\n\
             [cleanup]\nmode = \"enforce\"\nmax_deletions_percent = 100\naudit_log = {:?}\n{extra}\n\
             [[cleanup.rules]]\nname = \"unused-180d\"\nunused_for = \"180d\"\n",
            ledger.display().to_string()
        ),
    )
    .unwrap();
    (path, ledger)
}

fn records(ledger: &Path) -> Vec<Value> {
    std::fs::read_to_string(ledger)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Records of one token, as `outcome` values in file order.
fn outcomes(recs: &[Value], token: &str) -> Vec<String> {
    recs.iter()
        .filter(|r| r["token_id"] == token)
        .map(|r| r["outcome"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn count(outcomes: &[String], what: &str) -> usize {
    outcomes.iter().filter(|o| *o == what).count()
}

async fn run_once(server: &workmail_pat_monitor::sim::SimServer, config: &Path) -> (i32, String) {
    let out = output_of(
        "the binary",
        bin_against(server).args(["once", "--config"]).arg(config),
    )
    .await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[tokio::test]
async fn a_deletion_killed_before_its_answer_ends_with_exactly_one_deleted_record() {
    let server = start_scenario(&stale_scenario()).await;
    // The service carries the delete out, and its answer never comes back in time.
    server.sim.set_op_faults(
        "DeletePersonalAccessToken",
        OpFaults {
            late_answer_ms: Some(120_000),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, ledger) = write_config(dir.path(), "max_deletions_per_run = 1");
    let mut child = bin_against(&server)
        .args(["once", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the emulator to apply the first deletion",
        Duration::from_secs(30),
        || !server.sim.deleted().is_empty(),
    )
    .await;
    child.kill().await.unwrap(); // SIGKILL: no chance to write anything more.
    let gone = server.sim.deleted()[0].token_id.clone();

    server
        .sim
        .set_op_faults("DeletePersonalAccessToken", OpFaults::default());
    let (code, out) = run_once(&server, &config).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 earlier delete intent(s) reconciled"),
        "{out}"
    );
    let recs = records(&ledger);
    let o = outcomes(&recs, &gone);
    assert_eq!(count(&o, "deleted"), 1, "{gone}: {o:?}");
    assert_eq!(count(&o, "intent"), 1, "{gone}: {o:?}");
    let last = recs
        .iter()
        .rfind(|r| r["token_id"] == gone.as_str())
        .unwrap();
    assert_eq!(last["outcome"], "deleted");
    assert_eq!(last["reconciled"], true, "{last}");
    // The second run deleted one more token, each once.
    let deleted = server.sim.deleted();
    assert_eq!(deleted.len(), 2);
    for d in &deleted {
        assert_eq!(count(&outcomes(&recs, &d.token_id), "deleted"), 1, "{d:?}");
    }
}

#[tokio::test]
async fn a_timed_out_delete_is_unconfirmed_then_reconciled_as_deleted() {
    let server = start_scenario(&stale_scenario()).await;
    server.sim.set_op_faults(
        "DeletePersonalAccessToken",
        OpFaults {
            late_answer_ms: Some(5_000),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, ledger) = write_config(dir.path(), "max_deletions_per_run = 1");
    let (code, out) = run_once(&server, &config).await;
    assert_eq!(code, 1, "an unconfirmed delete fails the run: {out}");
    let gone = server.sim.deleted()[0].token_id.clone();
    let o = outcomes(&records(&ledger), &gone);
    assert_eq!(o, ["intent", "unconfirmed"], "never `failed`: {o:?}");

    server
        .sim
        .set_op_faults("DeletePersonalAccessToken", OpFaults::default());
    let (code, out) = run_once(&server, &config).await;
    assert_eq!(code, 0, "{out}");
    let o = outcomes(&records(&ledger), &gone);
    assert_eq!(o, ["intent", "unconfirmed", "deleted"], "{o:?}");
}

#[tokio::test]
async fn concurrent_runs_delete_each_token_once_within_the_daily_budget() {
    let server = start_scenario(&stale_scenario()).await;
    // Slow deletes, so that the two runs overlap.
    server.sim.set_op_faults(
        "DeletePersonalAccessToken",
        OpFaults {
            late_answer_ms: Some(300),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, ledger) = write_config(
        dir.path(),
        "max_deletions_per_run = 2\nmax_deletions_per_day = 3",
    );
    let (a, b) = tokio::join!(run_once(&server, &config), run_once(&server, &config));
    // One of them may find the ledger locked: it deletes nothing and says who holds it.
    for (code, out) in [&a, &b] {
        if *code != 0 {
            assert_eq!(*code, 1, "{out}");
            assert!(out.contains("ledger.jsonl") && out.contains("pid"), "{out}");
        }
    }
    let (c, out) = run_once(&server, &config).await;
    assert_eq!(c, 0, "{out}");
    let deleted = server.sim.deleted();
    let calls = server.sim.calls().count("DeletePersonalAccessToken");
    assert_eq!(calls as usize, deleted.len(), "one call per deleted token");
    assert!(deleted.len() <= 3, "daily budget: {deleted:?}");
    assert_eq!(
        deleted.len(),
        3,
        "the budget is used, not more: {deleted:?}"
    );
    let recs = records(&ledger);
    let mut per_token: BTreeMap<String, usize> = BTreeMap::new();
    for r in recs.iter().filter(|r| r["outcome"] == "deleted") {
        *per_token
            .entry(r["token_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_token.len(), 3, "{per_token:?}");
    assert!(per_token.values().all(|n| *n == 1), "{per_token:?}");
    let held = recs
        .iter()
        .filter(|r| r["outcome"] == "skipped_limit")
        .filter(|r| {
            r["reason"]
                .as_str()
                .unwrap()
                .contains("max_deletions_per_day")
        })
        .count();
    assert!(held > 0, "the third run says the daily budget held it back");
}

/// corp's tokens, with `Name` left out of every answer that carries a token.
#[tokio::test]
async fn a_token_whose_name_the_api_omits_is_held_not_deleted() {
    let server = start_scenario(BASIC).await;
    for op in ["ListPersonalAccessTokens", "GetPersonalAccessTokenMetadata"] {
        server.sim.set_op_faults(
            op,
            OpFaults {
                omit_members: vec!["Name".to_owned()],
                ..Default::default()
            },
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (config, ledger) = write_config(dir.path(), "exclude_tokens = [\"break-glass*\"]");
    let (_, out) = run_once(&server, &config).await;
    // t6-break-glass (never used, created 200 days ago) and t4-expired both match the rule;
    // without a name, neither can be shown not to be a break-glass token.
    assert!(server.sim.deleted().is_empty(), "{out}");
    let recs = records(&ledger);
    for t in ["t6-break-glass", "t4-expired"] {
        let r = recs.iter().find(|r| r["token_id"] == t).unwrap();
        assert_eq!(r["outcome"], "excluded", "{r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("held: cannot evaluate exclusion exclude_tokens"),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_token_whose_owner_the_api_describes_without_name_or_email_is_held() {
    let server = start_scenario(
        &format!(
            "[[organizations]]\nid = \"{CORP}\"\nalias = \"corp\"\n\
             [[organizations.users]]\nid = \"11111111-1111-1111-1111-111111111111\"\nname = \"svc-backup\"\nemail = \"svc-backup@corp.example.com\"\n\
             [[organizations.users]]\nid = \"22222222-2222-2222-2222-222222222222\"\nname = \"alice\"\nemail = \"alice@corp.example.com\"\n\
             [[organizations.tokens]]\nid = \"svc-token\"\nuser_id = \"11111111-1111-1111-1111-111111111111\"\nname = \"backup job\"\ncreated = \"now-400d\"\nlast_used = \"now-300d\"\nexpires = \"now+30d\"\n\
             [[organizations.tokens]]\nid = \"alice-token\"\nuser_id = \"22222222-2222-2222-2222-222222222222\"\nname = \"laptop\"\ncreated = \"now-400d\"\nlast_used = \"now-300d\"\nexpires = \"now+30d\"\n"
        ),
    )
    .await;
    for op in ["DescribeUser", "ListUsers"] {
        server.sim.set_op_faults(
            op,
            OpFaults {
                omit_members: vec!["Name".to_owned(), "Email".to_owned()],
                ..Default::default()
            },
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (config, ledger) = write_config(dir.path(), "exclude_users = [\"svc-*\"]");
    let (_, out) = run_once(&server, &config).await;
    assert!(server.sim.deleted().is_empty(), "{out}");
    let recs = records(&ledger);
    for t in ["svc-token", "alice-token"] {
        let r = recs.iter().find(|r| r["token_id"] == t).unwrap();
        assert_eq!(r["outcome"], "excluded", "{r}");
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .starts_with("held: cannot evaluate exclusion exclude_users"),
            "{r}"
        );
    }
}

#[tokio::test]
async fn check_config_scan_reconciles_the_ledger_and_deletes_nothing() {
    let server = start_scenario(&stale_scenario()).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, ledger) = write_config(dir.path(), "");
    // An intent a crashed run left, for a token the service has deleted since.
    let intent = serde_json::json!({
        "timestamp": "2026-11-01T11:00:00Z", "mode": "enforce", "organization_id": CORP,
        "organization": "corp", "user_id": "11111111-1111-1111-1111-111111111111",
        "user_name": "alice", "user_email": null, "user_state": "ENABLED",
        "token_id": "stale-gone", "token_name": "gone", "token_created": null,
        "token_last_used": null, "token_expires": null, "rule": "unused-180d",
        "reason": "last used long ago", "outcome": "intent", "run_id": "crashed", "pid": 1
    });
    std::fs::write(&ledger, format!("{intent}\n")).unwrap();
    let mut cmd = bin_against(&server);
    cmd.args(["check-config", "--scan", "--config"])
        .arg(&config);
    let out = output_of("check-config --scan", &mut cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 open delete intent(s) reconciled, 0 still open"),
        "{stdout}"
    );
    let o = outcomes(&records(&ledger), "stale-gone");
    assert_eq!(o, ["intent", "deleted"], "{o:?}");
    assert!(server.sim.deleted().is_empty(), "it deletes nothing");
    assert_eq!(server.sim.calls().count("DeletePersonalAccessToken"), 0);
}
