//! Faults injected through the emulator, scoped to one organization. For each: no panic,
//! the affected organization reports `up 0` with a bounded error kind, the others are
//! unaffected, the last complete data stays published, nothing is deleted on incomplete
//! data, and the next scan after the fault clears recovers.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use workmail_pat_monitor::app::{Context, Options, ScanHook};
use workmail_pat_monitor::config::Config;
use workmail_pat_monitor::sim::{Mutation, OpFaults, SimServer};

use crate::monitor::{BASIC, CORP, LABS, base_config};
use crate::support::*;

/// Enforcing cleanup with rules that match corp's tokens, and fast failure.
fn armed() -> Config {
    let mut c = base_config(&format!(
        r#"
[cleanup]
mode = "enforce"
audit_log = {:?}
max_deletions_percent = 100
[[cleanup.rules]]
name = "expired"
expired_for = "1d"
[[cleanup.rules]]
name = "owner-disabled"
owner_states = ["DISABLED", "DELETED"]
"#,
        scratch_file("ledger.jsonl")
    ));
    c.scan.call_timeout = Duration::from_millis(300);
    c.scan.max_attempts = 2;
    c
}

struct Harness {
    server: SimServer,
    ctx: Context,
    orgs: Vec<workmail_pat_monitor::inventory::OrgRef>,
}

impl Harness {
    async fn start(hook: Option<ScanHook>) -> Self {
        let server = start_scenario(BASIC).await;
        let opts = Options {
            initial_backoff: Duration::from_millis(1),
            ..Default::default()
        };
        let mut ctx = Context::new(armed(), source(&server), &opts).await;
        if let Some(hook) = hook {
            ctx = ctx.with_scan_hook(hook);
        }
        let orgs = ctx.resolve_orgs().await.unwrap();
        Self { server, ctx, orgs }
    }

    async fn scan_all(&self) {
        for org in &self.orgs {
            let _ = self.ctx.scan_and_publish(org, None).await;
        }
    }

    /// A complete scan, the fault, a scan and a cleanup run under it, the checks, then
    /// recovery. Returns the error kind the affected organization reported.
    async fn run(
        &self,
        inject: impl FnOnce(&SimServer),
        clear: impl FnOnce(&SimServer),
    ) -> &'static str {
        self.scan_all().await;
        let before = self.ctx.shared.org(CORP).unwrap();
        assert!(before.up);
        let tokens_before = before.inventory.as_ref().unwrap().tokens.len();

        inject(&self.server);
        self.scan_all().await;
        let corp = self.ctx.shared.org(CORP).unwrap();
        let labs = self.ctx.shared.org(LABS).unwrap();
        assert!(!corp.up, "the affected organization reports up 0");
        assert!(
            labs.up,
            "other organizations are unaffected: {:?}",
            labs.last_error
        );
        assert_eq!(
            corp.last_success, before.last_success,
            "last success unchanged"
        );
        assert_eq!(
            corp.inventory.as_ref().unwrap().tokens.len(),
            tokens_before,
            "the last complete data stays published"
        );
        let kind = corp.last_error.as_ref().unwrap().kind;
        let text = self.ctx.metrics.render(&self.ctx.shared);
        assert_eq!(
            sample(
                &text,
                "workmail_pat_organization_up",
                &[r#"organization="corp""#]
            ),
            Some(0.0)
        );

        let path = self.ctx.config().cleanup.audit_log.clone().unwrap();
        let mut ledger = workmail_pat_monitor::ledger::Ledger::open(&path).unwrap();
        let summary = self
            .ctx
            .cleanup(Some(&mut ledger), &CancellationToken::new())
            .await;
        assert!(summary.skipped_orgs.contains(&CORP.to_owned()));
        assert!(
            self.server
                .sim
                .deleted()
                .iter()
                .all(|d| d.organization_id != CORP),
            "no deletion on incomplete data"
        );

        clear(&self.server);
        let _ = self.ctx.scan_and_publish(&self.orgs[0], None).await;
        let recovered = self.ctx.shared.org(CORP).unwrap();
        assert!(
            recovered.up,
            "recovers once the fault clears: {:?}",
            recovered.last_error
        );
        kind
    }
}

fn scoped(f: OpFaults) -> OpFaults {
    OpFaults {
        organization_ids: vec![CORP.to_owned()],
        ..f
    }
}

