//! The cleanup policy: which tokens a rule names, when, and which of them a run may delete.
//! Pure functions of (inventory, config, now): no I/O, no clock.
//!
//! Every decision is per token; a rule that matches a user never reaches that user's other
//! tokens. A deletion can only be executed from an [`Approved`], which only [`approve`]
//! constructs, after exclusions and every limit.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{CleanupConfig, CleanupMode, Config, Rule};
use crate::inventory::{OrgInventory, Owner, OwnerState, Token};

/// When a rule matches a token, assuming nothing changes meanwhile (no use, no renewal,
/// no change of the owner).
///
/// `None` means the rule can never match on this data; a missing timestamp counts as no
/// evidence, so it never makes a token eligible (when in doubt, don't delete).
pub fn eligible_at(rule: &Rule, token: &Token, owner: Option<&Owner>) -> Option<DateTime<Utc>> {
    let mut at = DateTime::<Utc>::MIN_UTC;
    if let Some(d) = rule.expired_for {
        at = at.max(token.expires? + chrono::Duration::from_std(d).ok()?);
    }
    if let Some(d) = rule.unused_for {
        at = at.max(token.last_activity()? + chrono::Duration::from_std(d).ok()?);
    }
    let state = owner.map_or(OwnerState::Unknown, |o| o.state);
    if let Some(states) = &rule.owner_states
        && !states.contains(&state)
    {
        return None;
    }
    if let Some(d) = rule.owner_disabled_for {
        if !matches!(state, OwnerState::Disabled | OwnerState::Deleted) {
            return None;
        }
        at = at.max(owner?.disabled_date? + chrono::Duration::from_std(d).ok()?);
    }
    Some(at)
}

/// Whether a rule matches a token at `now`.
pub fn matches(rule: &Rule, token: &Token, owner: Option<&Owner>, now: DateTime<Utc>) -> bool {
    eligible_at(rule, token, owner).is_some_and(|at| at <= now)
}

/// What the policy says of one token.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A rule matches now (the first one in config order); `since` is when it started to.
    Eligible {
        /// Index of the rule in `cleanup.rules`.
        rule: usize,
        /// When the token became eligible.
        since: DateTime<Utc>,
    },
    /// No rule matches now; the soonest will at `at`.
    Upcoming {
        /// Index of the rule.
        rule: usize,
        /// When.
        at: DateTime<Utc>,
    },
    /// A rule matches (or will) but an exclusion protects the token.
    Excluded {
        /// Index of the rule.
        rule: usize,
        /// The exclusion, e.g. `exclude_users "svc-*"`.
        by: String,
    },
    /// No rule will match on current data.
    Never,
}

/// The verdict for one token of an organization.
pub fn verdict(
    cleanup: &CleanupConfig,
    inv: &OrgInventory,
    token: &Token,
    now: DateTime<Utc>,
) -> Verdict {
    let owner = inv.owner_of(token);
    let mut eligible: Option<(usize, DateTime<Utc>)> = None;
    let mut upcoming: Option<(usize, DateTime<Utc>)> = None;
    for (i, rule) in cleanup.rules.iter().enumerate() {
        if !rule.applies_to(&inv.org.id, &inv.org.label) {
            continue;
        }
        let Some(at) = eligible_at(rule, token, owner) else {
            continue;
        };
        if at <= now {
            if eligible.is_none() {
                eligible = Some((i, at));
            }
        } else if upcoming.is_none_or(|(_, u)| at < u) {
            upcoming = Some((i, at));
        }
    }
    let named = eligible.or(upcoming);
    if let Some((rule, _)) = named
        && let Some(by) = exclusion(cleanup, token, owner)
    {
        return Verdict::Excluded { rule, by };
    }
    match (eligible, upcoming) {
        (Some((rule, since)), _) => Verdict::Eligible { rule, since },
        (None, Some((rule, at))) => Verdict::Upcoming { rule, at },
        (None, None) => Verdict::Never,
    }
}

/// The exclusion that protects a token, if any.
pub fn exclusion(cleanup: &CleanupConfig, token: &Token, owner: Option<&Owner>) -> Option<String> {
    let user_keys = [
        Some(token.user_id.as_str()),
        owner.and_then(|o| o.name.as_deref()),
        owner.and_then(|o| o.email.as_deref()),
    ];
    for key in user_keys.into_iter().flatten() {
        if cleanup.exclude_users.is_match(key) {
            return Some(format!("exclude_users matches {key:?}"));
        }
    }
    if cleanup.exclude_tokens.is_match(&token.name) {
        return Some(format!("exclude_tokens matches {:?}", token.name));
    }
    None
}

/// A token the policy would delete now.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The token.
    pub token: Token,
    /// Its owner as scanned.
    pub owner: Option<Owner>,
    /// Index of the rule.
    pub rule: usize,
    /// When it became eligible.
    pub since: DateTime<Utc>,
}

