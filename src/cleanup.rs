//! Cleanup runs: take the ledger's lock, reconcile the intents earlier runs left without an
//! outcome, plan from each organization's latest complete scan, apply the limits (the daily
//! one counted from the ledger), re-verify every approved token against the API, then delete
//! (enforce) or report (dry-run). In enforce, every delete is preceded by a synced intent
//! record and followed by its outcome; every decision is recorded before it is reported
//! anywhere else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::{CleanupMode, Config};
use crate::inventory::{OrgInventory, OrgRef, Owner, OwnerState, Token};
pub use crate::ledger::Action;
use crate::ledger::{Ledger, Locked, Record};
use crate::metrics::Metrics;
use crate::policy::{self, Approved, Budget, LimitHit};
use crate::state::{ActionRecord, CleanupRun, Shared};
use crate::workmail::WorkMail;

/// The window of `cleanup.max_deletions_per_day`.
const DAY: chrono::Duration = chrono::Duration::hours(24);

/// What a run did, for `once`, the log and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Count per action, reconciliation included.
    pub actions: BTreeMap<Action, u64>,
    /// Intents of earlier runs that this run resolved (`deleted` or `not_deleted`).
    pub reconciled: u64,
    /// Intents still without an outcome after this run (their re-read failed).
    pub unreconciled: u64,
    /// Organizations skipped because their latest scan was not complete.
    pub skipped_orgs: Vec<String>,
    /// Set when the run stopped early (the ledger locked or unwritable, or shutdown).
    pub aborted: Option<String>,
    /// The first failed or unconfirmed decision, in words, for the run's summary line.
    pub first_failure: Option<String>,
}

impl RunSummary {
    /// How many decisions had this outcome.
    pub fn count(&self, action: Action) -> u64 {
        self.actions.get(&action).copied().unwrap_or(0)
    }

    /// Whether an operator must look at this run: it stopped early, a delete failed or
    /// has an unknown outcome, or an intent could not be reconciled.
    pub fn needs_attention(&self) -> bool {
        self.aborted.is_some()
            || self.unreconciled > 0
            || self.actions.iter().any(|(a, n)| a.is_failure() && *n > 0)
    }

    /// `deleted=2 excluded=1`, for one log line.
    pub fn counts(&self) -> String {
        let parts: Vec<String> = self
            .actions
            .iter()
            .map(|(a, n)| format!("{a}={n}"))
            .collect();
        if parts.is_empty() {
            "nothing to do".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// What a cleanup run needs.
pub struct Cleaner<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Published state (inventories in, runs out).
    pub shared: &'a Shared,
    /// Clients by organization id (cheap clones of the daemon's).
    pub clients: HashMap<String, WorkMail>,
    /// Metrics.
    pub metrics: &'a Metrics,
    /// Stops the run between tokens.
    pub cancel: &'a CancellationToken,
    /// Dates each decision as it is made.
    pub clock: &'a crate::clock::Clock,
}

/// One decision, as it is recorded.
struct Decision<'t> {
    org: &'t OrgRef,
    mode: CleanupMode,
    token: &'t Token,
    owner: Option<&'t Owner>,
    rule: &'t str,
    action: Action,
    reason: String,
    reconciled: bool,
}

/// What re-verification found for an approved token.
enum Checked {
    /// A final outcome without a delete: why, and the data the decision was made on.
    Done(Outcome),
    /// The rule still matches the fresh data.
    StillMatches(Found),
}

/// The fresh data a rule still matches, and how.
struct Found {
    token: Token,
    owner: Option<Owner>,
    why: String,
}

/// An outcome, why, and the data the decision was made on (the re-read token and owner,
/// when there were some).
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

/// The writing side of a run: the locked ledger (none in dry-run without one), the run's
/// identity, and what it did so far.
struct Run<'l> {
    ledger: Option<Locked<'l>>,
    id: String,
    summary: RunSummary,
}

