//! Cleanup end to end: dry-run and enforce decide the same set, limits hold, nothing is
//! deleted on partial data or after a change, and the audit log matches the actions.

use std::collections::BTreeSet;

use tokio_util::sync::CancellationToken;
use workmail_pat_monitor::app::Context;
use workmail_pat_monitor::cleanup::Action;
use workmail_pat_monitor::config::Config;
use workmail_pat_monitor::ledger::{Ledger, Record};
use workmail_pat_monitor::sim::{Mutation, OpFaults};

use crate::monitor::{BASIC, CORP, base_config};
use crate::support::*;

fn cleanup_config(mode: &str, extra: &str) -> Config {
    // Enforce needs a ledger; tests that do not look at it get one of their own.
    let ledger = if extra.contains("audit_log") {
        String::new()
    } else {
        format!("audit_log = {:?}", scratch_file("ledger.jsonl"))
    };
    base_config(&format!(
        r#"
[cleanup]
mode = "{mode}"
{ledger}
max_deletions_per_run = 25
max_deletions_percent = 100
exclude_tokens = ["break-glass*"]
{extra}

[[cleanup.rules]]
name = "expired"
expired_for = "1d"

[[cleanup.rules]]
name = "owner-disabled"
owner_states = ["DISABLED", "DELETED"]

[[cleanup.rules]]
name = "unused-180d"
unused_for = "180d"
"#
    ))
}

/// The ledger a context's configuration names.
fn ledger_of(ctx: &Context) -> Ledger {
    Ledger::open(ctx.config().cleanup.audit_log.as_ref().unwrap()).unwrap()
}

