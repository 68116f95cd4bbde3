//! Cleanup runs: plan from each organization's latest complete scan, apply the limits,
//! re-verify every approved token against the API, then delete (enforce) or report
//! (dry-run). Every decision is audited before it is reported anywhere else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, Record};
use crate::config::{CleanupMode, Config};
use crate::inventory::{OrgInventory, Owner, OwnerState, Token};
use crate::metrics::Metrics;
use crate::policy::{self, Approved, LimitHit};
use crate::state::{ActionRecord, CleanupRun, Shared};
use crate::workmail::WorkMail;

/// The outcome of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Deleted (enforce).
    Deleted,
    /// Would have been deleted (dry-run).
    WouldDelete,
    /// The delete (or its re-verification) failed.
    Failed,
    /// Held back by a limit.
    SkippedLimit,
    /// Used, renewed or otherwise changed since the scan: the rule no longer matches.
    SkippedChanged,
    /// Already deleted by someone else.
    AlreadyGone,
    /// Protected by an exclusion.
    Excluded,
}

impl Action {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deleted => "deleted",
            Action::WouldDelete => "would_delete",
            Action::Failed => "failed",
            Action::SkippedLimit => "skipped_limit",
            Action::SkippedChanged => "skipped_changed",
            Action::AlreadyGone => "already_gone",
            Action::Excluded => "excluded",
        }
    }
}

/// What a run did, for `once` and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Count per action.
    pub actions: BTreeMap<&'static str, u64>,
    /// Organizations skipped because their latest scan was not complete.
    pub skipped_orgs: Vec<String>,
    /// Set when the run stopped early (audit failure or shutdown).
    pub aborted: Option<String>,
}

/// What a cleanup run needs.
pub struct Cleaner<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Published state (inventories in, runs out).
    pub shared: &'a Shared,
    /// Clients by organization id.
    pub clients: &'a HashMap<String, WorkMail>,
    /// Metrics.
    pub metrics: &'a Metrics,
    /// The audit log.
    pub audit: &'a mut AuditLog,
    /// Stops the run between tokens.
    pub cancel: &'a CancellationToken,
    /// Dates each decision as it is made.
    pub clock: &'a crate::clock::Clock,
}

struct Decision<'t> {
    org: &'t OrgInventory,
    token: &'t Token,
    owner: Option<&'t Owner>,
    rule: &'t str,
    action: Action,
    reason: String,
}

/// What re-verification and the action found: the outcome, why, and the data the decision
/// was made on (the re-read token and owner, when there were some).
struct Outcome {
    action: Action,
    reason: String,
    token: Option<Token>,
    owner: Option<Owner>,
}

impl Outcome {
    fn new(action: Action, reason: impl Into<String>) -> Self {
        Self {
            action,
            reason: reason.into(),
            token: None,
            owner: None,
        }
    }
}