impl Cleaner<'_> {
    /// One cleanup run at `now`, recording into `ledger` (required to delete). Each
    /// decision is in the ledger and at DEBUG; the run ends with one summary line, at INFO,
    /// or at WARN when it needs attention.
    pub async fn run(&self, ledger: Option<&mut Ledger>, now: DateTime<Utc>) -> RunSummary {
        // Readable, and unique within the process (runs of the same second differ).
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!(
            "{}-{}-{seq}",
            now.format("%Y%m%dT%H%M%SZ"),
            std::process::id()
        );
        let span = tracing::info_span!("cleanup_run", run_id = %id);
        let summary = self
            .run_inner(ledger, now, id)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let (reconciled, unreconciled) = (summary.reconciled, summary.unreconciled);
        let aborted = summary.aborted.as_deref().unwrap_or("");
        if summary.needs_attention() {
            tracing::warn!(
                actions = %summary.counts(),
                reconciled,
                unreconciled,
                aborted,
                first_failure = summary.first_failure.as_deref().unwrap_or(""),
                "cleanup run needs attention"
            );
        } else {
            tracing::info!(
                actions = %summary.counts(),
                reconciled,
                skipped_orgs = summary.skipped_orgs.len(),
                "cleanup run complete"
            );
        }
        summary
    }

    async fn run_inner(
        &self,
        ledger: Option<&mut Ledger>,
        now: DateTime<Utc>,
        id: String,
    ) -> RunSummary {
        let mut run = Run {
            ledger: None,
            id,
            summary: RunSummary::default(),
        };
        if let Some(l) = ledger {
            match l.lock() {
                Ok(locked) => run.ledger = Some(locked),
                Err(e) => {
                    // Another run holds it (or it cannot be opened): nothing is decided.
                    tracing::error!(error = %e, "cleanup run not started");
                    run.summary.aborted = Some(e.to_string());
                    return run.summary;
                }
            }
        }
        if let Err(e) = self.reconcile(&mut run).await {
            run.summary.aborted = Some(e);
            return self.finish(run);
        }
        let spent = run.ledger.as_ref().map_or(0, |l| l.spent_since(now - DAY));
        let budget = Budget {
            day_left: self
                .config
                .cleanup
                .max_deletions_per_day
                .saturating_sub(spent),
        };

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
                    run.summary.skipped_orgs.push(st.org.id.clone());
                }
            }
        }
        let plans: Vec<policy::OrgPlan> = inventories
            .iter()
            .map(|inv| policy::plan(&self.config.cleanup, inv, now))
            .collect();
        let pairs: Vec<(&OrgInventory, &policy::OrgPlan)> =
            inventories.iter().map(|i| i.as_ref()).zip(&plans).collect();
        let approvals = policy::approve(self.config, &pairs, budget);

        for ((inv, plan), approval) in pairs.iter().zip(approvals) {
            if approval.mode == CleanupMode::Off {
                continue;
            }
            let span = tracing::info_span!("organization", organization = %inv.org.label);
            let mut published = CleanupRun {
                at: now,
                mode: approval.mode,
                candidates: BTreeMap::new(),
                actions: Vec::new(),
                counts: BTreeMap::new(),
            };
            self.run_org(&mut run, inv, plan, &approval, now, budget, &mut published)
                .instrument(span)
                .await;
            let mut candidates: BTreeMap<String, u64> = self
                .config
                .cleanup
                .rules()
                .filter(|(_, r)| r.applies_to(&inv.org.id))
                .map(|(_, r)| (r.name.clone(), 0))
                .collect();
            for c in &plan.candidates {
                *candidates
                    .entry(self.config.cleanup.rule(c.rule).name.clone())
                    .or_default() += 1;
            }
            published.candidates = candidates;
            self.shared.cleanup_ran(&inv.org.id, published);
            if run.summary.aborted.is_some() {
                break;
            }
        }
        self.finish(run)
    }

    /// Only reconciles the ledger's open intents (`check-config --scan`): no plan, no delete.
    pub async fn reconcile_only(&self, ledger: &mut Ledger) -> RunSummary {
        let mut run = Run {
            ledger: None,
            id: format!("reconcile-{}", std::process::id()),
            summary: RunSummary::default(),
        };
        match ledger.lock() {
            Ok(l) => run.ledger = Some(l),
            Err(e) => {
                run.summary.aborted = Some(e.to_string());
                return run.summary;
            }
        }
        if let Err(e) = self.reconcile(&mut run).await {
            run.summary.aborted = Some(e);
        }
        self.finish(run)
    }

    fn finish(&self, mut run: Run<'_>) -> RunSummary {
        if let Some(l) = &mut run.ledger
            && let Err(e) = l.sync()
        {
            tracing::error!(error = %e, "cannot sync the cleanup ledger");
            run.summary.aborted.get_or_insert_with(|| e.to_string());
        }
        run.summary
    }

    /// Decides, and records, every token of one organization that a rule names now.
    #[allow(clippy::too_many_arguments)]
    async fn run_org(
        &self,
        run: &mut Run<'_>,
        inv: &OrgInventory,
        plan: &policy::OrgPlan,
        approval: &policy::OrgApproval,
        now: DateTime<Utc>,
        budget: Budget,
        published: &mut CleanupRun,
    ) {
        let mode = approval.mode;
        let rule_name = |id| self.config.cleanup.rule(id).name.as_str();
        let mut decisions: Vec<Decision<'_>> = Vec::new();
        for p in &plan.protected {
            let token = &inv.tokens[p.index];
            decisions.push(Decision {
                org: &inv.org,
                mode,
                token,
                owner: inv.owner_of(token),
                rule: rule_name(p.rule),
                action: Action::Excluded,
                reason: p.by.reason(),
                reconciled: false,
            });
        }
        for (c, hit) in &approval.held {
            let token = c.token(inv);
            decisions.push(Decision {
                org: &inv.org,
                mode,
                token,
                owner: inv.owner_of(token),
                rule: rule_name(c.rule),
                action: Action::SkippedLimit,
                reason: match hit {
                    LimitHit::PerRun => "max_deletions_per_run reached".to_owned(),
                    LimitHit::PerDay => format!(
                        "max_deletions_per_day ({}) reached: {} spent in the last 24 hours, counted from the ledger",
                        self.config.cleanup.max_deletions_per_day,
                        self.config
                            .cleanup
                            .max_deletions_per_day
                            .saturating_sub(budget.day_left)
                    ),
                    LimitHit::Percent => format!(
                        "{} candidates exceed max_deletions_percent of the organization's {} tokens: nothing is deleted there",
                        plan.candidates.len(),
                        plan.total_tokens
                    ),
                },
                reconciled: false,
            });
        }
        for d in decisions {
            if let Err(e) = self.record(run, &d, Some(published)) {
                run.summary.aborted = Some(e);
                return;
            }
        }
        for approved in &approval.approved {
            if self.cancel.is_cancelled() {
                run.summary.aborted = Some("shutdown".to_owned());
                break;
            }
            let rule = rule_name(approved.rule());
            let out = match self.check(approved, now).await {
                Checked::Done(out) => out,
                Checked::StillMatches(found) => {
                    self.act(run, &inv.org, approved, mode, found, published)
                        .await
                }
            };
            // The record describes the data the decision was made on.
            let d = Decision {
                org: &inv.org,
                mode,
                token: out.token.as_ref().unwrap_or(approved.token()),
                owner: out.owner.as_ref().or(approved.owner()),
                rule,
                action: out.action,
                reason: out.reason,
                reconciled: false,
            };
            if let Err(e) = self.record(run, &d, Some(published)) {
                run.summary.aborted = Some(e);
                break;
            }
        }
    }

    /// Deletes (enforce) or reports (dry-run) a token whose rule still matches. In enforce,
    /// the intent is synced to the ledger first; no intent, no delete.
    async fn act(
        &self,
        run: &mut Run<'_>,
        org: &OrgRef,
        approved: &Approved,
        mode: CleanupMode,
        found: Found,
        published: &mut CleanupRun,
    ) -> Outcome {
        let Found { token, owner, why } = found;
        let with = |action, reason: String| Outcome {
            action,
            reason,
            token: Some(token.clone()),
            owner: owner.clone(),
        };
        if mode != CleanupMode::Enforce {
            return with(Action::WouldDelete, why);
        }
        if run.ledger.is_none() {
            return with(
                Action::Failed,
                "not deleted: enforce needs the ledger (cleanup.audit_log)".to_owned(),
            );
        }
        let Some(client) = self.clients.get(approved.org_id()) else {
            return with(Action::Failed, "no client for the organization".to_owned());
        };
        let intent = Decision {
            org,
            mode,
            token: &token,
            owner: owner.as_ref(),
            rule: &self.config.cleanup.rule(approved.rule()).name,
            action: Action::Intent,
            reason: why.clone(),
            reconciled: false,
        };
        if let Err(e) = self.record(run, &intent, Some(published)) {
            run.summary.aborted = Some(e.clone());
            return with(
                Action::Failed,
                format!("not deleted: the intent could not be recorded: {e}"),
            );
        }
        match client.delete_approved(approved).await {
            Ok(()) => with(Action::Deleted, why),
            Err(e) if e.outcome_unknown() => with(
                Action::Unconfirmed,
                format!(
                    "the delete was sent but its outcome is unknown ({}); the next run reconciles it",
                    with_hint(&e)
                ),
            ),
            Err(e) => with(Action::Failed, format!("delete failed: {}", with_hint(&e))),
        }
    }

    /// Re-verifies one approved token against the API: it still exists, has the same
    /// owner, knows at least what the scan knew, no exclusion protects it, and its rule still
    /// matches at `now`.
    async fn check(&self, approved: &Approved, now: DateTime<Utc>) -> Checked {
        let scanned = approved.token();
        let rule = self.config.cleanup.rule(approved.rule());
        let Some(client) = self.clients.get(approved.org_id()) else {
            return Checked::Done(Outcome::new(
                Action::Failed,
                "no client for the organization",
            ));
        };
        let fresh = match client.get_token(approved.org_id(), &scanned.id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Checked::Done(Outcome::new(
                    Action::AlreadyGone,
                    "the token no longer exists",
                ));
            }
            Err(e) => {
                return Checked::Done(Outcome::new(
                    Action::Failed,
                    format!("re-verification failed: {}", with_hint(&e)),
                ));
            }
        };
        let changed = |why: &str| {
            Checked::Done(Outcome {
                action: Action::SkippedChanged,
                reason: why.to_owned(),
                token: Some(fresh.clone()),
                owner: None,
            })
        };
        if fresh.user_id != scanned.user_id {
            return changed("the token's owner changed since the scan");
        }
        // A re-read that knows less than the scan did is no basis for deleting.
        let lost = (scanned.last_used.is_some() && fresh.last_used.is_none())
            || (scanned.created.is_some() && fresh.created.is_none())
            || (scanned.expires.is_some() && fresh.expires.is_none());
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
                    return Checked::Done(Outcome {
                        action: Action::Failed,
                        reason: format!("re-verification of the owner failed: {}", with_hint(&e)),
                        token: Some(fresh),
                        owner: None,
                    });
                }
            }
        } else {
            approved.owner().cloned()
        };
        if let Some(by) = policy::exclusion(&self.config.cleanup, &fresh, owner.as_ref()) {
            return Checked::Done(Outcome {
                action: Action::Excluded,
                reason: by.reason(),
                token: Some(fresh),
                owner,
            });
        }
        if !policy::matches(rule, &fresh, owner.as_ref(), now) {
            return Checked::Done(Outcome {
                action: Action::SkippedChanged,
                reason: "the token was used, renewed or its owner changed since the scan; the rule no longer matches".to_owned(),
                token: Some(fresh),
                owner,
            });
        }
        let why = describe_match(rule, &fresh, owner.as_ref());
        Checked::StillMatches(Found {
            token: fresh,
            owner,
            why,
        })
    }

    /// Resolves the intents that earlier runs left without a final outcome: a token that is
    /// gone was deleted (`deleted`, reconciled); one still there was not (`not_deleted`).
    /// An intent whose re-read fails stays open (and counts against the daily budget).
    async fn reconcile(&self, run: &mut Run<'_>) -> Result<(), String> {
        let Some(open) = run.ledger.as_ref().map(Locked::open_intents) else {
            return Ok(());
        };
        for intent in open {
            if self.cancel.is_cancelled() {
                return Err("shutdown".to_owned());
            }
            let Some(client) = self.clients.get(&intent.organization_id) else {
                tracing::warn!(
                    organization_id = %intent.organization_id,
                    token_id = %intent.token_id,
                    "cannot reconcile a delete intent: the organization is not scanned any more"
                );
                run.summary.unreconciled += 1;
                continue;
            };
            let (action, reason) = match client
                .get_token(&intent.organization_id, &intent.token_id)
                .await
            {
                Ok(None) => (
                    Action::Deleted,
                    format!(
                        "reconciled: the token is gone after the delete intent of {}",
                        intent.timestamp.to_rfc3339()
                    ),
                ),
                Ok(Some(_)) => (
                    Action::NotDeleted,
                    format!(
                        "reconciled: the token still exists; the delete intended at {} was not carried out",
                        intent.timestamp.to_rfc3339()
                    ),
                ),
                Err(e) => {
                    tracing::warn!(
                        organization_id = %intent.organization_id,
                        token_id = %intent.token_id,
                        error = %e,
                        "cannot reconcile a delete intent yet; it counts against the daily budget until it is"
                    );
                    run.summary.unreconciled += 1;
                    continue;
                }
            };
            let token = Token {
                id: intent.token_id.clone(),
                user_id: intent.user_id.clone(),
                name: intent.token_name.clone(),
                created: intent.token_created,
                last_used: intent.token_last_used,
                expires: intent.token_expires,
                scopes: Vec::new(),
            };
            let owner = Owner {
                name: intent.user_name.clone(),
                email: intent.user_email.clone(),
                state: intent.user_state,
                ..Owner::unknown(&intent.user_id)
            };
            let org = OrgRef {
                id: intent.organization_id.clone(),
                label: intent.organization.clone(),
                region: String::new(),
                account_id: None,
            };
            let d = Decision {
                org: &org,
                mode: intent.mode,
                token: &token,
                owner: Some(&owner),
                rule: &intent.rule,
                action,
                reason,
                reconciled: true,
            };
            self.record(run, &d, None)?;
            run.summary.reconciled += 1;
        }
        Ok(())
    }

    /// Records one decision: the ledger first (synced for intents and outcomes of deletes),
    /// then the log, the counter, the summary and the published run.
    fn record(
        &self,
        run: &mut Run<'_>,
        d: &Decision<'_>,
        published: Option<&mut CleanupRun>,
    ) -> Result<(), String> {
        let record = Record {
            timestamp: self.clock.now(),
            mode: d.mode,
            organization_id: d.org.id.clone(),
            organization: d.org.label.clone(),
            user_id: d.token.user_id.clone(),
            user_name: d.owner.and_then(|o| o.name.clone()),
            user_email: d.owner.and_then(|o| o.email.clone()),
            user_state: d.owner.map_or(OwnerState::Unknown, |o| o.state),
            token_id: d.token.id.clone(),
            token_name: d.token.name.clone(),
            token_created: d.token.created,
            token_last_used: d.token.last_used,
            token_expires: d.token.expires,
            rule: d.rule.to_owned(),
            reason: d.reason.clone(),
            outcome: d.action,
            reconciled: d.reconciled,
            run_id: run.id.clone(),
            pid: std::process::id(),
        };
        let sync = matches!(
            d.action,
            Action::Intent
                | Action::Deleted
                | Action::Failed
                | Action::Unconfirmed
                | Action::NotDeleted
        );
        let written = match &mut run.ledger {
            Some(l) => l.write(&record, sync),
            None => Ok(()),
        };
        if let Err(e) = &written {
            // What already happened must leave a trace even so: the full event at error
            // level, then the run stops.
            tracing::error!(
                target: "workmail_pat_monitor::audit",
                error = %e,
                mode = %record.mode,
                organization_id = %record.organization_id,
                token_id = %record.token_id,
                token_name = record.token_name.as_deref().unwrap_or(""),
                rule = %record.rule,
                outcome = %record.outcome,
                reason = %record.reason,
                "cannot write the cleanup ledger; stopping the cleanup run"
            );
        }
        if d.action == Action::Intent {
            return written.map_err(|e| e.to_string());
        }
        // Per-token decisions are in the ledger; the log has them at DEBUG (failures at
        // WARN) and one summary line per run at INFO.
        macro_rules! decision {
            ($level:ident) => {
                tracing::$level!(
                    target: "workmail_pat_monitor::audit",
                    mode = %record.mode,
                    organization_id = %record.organization_id,
                    user_id = %record.user_id,
                    user_name = record.user_name.as_deref().unwrap_or(""),
                    token_id = %record.token_id,
                    token_name = record.token_name.as_deref().unwrap_or(""),
                    rule = %record.rule,
                    outcome = %record.outcome,
                    reconciled = record.reconciled,
                    reason = %record.reason,
                    "cleanup decision"
                )
            };
        }
        decision!(debug);
        if d.action.is_failure() && run.summary.first_failure.is_none() {
            run.summary.first_failure = Some(format!(
                "{} {} ({}): {}",
                record.outcome, record.token_id, record.organization, record.reason
            ));
        }
        self.metrics.cleanup_action(
            &record.organization_id,
            &record.organization,
            d.rule,
            d.action,
        );
        *run.summary.actions.entry(d.action).or_default() += 1;
        if let Some(p) = published {
            p.keep(ActionRecord {
                token_id: record.token_id,
                token_name: record.token_name,
                user_id: record.user_id,
                rule: record.rule,
                action: d.action,
                reason: record.reason,
            });
        }
        written.map_err(|e| e.to_string())
    }
}

