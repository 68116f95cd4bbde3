//! The monitor end to end: scans through the emulator, exact metric values, pagination,
//! the owner cache, isolation of failing organizations, throttling.

use workmail_pat_monitor::app::Context;
use workmail_pat_monitor::config::Config;
use workmail_pat_monitor::sim::{Mutation, OpFaults};

use crate::support::*;

pub const BASIC: &str = include_str!("../fixtures/basic.toml");
pub const CORP: &str = "m-00000000000000000000000000000001";
pub const LABS: &str = "m-00000000000000000000000000000002";
pub const RETIRED: &str = "m-00000000000000000000000000000003";

pub fn base_config(extra: &str) -> Config {
    config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[scan]
interval = "1m"
page_size = 2
owner_lookup = "describe"
[metrics]
user_labels = ["user_name", "email"]
[[organizations]]
id = "{CORP}"
region = "us-east-1"
alias = "corp"
[[organizations]]
id = "{LABS}"
region = "us-east-1"
alias = "labs"
[[organizations]]
id = "{RETIRED}"
region = "us-east-1"
alias = "retired"
{extra}
"#
    ))
}

fn ts(offset: chrono::Duration) -> f64 {
    (now() + offset).timestamp() as f64
}

#[tokio::test]
async fn exact_metrics_for_every_category() {
    let server = start_scenario(BASIC).await;
    let (out, _) = once(&server, base_config("")).await;
    let text = out.ctx.metrics.render(&out.ctx.shared);
    let corp = r#"organization="corp""#;
    let d = chrono::Duration::days;
    let h = chrono::Duration::hours;
    let cases: &[(&str, &[&str], f64)] = &[
        ("workmail_pat_tokens", &[corp, r#"status="active""#], 5.0),
        ("workmail_pat_tokens", &[corp, r#"status="expired""#], 1.0),
        (
            "workmail_pat_tokens_expiring",
            &[corp, r#"within="1d""#],
            1.0,
        ),
        (
            "workmail_pat_tokens_expiring",
            &[corp, r#"within="7d""#],
            2.0,
        ),
        (
            "workmail_pat_tokens_expiring",
            &[corp, r#"within="30d""#],
            3.0,
        ),
        (
            "workmail_pat_tokens_unused",
            &[corp, r#"unused_for="30d""#],
            4.0,
        ),
        (
            "workmail_pat_tokens_unused",
            &[corp, r#"unused_for="90d""#],
            3.0,
        ),
        ("workmail_pat_tokens_never_used", &[corp], 2.0),
        (
            "workmail_pat_tokens_by_owner_state",
            &[corp, r#"user_state="ENABLED""#],
            3.0,
        ),
        (
            "workmail_pat_tokens_by_owner_state",
            &[corp, r#"user_state="DISABLED""#],
            1.0,
        ),
        (
            "workmail_pat_tokens_by_owner_state",
            &[corp, r#"user_state="DELETED""#],
            1.0,
        ),
        (
            "workmail_pat_tokens_by_owner_state",
            &[corp, r#"user_state="UNKNOWN""#],
            1.0,
        ),
        ("workmail_pat_token_owners", &[corp], 4.0),
        ("workmail_pat_organization_pat_enabled", &[corp], 1.0),
        (
            "workmail_pat_organization_pat_lifetime_seconds",
            &[corp],
            365.0 * 86_400.0,
        ),
        ("workmail_pat_organization_up", &[corp], 1.0),
        (
            "workmail_pat_organization_up",
            &[r#"organization="labs""#],
            1.0,
        ),
        (
            "workmail_pat_organization_up",
            &[r#"organization="retired""#],
            0.0,
        ),
        (
            "workmail_pat_scan_last_success_timestamp_seconds",
            &[corp],
            ts(d(0)),
        ),
        (
            "workmail_pat_token_expiry_timestamp_seconds",
            &[
                r#"token_id="t1-expiring-today""#,
                r#"user_name="alice""#,
                r#"email="alice@corp.example.com""#,
            ],
            ts(h(12)),
        ),
        (
            "workmail_pat_token_created_timestamp_seconds",
            &[r#"token_id="t3-disabled-owner""#],
            ts(-d(300)),
        ),
        (
            "workmail_pat_token_last_used_timestamp_seconds",
            &[r#"token_id="t4-expired""#],
            ts(-d(200)),
        ),
        (
            "workmail_pat_token_info",
            &[
                r#"token_id="t1-expiring-today""#,
                r#"user_state="ENABLED""#,
                r#"scopes="IMAP,SMTP""#,
                r#"token_name="Thunderbird on laptop""#,
            ],
            1.0,
        ),
        (
            "workmail_pat_token_info",
            &[
                r#"token_id="t5-ghost-owner""#,
                r#"user_state="UNKNOWN""#,
                r#"user_name="""#,
            ],
            1.0,
        ),
        (
            "workmail_pat_token_info",
            &[
                r#"token_id="t2-never-used""#,
                r#"token_name="iPhone Mail 📱""#,
            ],
            1.0,
        ),
        ("workmail_pat_scan_interval_seconds", &[], 60.0),
        ("workmail_pat_monitor_build_info", &[], 1.0),
        (
            "workmail_pat_shard_info",
            &[r#"shard="0""#, r#"total_shards="1""#],
            1.0,
        ),
    ];
    for (name, labels, want) in cases {
        assert_eq!(
            sample(&text, name, labels),
            Some(*want),
            "case: {name}{labels:?}\n{text}"
        );
    }
    // Never-used tokens have no last-used series; an organization without an identity
    // provider configuration has no PAT settings series.
    assert_eq!(
        sample(
            &text,
            "workmail_pat_token_last_used_timestamp_seconds",
            &[r#"token_id="t2-never-used""#]
        ),
        None
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_organization_pat_enabled",
            &[r#"organization="labs""#]
        ),
        None
    );
    // The failing organization never had data: no token series for it.
    assert_eq!(
        sample(&text, "workmail_pat_tokens", &[r#"organization="retired""#]),
        None
    );
    assert_eq!(series_count(&text, "workmail_pat_token_info"), 7);
    assert!(text.contains("# HELP workmail_pat_tokens Tokens by status"));
    assert!(text.contains("Refreshed every scan interval, not at scrape time."));
    let failing = out.scans.iter().find(|(o, _)| o.id == RETIRED).unwrap();
    assert!(
        failing
            .1
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("OrganizationStateException")
    );
}

#[tokio::test]
async fn per_token_series_can_be_turned_off() {
    let server = start_scenario(BASIC).await;
    let mut cfg = base_config("");
    cfg.metrics.per_token = false;
    let (out, _) = once(&server, cfg).await;
    let text = out.ctx.metrics.render(&out.ctx.shared);
    assert_eq!(series_count(&text, "workmail_pat_token_info"), 0);
    assert_eq!(
        series_count(&text, "workmail_pat_token_expiry_timestamp_seconds"),
        0
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_tokens",
            &[r#"status="active""#, r#"organization="corp""#]
        ),
        Some(5.0)
    );
}

#[tokio::test]
async fn pages_through_every_token_with_a_small_page_size() {
    let server = start_scenario(BASIC).await;
    let (out, _) = once(&server, base_config("")).await;
    let calls = server.sim.calls();
    // corp: 6 tokens at 2 per page = 3 pages; labs: 1 page; retired: refused once.
    assert_eq!(calls.count("ListPersonalAccessTokens"), 5);
    let inv = out.ctx.shared.org(CORP).unwrap().inventory.unwrap();
    let mut ids: Vec<&str> = inv.tokens.iter().map(|t| t.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids.len(), 6);
    ids.dedup();
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn owner_cache_describes_each_owner_once_across_scans() {
    let server = start_scenario(BASIC).await;
    let (opts, _) = options();
    let ctx = Context::new(base_config(""), source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    for _ in 0..2 {
        for org in &orgs {
            let _ = ctx.scan_and_publish(org, None).await;
        }
    }
    // corp has 4 distinct owners (one not in the directory), labs 1.
    assert_eq!(server.sim.calls().count("DescribeUser"), 5);
}

#[tokio::test]
async fn list_users_is_used_when_cheaper() {
    let server = start_scenario(BASIC).await;
    let mut cfg = base_config("");
    cfg.scan.owner_lookup = workmail_pat_monitor::config::OwnerLookup::List;
    let (out, _) = once(&server, cfg).await;
    let calls = server.sim.calls();
    assert_eq!(calls.count("DescribeUser"), 0);
    // corp: 3 users at 2 per page = 2 pages; labs: 1 page.
    assert_eq!(calls.count("ListUsers"), 3);
    let inv = out.ctx.shared.org(CORP).unwrap().inventory.unwrap();
    let ghost = &inv.owners["99999999-9999-9999-9999-999999999999"];
    assert_eq!(
        ghost.state,
        workmail_pat_monitor::inventory::OwnerState::Unknown
    );
    assert_eq!(
        inv.owners["22222222-2222-2222-2222-222222222222"]
            .state
            .as_str(),
        "DISABLED"
    );
}

#[tokio::test]
async fn a_failing_organization_keeps_its_last_data_and_does_not_affect_others() {
    let server = start_scenario(BASIC).await;
    let (opts, clock) = options();
    let ctx = Context::new(base_config(""), source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    for org in &orgs {
        let _ = ctx.scan_and_publish(org, None).await;
    }
    let before = ctx.metrics.render(&ctx.shared);
    let first_success = sample(
        &before,
        "workmail_pat_scan_last_success_timestamp_seconds",
        &[r#"organization="corp""#],
    );
    server
        .sim
        .mutate(Mutation::SetOrganizationState {
            organization_id: CORP.to_owned(),
            state: "Deleted".to_owned(),
        })
        .unwrap();
    clock.advance(chrono::Duration::minutes(5));
    for org in &orgs {
        let _ = ctx.scan_and_publish(org, None).await;
    }
    let after = ctx.metrics.render(&ctx.shared);
    assert_eq!(
        sample(
            &after,
            "workmail_pat_organization_up",
            &[r#"organization="corp""#]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &after,
            "workmail_pat_scan_last_success_timestamp_seconds",
            &[r#"organization="corp""#]
        ),
        first_success
    );
    assert_eq!(
        sample(
            &after,
            "workmail_pat_tokens",
            &[r#"organization="corp""#, r#"status="active""#]
        ),
        Some(5.0)
    );
    assert_eq!(series_count(&after, "workmail_pat_token_info"), 7);
    // labs moved on: its last success is the new scan.
    assert_eq!(
        sample(
            &after,
            "workmail_pat_organization_up",
            &[r#"organization="labs""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "workmail_pat_scan_last_success_timestamp_seconds",
            &[r#"organization="labs""#]
        ),
        Some((now() + chrono::Duration::minutes(5)).timestamp() as f64)
    );
    // Recovery on the next scan once the fault clears.
    server
        .sim
        .mutate(Mutation::SetOrganizationState {
            organization_id: CORP.to_owned(),
            state: "Active".to_owned(),
        })
        .unwrap();
    let _ = ctx.scan_and_publish(&orgs[0], None).await;
    let recovered = ctx.metrics.render(&ctx.shared);
    assert_eq!(
        sample(
            &recovered,
            "workmail_pat_organization_up",
            &[r#"organization="corp""#]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn deleted_tokens_disappear_on_the_next_scan() {
    let server = start_scenario(BASIC).await;
    let (opts, _) = options();
    let ctx = Context::new(base_config(""), source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    let _ = ctx.scan_and_publish(&orgs[0], None).await;
    server
        .sim
        .mutate(Mutation::RemoveToken {
            organization_id: CORP.to_owned(),
            token_id: "t1-expiring-today".to_owned(),
        })
        .unwrap();
    let _ = ctx.scan_and_publish(&orgs[0], None).await;
    let text = ctx.metrics.render(&ctx.shared);
    assert_eq!(
        sample(
            &text,
            "workmail_pat_token_info",
            &[r#"token_id="t1-expiring-today""#]
        ),
        None
    );
    assert_eq!(
        sample(
            &text,
            "workmail_pat_tokens_expiring",
            &[r#"organization="corp""#, r#"within="1d""#]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn throttling_is_retried_and_counted_and_the_scan_completes() {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            // One call per 50 ms, and the server asks for retries after 10 ms: every
            // organization's listing is throttled several times.
            throttle_rate: Some(20.0),
            throttle_burst: Some(1.0),
            retry_after_ms: Some(10),
            ..Default::default()
        },
    );
    let mut cfg = base_config("");
    cfg.scan.max_attempts = 20;
    cfg.scan.retry_mode = workmail_pat_monitor::config::RetryMode::Standard;
    let (out, _) = once(&server, cfg).await;
    let text = out.ctx.metrics.render(&out.ctx.shared);
    assert!(
        out.scans
            .iter()
            .filter(|(o, _)| o.id != RETIRED)
            .all(|(_, r)| r.is_ok()),
        "{:?}",
        server.sim.calls()
    );
    let throttled = sample(
        &text,
        "workmail_pat_api_request_errors_total",
        &[
            r#"error="ThrottlingException""#,
            r#"operation="ListPersonalAccessTokens""#,
        ],
    )
    .unwrap_or(0.0);
    assert!(throttled >= 1.0, "{text}");
    let requests = sample(
        &text,
        "workmail_pat_api_requests_total",
        &[r#"operation="ListPersonalAccessTokens""#],
    )
    .unwrap();
    let calls = server.sim.calls();
    assert_eq!(requests, calls.count("ListPersonalAccessTokens") as f64);
    assert!(calls.retries("ListPersonalAccessTokens") >= 1);
}

#[tokio::test]
async fn a_repeated_next_token_makes_the_scan_partial() {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            repeat_next_token: true,
            ..Default::default()
        },
    );
    let (out, _) = once(&server, base_config("")).await;
    let st = out.ctx.shared.org(CORP).unwrap();
    assert!(!st.up);
    assert_eq!(st.last_error.unwrap().kind, "repeated_next_token");
    assert!(st.inventory.is_none());
}

#[tokio::test]
async fn discovery_finds_active_organizations_only() {
    let server = start_scenario(BASIC).await;
    let cfg = config(
        r#"
[server]
listen = "127.0.0.1:0"
[discovery]
regions = ["us-east-1"]
"#,
    );
    let (out, _) = once(&server, cfg).await;
    let labels: Vec<&str> = out.scans.iter().map(|(o, _)| o.label.as_str()).collect();
    assert_eq!(labels, ["corp", "labs"]);
    assert!(out.scans.iter().all(|(_, r)| r.is_ok()));
}

#[tokio::test]
async fn the_daemon_serves_metrics_health_and_readiness() {
    let server = start_scenario(BASIC).await;
    let (opts, _) = options();
    let daemon = workmail_pat_monitor::app::Daemon::start(base_config(""), source(&server), opts)
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    let daemon_addr = daemon.addr;
    wait_ready(daemon.addr).await;
    let (status, body) = http_get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("workmail_pat_organization_up"));
    assert_eq!(http_get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(http_get(&format!("{base}/nope")).await.0, 404);
    assert_eq!(
        http_request(&format!("{base}/metrics"), "POST").await.0,
        405
    );
    let (status, page) = http_get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Alice &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert(1)"));
    let (status, api) = http_get(&format!("{base}/api/v1/tokens")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 7);
    // While shutting down: not ready, still scrapeable.
    daemon.ctx.shared.shutting_down();
    assert_eq!(http_get(&format!("{base}/readyz")).await.0, 503);
    assert_eq!(http_get(&format!("{base}/metrics")).await.0, 200);
    daemon.stop().await;
    assert!(
        tokio::net::TcpStream::connect(daemon_addr).await.is_err(),
        "the listener is closed once stopped"
    );
}

#[tokio::test]
async fn a_failing_discovery_region_does_not_stop_configured_organizations() {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "ListOrganizations",
        OpFaults {
            access_denied: true,
            ..Default::default()
        },
    );
    let cfg = config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[[organizations]]
id = "{CORP}"
region = "us-east-1"
alias = "corp"
[discovery]
regions = ["us-east-1"]
"#
    ));
    let (out, _) = once(&server, cfg).await;
    let labels: Vec<&str> = out.scans.iter().map(|(o, _)| o.label.as_str()).collect();
    assert_eq!(labels, ["corp"]);
    assert!(out.scans[0].1.is_ok());
    assert_eq!(out.discovery_errors.len(), 1, "{:?}", out.discovery_errors);
    assert!(out.discovery_errors[0].contains("AccessDeniedException"));
    assert!(
        !out.complete(),
        "an undiscovered region makes the run incomplete"
    );
}