impl Cleaner<'_> {
    /// One cleanup run at `now`.
    pub async fn run(&mut self, now: DateTime<Utc>) -> RunSummary {
        let mut summary = RunSummary::default();
        let mut inventories: Vec<Arc<OrgInventory>> = Vec::new();
        for st in self.shared.snapshot() {
            match (&st.inventory, st.up) {
                (Some(inv), true) => inventories.push(inv.clone()),
                _ => {
                    // Never act on partial or stale data.
                    tracing::warn!(
                        organization = %st.org.label,
                        "cleanup skips the organization: its latest scan is not complete"
                    );
                    summary.skipped_orgs.push(st.org.id.clone());
                }
            }
        }
        let plans: Vec<policy::OrgPlan> = inventories
            .iter()
            .map(|inv| policy::plan(&self.config.cleanup, inv, now))
            .collect();
        let pairs: Vec<(&OrgInventory, &policy::OrgPlan)> =
            inventories.iter().map(|i| i.as_ref()).zip(&plans).collect();
        let approvals = policy::approve(self.config, &pairs);

        for ((inv, plan), approval) in pairs.iter().zip(approvals) {
            if approval.mode == CleanupMode::Off {
                continue;
            }
            let mode = approval.mode.as_str();
            let mut actions = Vec::new();
            let mut candidates: BTreeMap<String, u64> = self
                .config
                .cleanup
                .rules
                .iter()
                .filter(|r| r.applies_to(&inv.org.id))
                .map(|r| (r.name.clone(), 0))
                .collect();
            for c in &plan.candidates {
                *candidates
                    .entry(self.config.cleanup.rules[c.rule].name.clone())
                    .or_default() += 1;
            }
            let mut decisions: Vec<Decision<'_>> = Vec::new();
            for p in &plan.protected {
                decisions.push(Decision {
                    org: inv,
                    token: &p.token,
                    owner: p.owner.as_ref(),
                    rule: &self.config.cleanup.rules[p.rule].name,
                    action: Action::Excluded,
                    reason: format!("protected: {}", p.by),
                });
            }
            for (c, hit) in &approval.held {
                decisions.push(Decision {
                    org: inv,
                    token: &c.token,
                    owner: c.owner.as_ref(),
                    rule: &self.config.cleanup.rules[c.rule].name,
                    action: Action::SkippedLimit,
                    reason: match hit {
                        LimitHit::PerRun => "max_deletions_per_run reached".to_owned(),
                        LimitHit::Percent => format!(
                            "{} candidates exceed max_deletions_percent of the organization's {} tokens: nothing is deleted there",
                            plan.candidates.len(),
                            plan.total_tokens
                        ),
                    },
                });
            }
            for d in decisions {
                if let Err(e) = self.record(&d, mode, &mut summary, &mut actions) {
                    summary.aborted = Some(e);
                    break;
                }
            }
            if summary.aborted.is_none() {
                for approved in &approval.approved {
                    if self.cancel.is_cancelled() {
                        summary.aborted = Some("shutdown".to_owned());
                        break;
                    }
                    let out = self.execute(approved, approval.mode, now).await;
                    let cand = approved.candidate();
                    // The audit line describes the data the decision was made on.
                    let d = Decision {
                        org: inv,
                        token: out.token.as_ref().unwrap_or(&cand.token),
                        owner: out.owner.as_ref().or(cand.owner.as_ref()),
                        rule: &self.config.cleanup.rules[cand.rule].name,
                        action: out.action,
                        reason: out.reason,
                    };
                    if let Err(e) = self.record(&d, mode, &mut summary, &mut actions) {
                        summary.aborted = Some(e);
                        break;
                    }
                }
            }
            self.shared.cleanup_ran(
                &inv.org.id,
                CleanupRun {
                    at: now,
                    mode,
                    candidates,
                    actions,
                },
            );
            if summary.aborted.is_some() {
                break;
            }
        }
        if let Err(e) = self.audit.sync() {
            tracing::error!(error = %e, "cannot sync the audit log");
            summary.aborted.get_or_insert_with(|| e.to_string());
        }
        summary
    }

    /// Re-verifies one approved token and acts on it.
    async fn execute(&self, approved: &Approved, mode: CleanupMode, now: DateTime<Utc>) -> Outcome {
        let cand = approved.candidate();
        let rule = &self.config.cleanup.rules[cand.rule];
        let Some(client) = self.clients.get(approved.org_id()) else {
            return Outcome::new(Action::Failed, "no client for the organization");
        };
        let fresh = match client.get_token(approved.org_id(), &cand.token.id).await {
            Ok(Some(t)) => t,
            Ok(None) => return Outcome::new(Action::AlreadyGone, "the token no longer exists"),
            Err(e) => return Outcome::new(Action::Failed, format!("re-verification failed: {e}")),
        };
        let changed = |why: &str| Outcome {
            action: Action::SkippedChanged,
            reason: why.to_owned(),
            token: Some(fresh.clone()),
            owner: None,
        };
        if fresh.user_id != cand.token.user_id {
            return changed("the token's owner changed since the scan");
        }
        // A re-read that knows less than the scan did is no basis for deleting.
        let lost = (cand.token.last_used.is_some() && fresh.last_used.is_none())
            || (cand.token.created.is_some() && fresh.created.is_none())
            || (cand.token.expires.is_some() && fresh.expires.is_none());
        if lost {
            return changed("the service no longer reports a date it reported at the scan");
        }
        let needs_owner = rule.owner_states.is_some() || rule.owner_disabled_for.is_some();
        let owner = if needs_owner {
            match client
                .describe_user(approved.org_id(), &fresh.user_id)
                .await
            {
                Ok(o) => Some(o.unwrap_or_else(|| Owner::unknown(&fresh.user_id))),
                Err(e) => {
                    return Outcome {
                        action: Action::Failed,
                        reason: format!("re-verification of the owner failed: {e}"),
                        token: Some(fresh),
                        owner: None,
                    };
                }
            }
        } else {
            cand.owner.clone()
        };
        let with = |action: Action, reason: String| Outcome {
            action,
            reason,
            token: Some(fresh.clone()),
            owner: owner.clone(),
        };
        if let Some(by) = policy::exclusion(&self.config.cleanup, &fresh, owner.as_ref()) {
            return with(Action::Excluded, format!("protected: {by}"));
        }
        if !policy::matches(rule, &fresh, owner.as_ref(), now) {
            return with(
                Action::SkippedChanged,
                "the token was used, renewed or its owner changed since the scan; the rule no longer matches".to_owned(),
            );
        }
        let why = describe_match(rule, &fresh, owner.as_ref());
        match mode {
            CleanupMode::Enforce => match client.delete_approved(approved).await {
                Ok(()) => with(Action::Deleted, why),
                Err(e) => with(Action::Failed, format!("delete failed: {e}")),
            },
            _ => with(Action::WouldDelete, why),
        }
    }

    fn record(
        &mut self,
        d: &Decision<'_>,
        mode: &str,
        summary: &mut RunSummary,
        actions: &mut Vec<ActionRecord>,
    ) -> Result<(), String> {
        let record = Record {
            timestamp: self.clock.now(),
            mode: mode.to_owned(),
            organization_id: d.org.org.id.clone(),
            organization: d.org.org.label.clone(),
            user_id: d.token.user_id.clone(),
            user_name: d.owner.and_then(|o| o.name.clone()),
            user_email: d.owner.and_then(|o| o.email.clone()),
            user_state: d
                .owner
                .map_or(OwnerState::Unknown, |o| o.state)
                .as_str()
                .to_owned(),
            token_id: d.token.id.clone(),
            token_name: d.token.name.clone(),
            token_created: d.token.created,
            token_last_used: d.token.last_used,
            token_expires: d.token.expires,
            rule: d.rule.to_owned(),
            reason: d.reason.clone(),
            outcome: d.action.as_str().to_owned(),
        };
        let sync = matches!(d.action, Action::Deleted | Action::Failed);
        let written = self.audit.write(&record, sync);
        if let Err(e) = &written {
            // What already happened must leave a trace even so: the full event at error
            // level, then the run stops.
            tracing::error!(
                target: "workmail_pat_monitor::audit",
                error = %e,
                mode,
                organization_id = %record.organization_id,
                token_id = %record.token_id,
                token_name = %record.token_name,
                rule = %record.rule,
                outcome = %record.outcome,
                reason = %record.reason,
                "cannot write the audit log; stopping the cleanup run"
            );
        }
        tracing::info!(
            target: "workmail_pat_monitor::audit",
            mode,
            organization = %record.organization,
            organization_id = %record.organization_id,
            user_id = %record.user_id,
            user_name = record.user_name.as_deref().unwrap_or(""),
            token_id = %record.token_id,
            token_name = %record.token_name,
            rule = %record.rule,
            outcome = %record.outcome,
            reason = %record.reason,
            "cleanup decision"
        );
        self.metrics.cleanup_action(
            &record.organization_id,
            &record.organization,
            d.rule,
            d.action.as_str(),
        );
        *summary.actions.entry(d.action.as_str()).or_default() += 1;
        actions.push(ActionRecord {
            token_id: record.token_id,
            token_name: record.token_name,
            user_id: record.user_id,
            rule: record.rule,
            action: d.action.as_str(),
            reason: record.reason,
        });
        written.map_err(|e| e.to_string())
    }
}

/// The reason in words for a rule that matches.
pub fn describe_match(rule: &crate::config::Rule, token: &Token, owner: Option<&Owner>) -> String {
    let mut parts = Vec::new();
    let day = |t: Option<DateTime<Utc>>| {
        t.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d").to_string())
    };
    if let Some(d) = rule.expired_for {
        parts.push(format!(
            "expired on {} (rule: expired for at least {})",
            day(token.expires),
            crate::config::format_duration(d)
        ));
    }
    if let Some(d) = rule.unused_for {
        let what = if token.last_used.is_some() {
            format!("last used on {}", day(token.last_used))
        } else {
            format!("never used since its creation on {}", day(token.created))
        };
        parts.push(format!(
            "{what} (rule: unused for at least {})",
            crate::config::format_duration(d)
        ));
    }
    if rule.owner_states.is_some() || rule.owner_disabled_for.is_some() {
        let state = owner.map_or(OwnerState::Unknown, |o| o.state);
        let since = owner
            .and_then(|o| o.disabled_date)
            .map(|t| format!(" since {}", t.format("%Y-%m-%d")))
            .unwrap_or_default();
        parts.push(format!("owner is {state}{since}"));
    }
    parts.join("; ")
}
