//! API data the model allows but code may not expect: missing optional members, duplicate
//! ids across pages, empty scope lists, unicode and very long names, timestamps far in the
//! past and future. The scan completes, nothing panics, and nothing is deleted on missing
//! evidence.

use chrono::TimeZone;
use workmail_pat_monitor::sim::{Mutation, OpFaults};

use crate::monitor::{BASIC, CORP, base_config};
use workmail_pat_monitor::report::VerdictStatus;

use crate::support::*;

fn enforce() -> String {
    format!(
        r#"
[cleanup]
mode = "enforce"
audit_log = {:?}
max_deletions_percent = 100
[[cleanup.rules]]
name = "expired"
expired_for = "1d"
[[cleanup.rules]]
name = "unused"
unused_for = "30d"
[[cleanup.rules]]
name = "gone-owners"
owner_states = ["UNKNOWN"]
"#,
        scratch_file("ledger.jsonl")
    )
}

#[tokio::test]
async fn missing_optional_members_everywhere() {
    let server = start_scenario(BASIC).await;
    let omit: Vec<String> = [
        "DateCreated",
        "DateLastUsed",
        "ExpiresTime",
        "Scopes",
        "Name",
        "Email",
        "DisplayName",
        "State",
        "DisabledDate",
        "LifetimeInDays",
        "PersonalAccessTokenConfiguration",
    ]
    .map(String::from)
    .to_vec();
    server.sim.set_op_faults(
        "*",
        OpFaults {
            omit_members: omit,
            ..Default::default()
        },
    );
    let (out, _) = once(&server, base_config(&enforce())).await;
    let corp = out.ctx.shared.org(CORP).unwrap();
    assert!(corp.up, "{:?}", corp.last_error);
    let inv = corp.inventory.unwrap();
    assert_eq!(inv.tokens.len(), 6);
    assert!(
        inv.tokens
            .iter()
            .all(|t| t.expires.is_none() && t.created.is_none())
    );
    assert!(inv.pat.is_none());
    let text = out.ctx.metrics.render(&out.ctx.shared);
    assert_eq!(
        series_count(&text, "workmail_pat_token_expiry_timestamp_seconds"),
        0
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_tokens",
            &[r#"organization="corp""#, r#"status="active""#]
        ),
        Some(6.0)
    );
    // Owners without a state are UNKNOWN, but an unreported state is not evidence of a
    // missing owner: the owner rule does not act on it. Tokens without dates are never
    // eligible either.
    assert_eq!(
        sample(
            &text,
            "workmail_pat_tokens_by_owner_state",
            &[r#"organization="corp""#, r#"user_state="UNKNOWN""#]
        ),
        Some(6.0)
    );
    // Only the token whose owner the directory confirms gone (EntityNotFoundException) is
    // deleted; owners whose state the service left out are not taken for gone.
    let deleted: Vec<String> = server
        .sim
        .deleted()
        .into_iter()
        .map(|d| d.token_id)
        .collect();
    assert_eq!(deleted, ["t5-ghost-owner"]);
    let report =
        workmail_pat_monitor::report::build(&out.ctx.config(), &out.ctx.shared.snapshot(), now());
    for t in &report.tokens {
        let want = if t.token_id == "t5-ghost-owner" {
            VerdictStatus::Eligible
        } else {
            VerdictStatus::None
        };
        assert_eq!(t.cleanup.status, want, "{}", t.token_id);
        assert!(t.days_left.is_none());
    }
}

#[tokio::test]
async fn duplicate_token_ids_across_pages_count_once() {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            overlap_pages: true,
            ..Default::default()
        },
    );
    let (out, _) = once(&server, base_config("")).await;
    let corp = out.ctx.shared.org(CORP).unwrap();
    assert!(corp.up, "{:?}", corp.last_error);
    assert_eq!(corp.inventory.unwrap().tokens.len(), 6);
    let text = out.ctx.metrics.render(&out.ctx.shared);
    assert_eq!(series_count(&text, "workmail_pat_token_info"), 7);
}

#[tokio::test]
async fn extreme_names_scopes_and_timestamps() {
    let server = start_scenario(BASIC).await;
    let far_past = chrono::Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 1).unwrap();
    let far_future = chrono::Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .unwrap();
    let long_name: String = "名前🔑\"'&".chars().cycle().take(64).collect();
    for (id, name, created, expires, scopes) in [
        ("ancient", long_name.clone(), far_past, far_past, vec![]),
        (
            "forever",
            "x".repeat(64),
            far_past,
            far_future,
            vec!["s".repeat(256); 10],
        ),
    ] {
        server
            .sim
            .mutate(Mutation::AddToken {
                organization_id: CORP.to_owned(),
                token_id: id.to_owned(),
                user_id: "11111111-1111-1111-1111-111111111111".to_owned(),
                name,
                created,
                last_used: Some(created),
                expires,
                scopes,
            })
            .unwrap();
    }
    let (out, _) = once(
        &server,
        base_config(enforce().replace("\"enforce\"", "\"dry-run\"").as_str()),
    )
    .await;
    let corp = out.ctx.shared.org(CORP).unwrap();
    assert!(corp.up, "{:?}", corp.last_error);
    let text = out.ctx.metrics.render(&out.ctx.shared);
    assert_eq!(
        sample(
            &text,
            "workmail_pat_token_expiry_timestamp_seconds",
            &[r#"token_id="forever""#]
        ),
        Some(far_future.timestamp() as f64)
    );
    assert!(
        text.contains(r#"token_name="名前🔑\"'&"#),
        "label values are escaped"
    );
    let page =
        workmail_pat_monitor::status::render(&out.ctx.config(), &out.ctx.shared.snapshot(), now());
    assert!(page.contains("名前🔑&quot;&#39;&amp;"));
    let rep =
        workmail_pat_monitor::report::build(&out.ctx.config(), &out.ctx.shared.snapshot(), now());
    assert!(
        workmail_pat_monitor::report::to_csv(&rep)
            .unwrap()
            .contains("ancient")
    );
    let ancient = rep.tokens.iter().find(|t| t.token_id == "ancient").unwrap();
    assert_eq!(ancient.cleanup.status, VerdictStatus::Eligible);
}