/// An API error and, when it is a common one, what to do about it.
fn with_hint(e: &crate::workmail::ApiError) -> String {
    match &e.hint {
        Some(h) => format!("{e}; hint: {h}"),
        None => e.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(actions: &[(Action, u64)], unreconciled: u64, aborted: bool) -> RunSummary {
        RunSummary {
            actions: actions.iter().copied().collect(),
            unreconciled,
            aborted: aborted.then(|| "shutdown".to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_needs_attention_when_it_failed_stopped_or_left_an_intent_open() {
        use Action::*;
        let cases: &[(&str, RunSummary, bool)] = &[
            ("nothing", summary(&[], 0, false), false),
            (
                "routine decisions",
                summary(
                    &[
                        (Deleted, 3),
                        (WouldDelete, 1),
                        (Excluded, 2),
                        (SkippedLimit, 9),
                    ],
                    0,
                    false,
                ),
                false,
            ),
            (
                "a failure",
                summary(&[(Deleted, 3), (Failed, 1)], 0, false),
                true,
            ),
            (
                "an unknown outcome",
                summary(&[(Unconfirmed, 1)], 0, false),
                true,
            ),
            (
                "a failure counted zero times",
                summary(&[(Failed, 0), (Unconfirmed, 0)], 0, false),
                false,
            ),
            ("an open intent", summary(&[(Deleted, 1)], 1, false), true),
            ("stopped early", summary(&[], 0, true), true),
        ];
        for (case, s, want) in cases {
            assert_eq!(s.needs_attention(), *want, "case: {case}");
        }
    }

    #[test]
    fn counts_read_as_one_line() {
        let s = summary(&[(Action::Excluded, 1), (Action::Deleted, 2)], 0, false);
        assert_eq!(s.counts(), "deleted=2 excluded=1");
        assert_eq!(s.count(Action::Deleted), 2);
        assert_eq!(s.count(Action::Failed), 0);
        assert_eq!(summary(&[], 0, false).counts(), "nothing to do");
    }
}
