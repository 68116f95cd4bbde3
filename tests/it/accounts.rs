//! Many accounts: `[[discovery.accounts]]` finds each account's organizations with its own
//! role (assumed through the emulator's STS) and scans them with it; a role that cannot be
//! assumed fails that account only.

use workmail_pat_monitor::app::Daemon;
use workmail_pat_monitor::sim::{Scenario, SimConfig, SimServer};

use crate::support::*;

const HOME_ORG: &str = "m-a0000000000000000000000000000000";
const TENANT_ONE: &str = "m-b1000000000000000000000000000000";
const TENANT_TWO: &str = "m-b2000000000000000000000000000000";
const OTHER_ORG: &str = "m-c0000000000000000000000000000000";
const TENANT: &str = "210987654321";
const OTHER: &str = "333333333333";
const TENANT_ROLE: &str = "arn:aws:iam::210987654321:role/ops/pat-monitor";
const OTHER_ROLE: &str = "arn:aws:iam::333333333333:role/pat-monitor";
/// A role no trust policy lets the monitor assume.
const REFUSED_ROLE: &str = "arn:aws:iam::444444444444:role/pat-monitor";

const SCENARIO: &str = include_str!("../fixtures/accounts.toml");

async fn start() -> SimServer {
    let scenario = Scenario::parse(SCENARIO).unwrap();
    let config = SimConfig {
        roles: scenario.roles().unwrap(),
        ..Default::default()
    };
    start_sim(scenario.build(now()).unwrap(), config).await
}

fn discovery(extra_accounts: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[scan]\ninterval = \"1s\"\nowner_lookup = \"describe\"\n\
         call_timeout = \"2s\"\nmax_attempts = 1\n\
         [discovery]\nregions = [\"us-east-1\"]\n\
         [[discovery.accounts]]\nrole_arn = \"{TENANT_ROLE}\"\nexternal_id = \"tenant-external-id\"\n\
         [[discovery.accounts]]\nrole_arn = \"{OTHER_ROLE}\"\n{extra_accounts}"
    )
}

fn info(text: &str, org: &str, account: &str) -> Option<f64> {
    sample(
        text,
        "workmail_pat_organization_info",
        &[
            &format!("organization_id=\"{org}\""),
            &format!("account_id=\"{account}\""),
            "region=\"us-east-1\"",
        ],
    )
}

#[tokio::test]
async fn each_account_is_discovered_and_scanned_with_its_role_and_a_refused_one_fails_alone() {
    let server = start().await;
    let refused = format!("[[discovery.accounts]]\nrole_arn = \"{REFUSED_ROLE}\"\n");
    let (out, _) = once(&server, config(&discovery(&refused))).await;
    let scanned: Vec<(&str, bool)> = out
        .scans
        .iter()
        .map(|(o, r)| (o.id.as_str(), r.is_ok()))
        .collect();
    // Another account's organization is not even visible with the home credentials, so a
    // complete scan of each proves it was scanned with its account's role.
    assert_eq!(
        scanned,
        [
            (HOME_ORG, true),
            (TENANT_ONE, true),
            (TENANT_TWO, true),
            (OTHER_ORG, true)
        ]
    );
    assert_eq!(out.discovery_errors.len(), 1, "{:?}", out.discovery_errors);
    let error = &out.discovery_errors[0];
    assert!(
        error.contains(REFUSED_ROLE) && error.contains("AccessDenied: User: "),
        "{error}"
    );
    assert!(
        !error.contains("Error {"),
        "said in words, not Debug: {error}"
    );
    assert!(!out.complete(), "an account could not be listed");
    let tenant = out.ctx.shared.org(TENANT_ONE).unwrap();
    assert_eq!(tenant.inventory.unwrap().tokens.len(), 1);

    let text = out.ctx.metrics.render(&out.ctx.shared);
    assert_eq!(
        info(&text, HOME_ORG, ""),
        Some(1.0),
        "no role names home's account"
    );
    assert_eq!(info(&text, TENANT_ONE, TENANT), Some(1.0));
    assert_eq!(info(&text, TENANT_TWO, TENANT), Some(1.0));
    assert_eq!(info(&text, OTHER_ORG, OTHER), Some(1.0));
    assert_eq!(series_count(&text, "workmail_pat_organization_info"), 4);
    for (account, up) in [
        ("", 1.0),
        (TENANT, 1.0),
        (OTHER, 1.0),
        ("444444444444", 0.0),
    ] {
        assert_eq!(
            sample(
                &text,
                "workmail_pat_discovery_up",
                &[&format!("account_id=\"{account}\""), "region=\"us-east-1\""]
            ),
            Some(up),
            "discovery of account {account:?}"
        );
    }
    // The join the dashboards make: tokens per account.
    assert_eq!(
        sample(
            &text,
            "workmail_pat_tokens",
            &[
                &format!("organization_id=\"{TENANT_ONE}\""),
                "status=\"active\""
            ]
        ),
        Some(1.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_role_that_stops_working_turns_its_accounts_organizations_down_and_the_rest_carry_on() {
    let server = start().await;
    let (opts, _clock) = options();
    let daemon = Daemon::start(config(&discovery("")), source(&server), opts)
        .await
        .unwrap();
    wait_ready(daemon.addr).await;
    let shared = daemon.ctx.shared.clone();
    assert!(
        [HOME_ORG, TENANT_ONE, TENANT_TWO, OTHER_ORG]
            .iter()
            .all(|id| shared.org(id).is_some_and(|o| o.up))
    );
    // The other account revokes the monitor: no new sessions, and the issued ones denied.
    server.sim.set_role(OTHER_ROLE, None);
    assert!(server.sim.revoke_sessions(OTHER_ROLE) >= 1);
    wait_for_state(
        "the other account's organization to go down",
        &shared,
        |s| {
            s.org(OTHER_ORG).is_some_and(|o| !o.up)
                && s.discovery().iter().any(|d| d.account_id == OTHER && !d.up)
        },
    )
    .await;
    let other = shared.org(OTHER_ORG).unwrap();
    assert!(other.inventory.is_some(), "its last complete data stays");
    let failure = other.last_error.unwrap();
    assert!(failure.message.contains("AccessDenied"), "{failure:?}");
    // The rest carry on, scanned (every second) with their own credentials.
    for id in [HOME_ORG, TENANT_ONE, TENANT_TWO] {
        assert!(shared.org(id).unwrap().up, "{id} stays up");
    }
    let mut text = String::new();
    wait_for_async(
        "/metrics to show the other organization down",
        DEADLINE,
        async || {
            text = http_get(&format!("http://{}/metrics", daemon.addr)).await.1;
            sample(
                &text,
                "workmail_pat_organization_up",
                &[&format!("organization_id=\"{OTHER_ORG}\"")],
            ) == Some(0.0)
        },
    )
    .await;
    assert_eq!(
        info(&text, OTHER_ORG, OTHER),
        Some(1.0),
        "still scanned here"
    );
    daemon.stop().await;
    server.stop().await;
}