/// (action, token id) pairs of the latest run of an organization.
fn actions(ctx: &Context, org: &str) -> BTreeSet<(String, String)> {
    ctx.shared
        .org(org)
        .and_then(|s| s.cleanup)
        .map(|run| {
            run.actions
                .iter()
                .map(|a| (a.action.as_str().to_owned(), a.token_id.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, t)| ((*a).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test]
async fn dry_run_reports_the_exact_set_and_deletes_nothing() {
    let server = start_scenario(BASIC).await;
    let (out, _) = once(&server, cleanup_config("dry-run", "")).await;
    assert!(server.sim.deleted().is_empty());
    assert_eq!(server.sim.calls().count("DeletePersonalAccessToken"), 0);
    assert_eq!(
        actions(&out.ctx, CORP),
        set(&[
            ("would_delete", "t4-expired"),
            ("would_delete", "t3-disabled-owner"),
            ("excluded", "t6-break-glass"),
        ])
    );
    let summary = out.cleanup.as_ref().unwrap();
    assert_eq!(summary.count(Action::WouldDelete), 2);
    assert_eq!(summary.count(Action::Excluded), 1);
    assert_eq!(summary.counts(), "would_delete=2 excluded=1");
    assert!(!summary.needs_attention() && summary.first_failure.is_none());
    let text = out.ctx.metrics.render(&out.ctx.shared);
    assert_eq!(
        sample(
            &text,
            "workmail_pat_cleanup_candidates",
            &[r#"organization="corp""#, r#"rule="expired""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_cleanup_candidates",
            &[r#"organization="corp""#, r#"rule="owner-disabled""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_cleanup_candidates",
            &[r#"organization="corp""#, r#"rule="unused-180d""#]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_cleanup_actions_total",
            &[
                r#"organization="corp""#,
                r#"action="would_delete""#,
                r#"rule="expired""#
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_token_deletion_eligible_timestamp_seconds",
            &[r#"token_id="t4-expired""#, r#"rule="expired""#]
        ),
        Some((now() - chrono::Duration::days(1)).timestamp() as f64)
    );
    assert!(
        sample(
            &text,
            "workmail_pat_cleanup_last_run_timestamp_seconds",
            &[r#"organization="corp""#]
        )
        .is_some()
    );
}

#[tokio::test]
async fn enforce_deletes_exactly_the_dry_run_set_and_audits_each_action() {
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let cfg = cleanup_config(
        "enforce",
        &format!("audit_log = {:?}", log.display().to_string()),
    );
    let (out, _) = once(&server, cfg).await;
    let deleted: BTreeSet<String> = server
        .sim
        .deleted()
        .into_iter()
        .map(|d| d.token_id)
        .collect();
    assert_eq!(
        deleted,
        ["t3-disabled-owner", "t4-expired"].map(String::from).into()
    );
    assert_eq!(
        actions(&out.ctx, CORP),
        set(&[
            ("deleted", "t4-expired"),
            ("deleted", "t3-disabled-owner"),
            ("excluded", "t6-break-glass"),
        ])
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every delete is preceded by its intent; every other line is one decision.
    for (i, r) in records.iter().enumerate() {
        if r.outcome == Action::Deleted {
            assert!(
                records[..i]
                    .iter()
                    .any(|p| p.outcome == Action::Intent && p.token_id == r.token_id),
                "{} deleted without an intent before it",
                r.token_id
            );
        }
    }
    let decisions: Vec<&Record> = records
        .iter()
        .filter(|r| r.outcome != Action::Intent)
        .collect();
    let audited: BTreeSet<(String, String)> = decisions
        .iter()
        .map(|r| (r.outcome.as_str().to_owned(), r.token_id.clone()))
        .collect();
    assert_eq!(decisions.len(), 3);
    assert_eq!(records.len(), 5, "and two intents");
    assert_eq!(audited, actions(&out.ctx, CORP));
    let t4 = records.iter().find(|r| r.token_id == "t4-expired").unwrap();
    assert_eq!(t4.mode, workmail_pat_monitor::config::CleanupMode::Enforce);
    assert_eq!(t4.rule, "expired");
    assert_eq!(t4.user_name.as_deref(), Some("carol"));
    assert_eq!(
        t4.user_state,
        workmail_pat_monitor::inventory::OwnerState::Deleted
    );
    assert!(t4.reason.contains("expired on"), "{}", t4.reason);
    let t3 = records
        .iter()
        .find(|r| r.token_id == "t3-disabled-owner" && r.outcome == Action::Deleted)
        .unwrap();
    assert_eq!(t3.rule, "owner-disabled");
    assert!(
        t3.reason.starts_with("owner is DISABLED since "),
        "{}",
        t3.reason
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[tokio::test]
async fn the_run_limit_stops_at_the_limit() {
    let server = start_scenario(BASIC).await;
    let mut cfg = cleanup_config("enforce", "");
    cfg.cleanup.max_deletions_per_run = 1;
    let (out, _) = once(&server, cfg).await;
    assert_eq!(server.sim.deleted().len(), 1);
    let a = actions(&out.ctx, CORP);
    assert_eq!(a.iter().filter(|(x, _)| x == "deleted").count(), 1);
    assert_eq!(a.iter().filter(|(x, _)| x == "skipped_limit").count(), 1);
}

#[tokio::test]
async fn the_percent_guard_deletes_nothing_in_the_organization() {
    let server = start_scenario(BASIC).await;
    let mut cfg = cleanup_config("enforce", "");
    // 2 candidates of 6 tokens is 33%: above 30, nothing goes; at 34, both do.
    cfg.cleanup.max_deletions_percent = 30.0;
    let (out, _) = once(&server, cfg).await;
    assert!(server.sim.deleted().is_empty());
    assert_eq!(
        actions(&out.ctx, CORP),
        set(&[
            ("skipped_limit", "t4-expired"),
            ("skipped_limit", "t3-disabled-owner"),
            ("excluded", "t6-break-glass"),
        ])
    );
    let server = start_scenario(BASIC).await;
    let mut cfg = cleanup_config("enforce", "");
    cfg.cleanup.max_deletions_percent = 34.0;
    let _ = once(&server, cfg).await;
    assert_eq!(server.sim.deleted().len(), 2);
}

#[tokio::test]
async fn a_failed_page_means_no_deletions_in_that_organization() {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            fail_pages: vec![2],
            ..Default::default()
        },
    );
    let mut cfg = cleanup_config("enforce", "");
    cfg.scan.max_attempts = 2;
    let (out, _) = once(&server, cfg).await;
    assert!(server.sim.deleted().is_empty());
    assert_eq!(server.sim.calls().count("DeletePersonalAccessToken"), 0);
    assert!(actions(&out.ctx, CORP).is_empty());
    let summary = out.cleanup.unwrap();
    assert!(summary.skipped_orgs.contains(&CORP.to_owned()));
}

#[tokio::test]
async fn a_token_used_between_scan_and_cleanup_survives() {
    let server = start_scenario(BASIC).await;
    let cfg = base_config(&format!(
        r#"
[cleanup]
mode = "enforce"
audit_log = {:?}
max_deletions_percent = 100
exclude_tokens = ["break-glass*"]
[[cleanup.rules]]
name = "unused-90d"
unused_for = "90d"
"#,
        scratch_file("ledger.jsonl")
    ));
    let (opts, _) = options();
    let ctx = Context::new(cfg, source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    for org in &orgs {
        let _ = ctx.scan_and_publish(org, None).await;
    }
    // Used after the scan, and another removed by its owner.
    server
        .sim
        .mutate(Mutation::MarkUsed {
            organization_id: CORP.to_owned(),
            token_id: "t3-disabled-owner".to_owned(),
            at: Some(now()),
        })
        .unwrap();
    server
        .sim
        .mutate(Mutation::RemoveToken {
            organization_id: CORP.to_owned(),
            token_id: "t4-expired".to_owned(),
        })
        .unwrap();
    let mut ledger = ledger_of(&ctx);
    let summary = ctx
        .cleanup(Some(&mut ledger), &CancellationToken::new())
        .await;
    assert!(server.sim.deleted().is_empty(), "{summary:?}");
    assert_eq!(
        actions(&ctx, CORP),
        set(&[
            ("skipped_changed", "t3-disabled-owner"),
            ("already_gone", "t4-expired"),
            ("excluded", "t6-break-glass"),
        ])
    );
}

#[tokio::test]
async fn an_owner_enabled_again_before_cleanup_keeps_the_token() {
    let server = start_scenario(BASIC).await;
    let (opts, _) = options();
    let ctx = Context::new(cleanup_config("enforce", ""), source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    for org in &orgs {
        let _ = ctx.scan_and_publish(org, None).await;
    }
    server
        .sim
        .mutate(Mutation::SetUserState {
            organization_id: CORP.to_owned(),
            user_id: "22222222-2222-2222-2222-222222222222".to_owned(),
            state: "ENABLED".to_owned(),
        })
        .unwrap();
    let mut ledger = ledger_of(&ctx);
    ctx.cleanup(Some(&mut ledger), &CancellationToken::new())
        .await;
    let deleted: Vec<String> = server
        .sim
        .deleted()
        .into_iter()
        .map(|d| d.token_id)
        .collect();
    assert_eq!(deleted, ["t4-expired"]);
    assert!(
        actions(&ctx, CORP)
            .contains(&("skipped_changed".to_owned(), "t3-disabled-owner".to_owned()))
    );
}

#[tokio::test]
async fn delete_failures_are_recorded_and_the_run_continues() {
    // A server error may have been carried out (its outcome is unknown); a refusal was not.
    let server_error = OpFaults {
        internal_error_rate: 1.0,
        ..Default::default()
    };
    let refusal = OpFaults {
        access_denied: true,
        ..Default::default()
    };
    for (fault, want, attempts) in [(server_error, "unconfirmed", 4), (refusal, "failed", 2)] {
        let server = start_scenario(BASIC).await;
        server.sim.set_op_faults("DeletePersonalAccessToken", fault);
        let mut cfg = cleanup_config("enforce", "");
        cfg.scan.max_attempts = 2;
        let (out, _) = once(&server, cfg).await;
        assert!(server.sim.deleted().is_empty());
        let a = actions(&out.ctx, CORP);
        assert_eq!(
            a.iter().filter(|(x, _)| x == want).count(),
            2,
            "{want}: {a:?}"
        );
        let summary = out.cleanup.as_ref().unwrap();
        assert!(summary.needs_attention(), "{want}: {summary:?}");
        // The run's summary line names its first failure (not the exclusion recorded first).
        let first = summary.first_failure.as_deref().unwrap();
        assert!(first.starts_with(&format!("{want} ")), "{want}: {first}");
        if want == "failed" {
            // A refusal's reason says what to do about it.
            assert!(
                first.contains("; hint: the identity is not allowed workmail:DeletePersonalAccessToken: attach config/iam-policy-cleanup.json"),
                "{first}"
            );
        }
        // Two attempts per token for a 500 (the SDK retried it once); a 4xx is final.
        assert_eq!(
            server.sim.calls().count("DeletePersonalAccessToken"),
            attempts,
            "{want}"
        );
    }
}

#[tokio::test]
async fn per_organization_mode_arms_one_organization_at_a_time() {
    let server = start_scenario(BASIC).await;
    let mut cfg = cleanup_config("dry-run", "");
    cfg.organizations[1].cleanup.mode = Some(workmail_pat_monitor::config::CleanupMode::Enforce);
    let (out, _) = once(&server, cfg).await;
    // corp stays in dry-run; labs (armed) has nothing eligible.
    assert!(server.sim.deleted().is_empty());
    assert!(actions(&out.ctx, CORP).iter().all(|(a, _)| a != "deleted"));
}

#[tokio::test]
async fn shutdown_finishes_the_token_in_hand_and_stops() {
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let cfg = cleanup_config(
        "enforce",
        &format!("audit_log = {:?}", log.display().to_string()),
    );
    let (opts, _) = options();
    let ctx = Context::new(cfg.clone(), source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    for org in &orgs {
        let _ = ctx.scan_and_publish(org, None).await;
    }
    // Each delete takes a while; shutdown arrives while the first one is in flight.
    server.sim.set_op_faults(
        "DeletePersonalAccessToken",
        OpFaults {
            latency_ms: 300,
            ..Default::default()
        },
    );
    let stop = CancellationToken::new();
    let run = {
        let ctx = ctx.clone();
        let stop = stop.clone();
        let mut ledger = Ledger::open(&log).unwrap();
        tokio::spawn(async move { ctx.cleanup(Some(&mut ledger), &stop).await })
    };
    // The emulator counts a call when it arrives, before its latency: cancel then.
    wait_for(
        "the first DeletePersonalAccessToken to arrive",
        DEADLINE,
        || server.sim.calls().count("DeletePersonalAccessToken") > 0,
    )
    .await;
    stop.cancel();
    let summary = within("the cleanup run to stop", DEADLINE, run)
        .await
        .unwrap();
    assert_eq!(summary.aborted.as_deref(), Some("shutdown"));
    assert_eq!(
        server.sim.deleted().len(),
        1,
        "the token in hand is finished"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let deleted_lines = text
        .lines()
        .filter(|l| l.contains("\"outcome\":\"deleted\""))
        .count();
    assert_eq!(deleted_lines, 1, "and audited: {text}");
}

#[tokio::test]
async fn an_incomplete_re_read_is_a_failure_not_a_deletion() {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "GetPersonalAccessTokenMetadata",
        OpFaults {
            omit_members: vec!["PersonalAccessTokenId".to_owned()],
            ..Default::default()
        },
    );
    let (out, _) = once(&server, cleanup_config("enforce", "")).await;
    assert!(server.sim.deleted().is_empty());
    let a = actions(&out.ctx, CORP);
    assert_eq!(a.iter().filter(|(x, _)| x == "failed").count(), 2, "{a:?}");
}

/// A run of corp's cleanup on a context whose scans are done, with its own ledger.
async fn scanned(cfg: Config, server: &workmail_pat_monitor::sim::SimServer) -> Context {
    let (opts, _) = options();
    let ctx = Context::new(cfg, source(server), &opts).await;
    for org in ctx.resolve_orgs().await.unwrap() {
        let _ = ctx.scan_and_publish(&org, None).await;
    }
    ctx
}

fn owner_disabled_only() -> Config {
    base_config(&format!(
        "[cleanup]\nmode = \"enforce\"\naudit_log = {:?}\nmax_deletions_percent = 100\n\
         [[cleanup.rules]]\nname = \"owner-disabled\"\nowner_states = [\"DISABLED\"]\n",
        scratch_file("ledger.jsonl")
    ))
}

#[tokio::test]
async fn a_re_read_that_lost_a_date_or_changed_owner_is_not_deleted() {
    // t3-disabled-owner has all three dates; its rule has no time condition, so only the
    // comparison with the scan can stop the deletion.
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "last use",
            Some("DateLastUsed"),
            "the service no longer reports a date it reported at the scan",
        ),
        (
            "creation",
            Some("DateCreated"),
            "the service no longer reports a date it reported at the scan",
        ),
        (
            "expiry",
            Some("ExpiresTime"),
            "the service no longer reports a date it reported at the scan",
        ),
        ("owner", None, "the token's owner changed since the scan"),
    ];
    for (case, omitted, reason) in cases {
        let server = start_scenario(BASIC).await;
        let ctx = scanned(owner_disabled_only(), &server).await;
        match omitted {
            Some(member) => server.sim.set_op_faults(
                "GetPersonalAccessTokenMetadata",
                OpFaults {
                    omit_members: vec![(*member).to_owned()],
                    ..Default::default()
                },
            ),
            None => server.sim.with_world(|w| {
                let corp = w.orgs.get_mut(CORP).unwrap();
                corp.tokens.get_mut("t3-disabled-owner").unwrap().user_id =
                    "11111111-1111-1111-1111-111111111111".to_owned();
            }),
        }
        let mut ledger = ledger_of(&ctx);
        let summary = ctx
            .cleanup(Some(&mut ledger), &CancellationToken::new())
            .await;
        assert!(server.sim.deleted().is_empty(), "case: {case}");
        assert_eq!(
            summary.count(Action::SkippedChanged),
            1,
            "case: {case}: {summary:?}"
        );
        let run = ctx.shared.org(CORP).unwrap().cleanup.unwrap();
        let a = run
            .actions
            .iter()
            .find(|a| a.token_id == "t3-disabled-owner")
            .unwrap();
        assert_eq!(a.action, Action::SkippedChanged, "case: {case}");
        assert_eq!(a.reason, *reason, "case: {case}");
    }
}

#[tokio::test]
async fn the_daily_budget_counts_the_deletions_of_the_last_24_hours_only() {
    let server = start_scenario(BASIC).await;
    let mut cfg = owner_disabled_only();
    cfg.cleanup.rules[0].owner_states = Some(vec![
        workmail_pat_monitor::inventory::OwnerState::Disabled,
        workmail_pat_monitor::inventory::OwnerState::Deleted,
    ]);
    cfg.cleanup.max_deletions_per_day = 2;
    let ctx = scanned(cfg, &server).await;
    // Earlier runs deleted one token 25 hours ago (outside the window) and one an hour ago.
    let mut ledger = ledger_of(&ctx);
    {
        let record = |token: &str, hours: i64| {
            let mut r: Record = serde_json::from_value(serde_json::json!({
                "timestamp": now() - chrono::Duration::hours(hours),
                "mode": "enforce", "organization_id": CORP, "organization": "corp",
                "user_id": "u", "user_name": null, "user_email": null, "user_state": "ENABLED",
                "token_id": token, "token_name": "earlier", "token_created": null,
                "token_last_used": null, "token_expires": null, "rule": "owner-disabled",
                "reason": "earlier run", "outcome": "deleted"
            }))
            .unwrap();
            r.run_id = "earlier".to_owned();
            r
        };
        let mut locked = ledger.lock().unwrap();
        locked.write(&record("earlier-25h", 25), true).unwrap();
        locked.write(&record("earlier-1h", 1), true).unwrap();
    }
    let summary = ctx
        .cleanup(Some(&mut ledger), &CancellationToken::new())
        .await;
    // t3-disabled-owner and t4-expired (owner DELETED) both match: one fits the budget.
    assert_eq!(server.sim.deleted().len(), 1, "{summary:?}");
    assert_eq!(summary.count(Action::Deleted), 1);
    assert_eq!(summary.count(Action::SkippedLimit), 1);
    let run = ctx.shared.org(CORP).unwrap().cleanup.unwrap();
    let held = run
        .actions
        .iter()
        .find(|a| a.action == Action::SkippedLimit)
        .unwrap();
    assert!(
        held.reason
            .starts_with("max_deletions_per_day (2) reached: 1 spent in the last 24 hours"),
        "{}",
        held.reason
    );
}

#[tokio::test]
async fn an_intent_whose_re_read_fails_stays_open_and_is_reconciled_later() {
    let server = start_scenario(BASIC).await;
    let ctx = scanned(owner_disabled_only(), &server).await;
    // An intent an earlier run left for a token that is gone since.
    let mut ledger = ledger_of(&ctx);
    {
        let intent: Record = serde_json::from_value(serde_json::json!({
            "timestamp": now() - chrono::Duration::minutes(5),
            "mode": "enforce", "organization_id": CORP, "organization": "corp",
            "user_id": "u-gone", "user_name": "gone-user", "user_email": "gone@corp.example.com",
            "user_state": "DISABLED", "token_id": "t-gone", "token_name": "old", "token_created": null,
            "token_last_used": null, "token_expires": null, "rule": "owner-disabled",
            "reason": "owner is DISABLED", "outcome": "intent"
        }))
        .unwrap();
        ledger.lock().unwrap().write(&intent, true).unwrap();
        // And one for an organization that is not scanned any more: it cannot be reconciled.
        let mut other = intent.clone();
        other.organization_id = "m-0000000000000000000000000000dead".to_owned();
        ledger.lock().unwrap().write(&other, true).unwrap();
    }
    server.sim.set_op_faults(
        "GetPersonalAccessTokenMetadata",
        OpFaults {
            internal_error_rate: 1.0,
            ..Default::default()
        },
    );
    let summary = ctx
        .cleanup(Some(&mut ledger), &CancellationToken::new())
        .await;
    assert_eq!(
        (summary.reconciled, summary.unreconciled),
        (0, 2),
        "{summary:?}"
    );
    assert!(summary.needs_attention());

    server
        .sim
        .set_op_faults("GetPersonalAccessTokenMetadata", OpFaults::default());
    let summary = ctx
        .cleanup(Some(&mut ledger), &CancellationToken::new())
        .await;
    // The other organization's intent stays open, and the run says so.
    assert_eq!(
        (summary.reconciled, summary.unreconciled),
        (1, 1),
        "{summary:?}"
    );
    assert!(summary.needs_attention());
    let text = std::fs::read_to_string(ctx.config().cleanup.audit_log.as_ref().unwrap()).unwrap();
    let reconciled: Record = text
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .find(|r| r.token_id == "t-gone" && r.reconciled)
        .unwrap();
    assert_eq!(reconciled.outcome, Action::Deleted);
    // The reconciled record carries what the intent knew of the owner.
    assert_eq!(reconciled.user_name.as_deref(), Some("gone-user"));
    assert_eq!(
        reconciled.user_email.as_deref(),
        Some("gone@corp.example.com")
    );
    assert_eq!(
        reconciled.user_state,
        workmail_pat_monitor::inventory::OwnerState::Disabled
    );
}