async fn op_fault(op: &'static str, f: OpFaults) -> &'static str {
    let h = Harness::start(None).await;
    h.run(
        |s| s.sim.set_op_faults(op, scoped(f)),
        |s| s.sim.set_op_faults(op, OpFaults::default()),
    )
    .await
}

#[tokio::test]
async fn latency_beyond_the_call_timeout() {
    let f = OpFaults {
        latency_ms: 2_000,
        ..Default::default()
    };
    assert_eq!(op_fault("ListPersonalAccessTokens", f).await, "timeout");
}

#[tokio::test]
async fn stalled_responses() {
    let f = OpFaults {
        stall_rate: 1.0,
        stall_ms: Some(30_000),
        ..Default::default()
    };
    assert_eq!(
        op_fault("DescribeIdentityProviderConfiguration", f).await,
        "timeout"
    );
}

#[tokio::test]
async fn internal_error_storm() {
    let f = OpFaults {
        internal_error_rate: 1.0,
        ..Default::default()
    };
    assert_eq!(
        op_fault("ListPersonalAccessTokens", f).await,
        "InternalFailure"
    );
}

#[tokio::test]
async fn unavailable_storm() {
    let f = OpFaults {
        unavailable_rate: 1.0,
        ..Default::default()
    };
    assert_eq!(
        op_fault("ListPersonalAccessTokens", f).await,
        "ServiceUnavailable"
    );
}

#[tokio::test]
async fn throttling_storm_does_not_starve_other_organizations() {
    let f = OpFaults {
        throttle_rate: Some(0.001),
        throttle_burst: Some(1.0),
        retry_after_ms: Some(1),
        ..Default::default()
    };
    assert_eq!(
        op_fault("ListPersonalAccessTokens", f).await,
        "ThrottlingException"
    );
}

#[tokio::test]
async fn truncated_json() {
    let f = OpFaults {
        truncated_rate: 1.0,
        ..Default::default()
    };
    assert_eq!(op_fault("ListPersonalAccessTokens", f).await, "response");
}

#[tokio::test]
async fn malformed_json() {
    let f = OpFaults {
        malformed_rate: 1.0,
        ..Default::default()
    };
    assert_eq!(
        op_fault("DescribeIdentityProviderConfiguration", f).await,
        "response"
    );
}

#[tokio::test]
async fn repeated_next_token() {
    let f = OpFaults {
        repeat_next_token: true,
        ..Default::default()
    };
    assert_eq!(
        op_fault("ListPersonalAccessTokens", f).await,
        "repeated_next_token"
    );
}

#[tokio::test]
async fn organization_deleted_mid_scan() {
    let h = Harness::start(None).await;
    let kind = h
        .run(
            |s| {
                // corp's listing has three pages: the organization goes after the first.
                s.sim.mutate_after(
                    "ListPersonalAccessTokens",
                    1,
                    Mutation::SetOrganizationState {
                        organization_id: CORP.to_owned(),
                        state: "Deleted".to_owned(),
                    },
                );
            },
            |s| {
                s.sim
                    .mutate(Mutation::SetOrganizationState {
                        organization_id: CORP.to_owned(),
                        state: "Active".to_owned(),
                    })
                    .unwrap();
            },
        )
        .await;
    assert_eq!(kind, "OrganizationStateException");
}

#[tokio::test]
async fn a_panic_in_a_scan_task_is_caught_and_counted() {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trigger = armed.clone();
    let hook = ScanHook(Arc::new(move |org| {
        if trigger.load(std::sync::atomic::Ordering::SeqCst) && org.id == CORP {
            panic!("injected panic in the scan of {}", org.id);
        }
    }));
    let h = Harness::start(Some(hook)).await;
    let on = armed.clone();
    let off = armed.clone();
    let kind = h
        .run(
            move |_| on.store(true, std::sync::atomic::Ordering::SeqCst),
            move |_| off.store(false, std::sync::atomic::Ordering::SeqCst),
        )
        .await;
    assert_eq!(kind, "internal");
    let text = h.ctx.metrics.render(&h.ctx.shared);
    assert_eq!(
        sample(&text, "workmail_pat_internal_errors_total", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn credential_failures_fail_only_that_organization() {
    // AssumeRole goes to the emulator, which grants no roles here: the role's credentials
    // cannot be had, as when the trust policy is wrong.
    let server = start_scenario(BASIC).await;
    let mut cfg = armed();
    cfg.organizations[0].role_arn = Some("arn:aws:iam::123456789012:role/pat-monitor".to_owned());
    let (opts, _) = options();
    let ctx = Context::new(cfg, source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    for org in &orgs {
        let _ = ctx.scan_and_publish(org, None).await;
    }
    let corp = ctx.shared.org(CORP).unwrap();
    assert!(!corp.up);
    let kind = corp.last_error.as_ref().unwrap().kind;
    assert!(
        matches!(kind, "credentials" | "dispatch" | "construction"),
        "{kind}: {:?}",
        corp.last_error
    );
    assert!(ctx.shared.org(LABS).unwrap().up);
    // The AssumeRole call reached the emulator, well signed, and was answered AccessDenied;
    // no WorkMail call went out with credentials that could not be had.
    let calls = server.sim.calls();
    assert!(calls.count("AssumeRole") >= 1, "{calls:?}");
    assert_eq!(calls.refused, 0, "{calls:?}");
    assert_eq!(server.sim.sessions_issued(), 0);
    let message = &corp.last_error.as_ref().unwrap().message;
    assert!(message.contains("AccessDenied"), "{message}");
}

#[tokio::test]
async fn a_skewed_emulator_clock() {
    let server = start_scenario(BASIC).await;
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: 3_600 })
        .unwrap();
    let (opts, _) = options();
    let ctx = Context::new(armed(), source(&server), &opts).await;
    let orgs = ctx.resolve_orgs().await.unwrap();
    for org in &orgs {
        let _ = ctx.scan_and_publish(org, None).await;
    }
    // Whether the SDK corrects the skew from the Date header or not, the outcome is bounded
    // and the process carries on; once the clocks agree, scans complete.
    let corp = ctx.shared.org(CORP).unwrap();
    if !corp.up {
        assert_eq!(
            corp.last_error.as_ref().unwrap().kind,
            "InvalidSignatureException"
        );
    }
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: 0 })
        .unwrap();
    // The SDK keeps the skew it learned until a response teaches it otherwise: the first
    // call after the clocks agree again is refused (and not retried, the new skew being
    // small) and corrects the client; the scan after that completes.
    for _ in 0..2 {
        for org in &orgs {
            let _ = ctx.scan_and_publish(org, None).await;
        }
    }
    let corp = ctx.shared.org(CORP).unwrap();
    assert!(corp.up, "{:?} {:?}", corp.last_error, server.sim.calls());
}