/// A token a rule names but an exclusion protects.
#[derive(Debug, Clone, PartialEq)]
pub struct Protected {
    /// The token.
    pub token: Token,
    /// Its owner.
    pub owner: Option<Owner>,
    /// The rule.
    pub rule: usize,
    /// The exclusion.
    pub by: String,
}

/// A token that becomes eligible within `warn_before`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Token id.
    pub token_id: String,
    /// The rule.
    pub rule: usize,
    /// When it becomes eligible.
    pub at: DateTime<Utc>,
}

/// The policy's view of one organization at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrgPlan {
    /// Eligible now, oldest eligibility first.
    pub candidates: Vec<Candidate>,
    /// Named by a rule but excluded.
    pub protected: Vec<Protected>,
    /// Eligible within `warn_before`.
    pub pending: Vec<Pending>,
    /// Tokens in the organization.
    pub total_tokens: usize,
}

/// Plans one organization.
pub fn plan(cleanup: &CleanupConfig, inv: &OrgInventory, now: DateTime<Utc>) -> OrgPlan {
    let warn = chrono::Duration::from_std(cleanup.warn_before).unwrap_or(chrono::Duration::MAX);
    let mut out = OrgPlan {
        total_tokens: inv.tokens.len(),
        ..Default::default()
    };
    for token in &inv.tokens {
        match verdict(cleanup, inv, token, now) {
            Verdict::Eligible { rule, since } => out.candidates.push(Candidate {
                token: token.clone(),
                owner: inv.owner_of(token).cloned(),
                rule,
                since,
            }),
            Verdict::Upcoming { rule, at } if at - now <= warn => out.pending.push(Pending {
                token_id: token.id.clone(),
                rule,
                at,
            }),
            Verdict::Excluded { rule, by } => out.protected.push(Protected {
                token: token.clone(),
                owner: inv.owner_of(token).cloned(),
                rule,
                by,
            }),
            Verdict::Upcoming { .. } | Verdict::Never => {}
        }
    }
    out.candidates.sort_by(|a, b| {
        a.since
            .cmp(&b.since)
            .then_with(|| a.token.id.cmp(&b.token.id))
    });
    out
}

/// A deletion the policy approved in this run. Only [`approve`] makes one.
// A private field rather than `#[non_exhaustive]`: the latter would still let the rest of
// the crate construct one.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    /// Organization id.
    pub org_id: String,
    /// The candidate.
    pub candidate: Candidate,
    _private: (),
}

/// Why a candidate was not approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitHit {
    /// `max_deletions_per_run` (global, or the organization's override) was reached.
    PerRun,
    /// The organization's candidates exceed `max_deletions_percent` of its tokens.
    Percent,
}

/// The outcome of applying the limits to one organization's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgApproval {
    /// Organization id.
    pub org_id: String,
    /// The mode in force for it.
    pub mode: CleanupMode,
    /// Approved deletions, in execution order.
    pub approved: Vec<Approved>,
    /// Candidates held back by a limit.
    pub held: Vec<(Candidate, LimitHit)>,
}

/// Applies exclusions' results and every limit to the plans of one run.
///
/// Plans are taken in the order given (the caller sorts them); an organization whose plan
/// is absent (no complete scan) must simply not be passed. Organizations in mode `off` get
/// no approvals. The global limit counts every approval, dry-run or enforce.
pub fn approve(config: &Config, plans: &[(&OrgInventory, &OrgPlan)]) -> Vec<OrgApproval> {
    let c = &config.cleanup;
    let mut left = c.max_deletions_per_run;
    let mut out = Vec::new();
    for (inv, plan) in plans {
        let org_id = inv.org.id.clone();
        let mode = config.cleanup_mode(&org_id);
        let overrides = config
            .org(&org_id)
            .map(|o| o.cleanup.clone())
            .unwrap_or_default();
        let mut approval = OrgApproval {
            org_id: org_id.clone(),
            mode,
            approved: Vec::new(),
            held: Vec::new(),
        };
        if mode == CleanupMode::Off {
            out.push(approval);
            continue;
        }
        let percent = overrides
            .max_deletions_percent
            .unwrap_or(c.max_deletions_percent);
        let allowed_by_percent = plan.total_tokens as f64 * percent / 100.0;
        if plan.candidates.len() as f64 > allowed_by_percent {
            approval.held = plan
                .candidates
                .iter()
                .map(|cand| (cand.clone(), LimitHit::Percent))
                .collect();
            out.push(approval);
            continue;
        }
        let mut org_left = overrides.max_deletions_per_run.unwrap_or(u32::MAX);
        for cand in &plan.candidates {
            if left == 0 || org_left == 0 {
                approval.held.push((cand.clone(), LimitHit::PerRun));
                continue;
            }
            left -= 1;
            org_left -= 1;
            approval.approved.push(Approved {
                org_id: org_id.clone(),
                candidate: cand.clone(),
                _private: (),
            });
        }
        out.push(approval);
    }
    out
}
