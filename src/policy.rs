//! The cleanup policy: which tokens a rule names, when, and which of them a run may delete.
//! Pure functions of (inventory, config, now): no I/O, no clock.
//!
//! Every decision is per token; a rule that matches a user never reaches that user's other
//! tokens. A deletion can only be executed from an [`Approved`], which only [`approve`]
//! constructs, after exclusions and every limit.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{CleanupConfig, CleanupMode, Config, Rule, RuleId};
use crate::inventory::{OrgInventory, Owner, OwnerState, Token};

/// When a rule matches a token, assuming nothing changes meanwhile (no use, no renewal,
/// no change of the owner).
///
/// `None` means the rule can never match on this data; a missing timestamp counts as no
/// evidence, so it never makes a token eligible (when in doubt, don't delete).
pub fn eligible_at(rule: &Rule, token: &Token, owner: Option<&Owner>) -> Option<DateTime<Utc>> {
    // No token is eligible before it existed; with no creation date, a rule without time
    // conditions is eligible from the beginning of time ([`DateTime::MIN_UTC`]).
    let mut at = token.created.unwrap_or(DateTime::<Utc>::MIN_UTC);
    // Times the service sends and durations the config sets are both unbounded: an
    // overflow means "not within any time that matters", so never eligible.
    let plus = |t: DateTime<Utc>, d: std::time::Duration| {
        t.checked_add_signed(chrono::Duration::from_std(d).ok()?)
    };
    if let Some(d) = rule.expired_for {
        at = at.max(plus(token.expires?, d)?);
    }
    if let Some(d) = rule.unused_for {
        at = at.max(plus(token.last_activity()?, d)?);
    }
    if rule.owner_states.is_some() || rule.owner_disabled_for.is_some() {
        // Owner rules act only on a state the service reported (or a confirmed absence
        // from the directory), never on a missing or unrecognised one.
        let owner = owner?;
        if !owner.state_known {
            return None;
        }
        if let Some(states) = &rule.owner_states
            && !states.contains(&owner.state)
        {
            return None;
        }
        if let Some(d) = rule.owner_disabled_for {
            if !matches!(owner.state, OwnerState::Disabled | OwnerState::Deleted) {
                return None;
            }
            at = at.max(plus(owner.disabled_date?, d)?);
        }
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
        /// The rule.
        rule: RuleId,
        /// When the token became eligible.
        since: DateTime<Utc>,
    },
    /// No rule matches now; the soonest will at `at`.
    Upcoming {
        /// The rule.
        rule: RuleId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A rule matches (or will) but an exclusion protects the token, or cannot be evaluated
    /// on the data the service sent (then the token is held all the same).
    Excluded {
        /// The rule.
        rule: RuleId,
        /// The exclusion.
        by: Exclusion,
        /// Whether the rule matches now (and not only later).
        now: bool,
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
    let mut eligible: Option<(RuleId, DateTime<Utc>)> = None;
    let mut upcoming: Option<(RuleId, DateTime<Utc>)> = None;
    for (i, rule) in cleanup.rules() {
        if !rule.applies_to(&inv.org.id) {
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
        return Verdict::Excluded {
            rule,
            by,
            now: eligible.is_some(),
        };
    }
    match (eligible, upcoming) {
        (Some((rule, since)), _) => Verdict::Eligible { rule, since },
        (None, Some((rule, at))) => Verdict::Upcoming { rule, at },
        (None, None) => Verdict::Never,
    }
}

/// Why an exclusion keeps a token: it matches, or it cannot be evaluated on the data the
/// service sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// What matched (`exclude_users matches "svc-backup"`), or why it is held
    /// (`held: cannot evaluate exclusion exclude_tokens: ...`).
    pub text: String,
    /// Held because the exclusion could not be evaluated.
    pub held: bool,
}

impl Exclusion {
    /// The reason recorded for the decision.
    pub fn reason(&self) -> String {
        if self.held {
            self.text.clone()
        } else {
            format!("protected: {}", self.text)
        }
    }

    fn matched(text: String) -> Self {
        Self { text, held: false }
    }

    fn held(what: &str, why: &str) -> Self {
        Self {
            text: format!("held: cannot evaluate exclusion {what}: {why}"),
            held: true,
        }
    }
}

/// The exclusion that protects a token, if any: one that matches, or one that cannot be
/// evaluated because the service left out what it needs. `exclude_users` matches the user id,
/// name and email, so unless one of them matches it needs both the name and the email;
/// `exclude_tokens` needs the token's name. Such a token is held, never deleted: an
/// exclusion that cannot be evaluated must still protect, whatever members are missing.
pub fn exclusion(
    cleanup: &CleanupConfig,
    token: &Token,
    owner: Option<&Owner>,
) -> Option<Exclusion> {
    fn present(s: Option<&str>) -> Option<&str> {
        s.filter(|s| !s.is_empty())
    }
    if !cleanup.exclude_users.is_empty() {
        let name = owner.and_then(|o| present(o.name.as_deref()));
        let email = owner.and_then(|o| present(o.email.as_deref()));
        for key in [Some(token.user_id.as_str()), name, email]
            .into_iter()
            .flatten()
        {
            if cleanup.exclude_users.is_match(key) {
                return Some(Exclusion::matched(format!("exclude_users matches {key:?}")));
            }
        }
        let missing = match (owner, name, email) {
            (None, _, _) => Some("the owner could not be resolved"),
            (Some(o), None, None) if o.state_known && o.state == OwnerState::Unknown => {
                Some("the owner is not in the directory")
            }
            (_, None, None) => Some("the owner's name and email are unknown"),
            (_, None, Some(_)) => Some("the owner's name is unknown"),
            (_, Some(_), None) => Some("the owner's email is unknown"),
            (_, Some(_), Some(_)) => None,
        };
        if let Some(why) = missing {
            return Some(Exclusion::held("exclude_users", why));
        }
    }
    if !cleanup.exclude_tokens.is_empty() {
        match present(token.name.as_deref()) {
            Some(name) if cleanup.exclude_tokens.is_match(name) => {
                return Some(Exclusion::matched(format!(
                    "exclude_tokens matches {name:?}"
                )));
            }
            Some(_) => {}
            None => {
                return Some(Exclusion::held(
                    "exclude_tokens",
                    "the service sent no token name",
                ));
            }
        }
    }
    None
}

/// A token the policy would delete now. Candidates name their token by its position in the
/// inventory they were planned from (a plan is published and used with that inventory), so
/// that a plan of many candidates costs no copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The token's position in the inventory.
    pub index: usize,
    /// The rule.
    pub rule: RuleId,
    /// When it became eligible.
    pub since: DateTime<Utc>,
}

impl Candidate {
    /// The token, in the inventory the plan was made from.
    pub fn token<'a>(&self, inv: &'a OrgInventory) -> &'a Token {
        &inv.tokens[self.index]
    }
}

/// A token a rule names but an exclusion protects (or holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Protected {
    /// The token's position in the inventory.
    pub index: usize,
    /// The rule.
    pub rule: RuleId,
    /// The exclusion.
    pub by: Exclusion,
}

/// A token that becomes eligible within `warn_before`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pending {
    /// The token's position in the inventory.
    pub index: usize,
    /// The rule.
    pub rule: RuleId,
    /// When it becomes eligible.
    pub at: DateTime<Utc>,
}

/// The policy's view of one organization at one instant: what the report, the status page
/// and the metrics show of the cleanup policy, all from this one evaluation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrgPlan {
    /// Each token's verdict, by its position in the inventory.
    pub verdicts: Vec<Verdict>,
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
    for (index, token) in inv.tokens.iter().enumerate() {
        let v = verdict(cleanup, inv, token, now);
        match &v {
            Verdict::Eligible { rule, since } => out.candidates.push(Candidate {
                index,
                rule: *rule,
                since: *since,
            }),
            Verdict::Upcoming { rule, at } if *at - now <= warn => out.pending.push(Pending {
                index,
                rule: *rule,
                at: *at,
            }),
            // Only a protection that matters now is worth a decision record.
            Verdict::Excluded {
                rule,
                by,
                now: true,
            } => out.protected.push(Protected {
                index,
                rule: *rule,
                by: by.clone(),
            }),
            Verdict::Upcoming { .. } | Verdict::Excluded { .. } | Verdict::Never => {}
        }
        out.verdicts.push(v);
    }
    out.candidates.sort_by(|a, b| {
        a.since
            .cmp(&b.since)
            .then_with(|| a.token(inv).id.cmp(&b.token(inv).id))
    });
    out
}

/// How many tokens of an organization a rule matches at `now`, on its own (whatever the
/// rules before it match), and how many of those an exclusion protects or holds.
pub fn rule_counts(
    cleanup: &CleanupConfig,
    rule: &Rule,
    inv: &OrgInventory,
    now: DateTime<Utc>,
) -> (usize, usize) {
    let (mut matched, mut excluded) = (0, 0);
    for t in &inv.tokens {
        let owner = inv.owner_of(t);
        if matches(rule, t, owner, now) {
            match exclusion(cleanup, t, owner) {
                Some(_) => excluded += 1,
                None => matched += 1,
            }
        }
    }
    (matched, excluded)
}

/// A deletion the policy approved in this run. Only [`approve`] makes one.
// Private fields rather than `#[non_exhaustive]`: the latter would still let the rest of
// the crate construct (or alter) one.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    org_id: String,
    token: Token,
    owner: Option<Owner>,
    rule: RuleId,
    since: DateTime<Utc>,
}

impl Approved {
    /// The organization id.
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The token, as scanned.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// Its owner, as scanned.
    pub fn owner(&self) -> Option<&Owner> {
        self.owner.as_ref()
    }

    /// The rule that names it.
    pub fn rule(&self) -> RuleId {
        self.rule
    }

    /// When it became eligible.
    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }
}

/// Why a candidate was not approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitHit {
    /// `max_deletions_per_run` (global, or the organization's override) was reached.
    PerRun,
    /// The organization's candidates exceed `max_deletions_percent` of its tokens.
    Percent,
    /// `max_deletions_per_day` was reached (counted from the ledger across runs).
    PerDay,
}

/// What a run may still spend of the limits that span runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// `cleanup.max_deletions_per_day` minus what the ledger says the last 24 hours spent.
    pub day_left: u32,
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

/// Applies every limit to the plans of one run.
///
/// Plans are taken in the order given (the caller sorts them); an organization whose plan
/// is absent (no complete scan) must simply not be passed. Organizations in mode `off` get
/// no approvals. The global limits (per run, per day) count every approval, dry-run or
/// enforce, so that a dry-run shows what enforce would do. At exactly
/// `max_deletions_percent`, deletions proceed; above it, none do.
pub fn approve(
    config: &Config,
    plans: &[(&OrgInventory, &OrgPlan)],
    budget: Budget,
) -> Vec<OrgApproval> {
    let c = &config.cleanup;
    let mut left = c.max_deletions_per_run;
    let mut day_left = budget.day_left;
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
                .map(|cand| (*cand, LimitHit::Percent))
                .collect();
            out.push(approval);
            continue;
        }
        let mut org_left = overrides.max_deletions_per_run.unwrap_or(u32::MAX);
        for cand in &plan.candidates {
            let hit = if left == 0 || org_left == 0 {
                Some(LimitHit::PerRun)
            } else if day_left == 0 {
                Some(LimitHit::PerDay)
            } else {
                None
            };
            if let Some(hit) = hit {
                approval.held.push((*cand, hit));
                continue;
            }
            left -= 1;
            org_left -= 1;
            day_left -= 1;
            let token = cand.token(inv);
            approval.approved.push(Approved {
                org_id: org_id.clone(),
                token: token.clone(),
                owner: inv.owner_of(token).cloned(),
                rule: cand.rule,
                since: cand.since,
            });
        }
        out.push(approval);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::config::Config;
    use crate::inventory::{OrgRef, Owner};

    const DAY: i64 = 86_400;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
    }

    fn ago(days: i64) -> DateTime<Utc> {
        now() - chrono::Duration::seconds(days * DAY)
    }

    fn rule(f: impl FnOnce(&mut Rule)) -> Rule {
        let mut r = Rule {
            name: "r".into(),
            expired_for: None,
            unused_for: None,
            owner_states: None,
            owner_disabled_for: None,
            organizations: None,
        };
        f(&mut r);
        r
    }

    fn token(created: i64, last_used: Option<i64>, expires: i64) -> Token {
        Token {
            id: "t".into(),
            user_id: "u".into(),
            name: Some("laptop".into()),
            created: Some(ago(created)),
            last_used: last_used.map(ago),
            expires: Some(ago(expires)),
            scopes: vec![],
        }
    }

    fn expiring_at(at: DateTime<Utc>) -> Token {
        let mut t = token(10, None, 0);
        t.expires = Some(at);
        t
    }

    fn owner(state: OwnerState, disabled_days: Option<i64>) -> Owner {
        Owner {
            user_id: "u".into(),
            name: Some("svc-backup".into()),
            email: Some("svc-backup@example.com".into()),
            display_name: None,
            state,
            disabled_date: disabled_days.map(ago),
            identity_provider_user_id: None,
            state_known: true,
        }
    }

    fn days(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n * DAY as u64))
    }

    #[test]
    fn rules_match_at_and_after_their_thresholds_only() {
        let enabled = owner(OwnerState::Enabled, None);
        let disabled = owner(OwnerState::Disabled, Some(20));
        let undated = owner(OwnerState::Disabled, None);
        let gone = Owner::unknown("u");
        let mut unreported = owner(OwnerState::Unknown, None);
        unreported.state_known = false;
        let cases: Vec<(&str, Rule, Token, Option<&Owner>, bool)> = vec![
            (
                "expired exactly now",
                rule(|r| r.expired_for = days(0)),
                token(100, None, 0),
                Some(&enabled),
                true,
            ),
            (
                "not yet expired",
                rule(|r| r.expired_for = days(0)),
                token(100, None, -1),
                Some(&enabled),
                false,
            ),
            (
                "expired for exactly 7d",
                rule(|r| r.expired_for = days(7)),
                token(100, None, 7),
                Some(&enabled),
                true,
            ),
            (
                "expired for 6d of 7d",
                rule(|r| r.expired_for = days(7)),
                token(100, None, 6),
                Some(&enabled),
                false,
            ),
            (
                "unused exactly 180d",
                rule(|r| r.unused_for = days(180)),
                token(400, Some(180), -10),
                Some(&enabled),
                true,
            ),
            (
                "unused 179d",
                rule(|r| r.unused_for = days(180)),
                token(400, Some(179), -10),
                Some(&enabled),
                false,
            ),
            (
                "never used, created 180d ago",
                rule(|r| r.unused_for = days(180)),
                token(180, None, -10),
                Some(&enabled),
                true,
            ),
            (
                "never used, created 10d ago",
                rule(|r| r.unused_for = days(180)),
                token(10, None, -10),
                Some(&enabled),
                false,
            ),
            (
                "owner disabled",
                rule(|r| r.owner_states = Some(vec![OwnerState::Disabled])),
                token(10, None, -10),
                Some(&disabled),
                true,
            ),
            (
                "owner enabled",
                rule(|r| r.owner_states = Some(vec![OwnerState::Disabled])),
                token(10, None, -10),
                Some(&enabled),
                false,
            ),
            (
                "owner not in the directory",
                rule(|r| r.owner_states = Some(vec![OwnerState::Unknown])),
                token(10, None, -10),
                Some(&gone),
                true,
            ),
            (
                "owner state not reported",
                rule(|r| r.owner_states = Some(vec![OwnerState::Unknown])),
                token(10, None, -10),
                Some(&unreported),
                false,
            ),
            (
                "owner not resolved",
                rule(|r| r.owner_states = Some(vec![OwnerState::Unknown])),
                token(10, None, -10),
                None,
                false,
            ),
            (
                "overflowing expiry",
                rule(|r| r.expired_for = days(1)),
                expiring_at(DateTime::<Utc>::MAX_UTC),
                Some(&enabled),
                false,
            ),
            (
                "overflowing duration",
                rule(|r| r.unused_for = Some(Duration::MAX)),
                token(10, Some(5), -10),
                Some(&enabled),
                false,
            ),
            (
                "disabled 20d, rule 14d",
                rule(|r| r.owner_disabled_for = days(14)),
                token(10, None, -10),
                Some(&disabled),
                true,
            ),
            (
                "disabled 20d, rule 21d",
                rule(|r| r.owner_disabled_for = days(21)),
                token(10, None, -10),
                Some(&disabled),
                false,
            ),
            (
                "disabled for, owner enabled",
                rule(|r| r.owner_disabled_for = days(0)),
                token(10, None, -10),
                Some(&enabled),
                false,
            ),
            (
                "disabled without a date",
                rule(|r| r.owner_disabled_for = days(0)),
                token(10, None, -10),
                Some(&undated),
                false,
            ),
            (
                "combined, both hold",
                rule(|r| {
                    r.expired_for = days(0);
                    r.unused_for = days(30)
                }),
                token(100, Some(40), 1),
                Some(&enabled),
                true,
            ),
            (
                "combined, one fails",
                rule(|r| {
                    r.expired_for = days(0);
                    r.unused_for = days(30)
                }),
                token(100, Some(20), 1),
                Some(&enabled),
                false,
            ),
        ];
        for (case, rule, token, owner, want) in cases {
            assert_eq!(matches(&rule, &token, owner, now()), want, "case: {case}");
        }
    }

    #[test]
    fn missing_timestamps_never_make_a_token_eligible() {
        let mut t = token(400, None, 10);
        t.expires = None;
        t.created = None;
        let r1 = rule(|r| r.expired_for = days(0));
        let r2 = rule(|r| r.unused_for = days(0));
        assert!(!matches(&r1, &t, None, now()));
        assert!(!matches(&r2, &t, None, now()));
    }

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!(
                "[[organizations]]\nid = \"m-00000000000000000000000000000001\"\nalias = \"corp\"\n[cleanup]\nmode = \"enforce\"\naudit_log = \"/var/lib/test/ledger.jsonl\"\nmax_deletions_percent = 100\n{extra}\n[[cleanup.rules]]\nname = \"unused\"\nunused_for = \"90d\"\n"
            ),
            "t",
        )
        .unwrap()
    }

    fn inventory(tokens: Vec<Token>, owners: Vec<Owner>) -> OrgInventory {
        OrgInventory {
            org: OrgRef {
                id: "m-00000000000000000000000000000001".into(),
                label: "corp".into(),
                region: "us-east-1".into(),
                account_id: None,
            },
            scanned_at: now(),
            tokens,
            owners: owners
                .into_iter()
                .map(|o| (o.user_id.clone(), o))
                .collect::<HashMap<_, _>>(),
            pat: None,
        }
    }

    #[test]
    fn rule_counts_count_matches_and_exclusions_apart() {
        // Three stale tokens (one protected by name) and a live one, under "unused 90d".
        let tokens = ["a", "b", "break-glass", "live"]
            .into_iter()
            .map(|id| {
                let mut t = token(400, Some(if id == "live" { 1 } else { 200 }), -30);
                t.id = id.into();
                t.name = Some(id.into());
                t
            })
            .collect();
        let inv = inventory(tokens, vec![owner(OwnerState::Enabled, None)]);
        let cfg = config("exclude_tokens = [\"break-glass*\"]");
        let unused = &cfg.cleanup.rules[0];
        assert_eq!(rule_counts(&cfg.cleanup, unused, &inv, now()), (2, 1));
        // On its own: a rule that nothing matches counts nothing, whatever is excluded.
        let never = rule(|r| r.expired_for = days(10_000));
        assert_eq!(rule_counts(&cfg.cleanup, &never, &inv, now()), (0, 0));
    }

    #[test]
    fn decisions_are_per_token_not_per_user() {
        // One user, a stale token and a live one: only the stale one is a candidate.
        let mut stale = token(400, Some(200), -30);
        stale.id = "stale".into();
        let mut live = token(400, Some(1), -30);
        live.id = "live".into();
        let inv = inventory(vec![stale, live], vec![owner(OwnerState::Enabled, None)]);
        let cfg = config("");
        let p = plan(&cfg.cleanup, &inv, now());
        let ids: Vec<&str> = p
            .candidates
            .iter()
            .map(|c| c.token(&inv).id.as_str())
            .collect();
        assert_eq!(ids, ["stale"]);
    }

    #[test]
    fn exclusions_match_user_name_email_id_and_token_name() {
        let t = token(400, Some(200), -30);
        let o = owner(OwnerState::Enabled, None);
        for (case, extra, excluded) in [
            ("user name glob", "exclude_users = [\"svc-*\"]", true),
            (
                "email",
                "exclude_users = [\"SVC-BACKUP@example.com\"]",
                true,
            ),
            ("user id", "exclude_users = [\"u\"]", true),
            ("token name", "exclude_tokens = [\"lap*\"]", true),
            ("no match", "exclude_users = [\"admin*\"]", false),
        ] {
            let cfg = config(extra);
            let inv = inventory(vec![t.clone()], vec![o.clone()]);
            let v = verdict(&cfg.cleanup, &inv, &t, now());
            assert_eq!(
                matches!(v, Verdict::Excluded { .. }),
                excluded,
                "case: {case}: {v:?}"
            );
        }
    }

    #[test]
    fn pending_tokens_are_those_eligible_within_warn_before() {
        let mut soon = token(400, Some(85), -30);
        soon.id = "soon".into();
        let mut later = token(400, Some(60), -30);
        later.id = "later".into();
        let inv = inventory(vec![soon, later], vec![owner(OwnerState::Enabled, None)]);
        let p = plan(&config("warn_before = \"7d\"").cleanup, &inv, now());
        let ids: Vec<&str> = p
            .pending
            .iter()
            .map(|c| inv.tokens[c.index].id.as_str())
            .collect();
        assert_eq!(ids, ["soon"]);
        assert_eq!(p.pending[0].at, ago(85) + chrono::Duration::days(90));
    }

    fn arb_token() -> impl Strategy<Value = (Token, Owner)> {
        (
            0i64..1000,
            proptest::option::of(0i64..1000),
            -400i64..400,
            0usize..4,
            proptest::option::of(0i64..400),
            "[a-z-]{1,12}",
            "[a-z]{1,8}",
        )
            .prop_map(|(created, used, expires, state, disabled, name, user)| {
                let mut t = token(created, used, expires);
                t.name = Some(name);
                t.user_id = user.clone();
                let mut o = owner(OwnerState::ALL[state], disabled);
                o.user_id = user.clone();
                o.name = Some(user);
                (t, o)
            })
    }

    fn at(days_from_now: i64) -> DateTime<Utc> {
        now() + chrono::Duration::days(days_from_now)
    }

    #[test]
    fn the_soonest_upcoming_rule_names_the_date_and_ties_go_to_the_first_rule() {
        // Token never used, created 10 days ago, expires in 100 days: `unused` (90d) matches
        // in 80 days, `expired` (1d after expiry) in 101 days, `old` (unused 200d) in 190.
        let t = token(10, None, -100);
        let inv = inventory(vec![t.clone()], vec![owner(OwnerState::Enabled, None)]);
        let unused = rule(|r| {
            r.name = "unused".into();
            r.unused_for = days(90)
        });
        let expired = rule(|r| {
            r.name = "expired".into();
            r.expired_for = days(1)
        });
        let old = rule(|r| {
            r.name = "old".into();
            r.unused_for = days(200)
        });
        let same_as_unused = rule(|r| {
            r.name = "twin".into();
            r.unused_for = days(90)
        });
        let cases: Vec<(&str, Vec<Rule>, &str, DateTime<Utc>)> = vec![
            (
                "soonest first",
                vec![unused.clone(), expired.clone()],
                "unused",
                at(80),
            ),
            (
                "soonest last",
                vec![expired.clone(), old.clone(), unused.clone()],
                "unused",
                at(80),
            ),
            (
                "soonest in the middle",
                vec![old.clone(), unused.clone(), expired.clone()],
                "unused",
                at(80),
            ),
            (
                "a tie goes to the first rule",
                vec![unused.clone(), same_as_unused.clone()],
                "unused",
                at(80),
            ),
            (
                "a tie, other order",
                vec![same_as_unused.clone(), unused.clone()],
                "twin",
                at(80),
            ),
        ];
        for (case, rules, want_rule, want_at) in cases {
            let mut cfg = config("");
            cfg.cleanup.rules = rules;
            match verdict(&cfg.cleanup, &inv, &t, now()) {
                Verdict::Upcoming { rule, at } => {
                    assert_eq!(cfg.cleanup.rule(rule).name, want_rule, "case: {case}");
                    assert_eq!(at, want_at, "case: {case}");
                }
                v => panic!("case: {case}: {v:?}"),
            }
            // The plan's pending entry (the "scheduled for deletion" date) says the same.
            cfg.cleanup.warn_before = Duration::from_secs(365 * DAY as u64);
            let p = plan(&cfg.cleanup, &inv, now());
            assert_eq!(p.pending.len(), 1, "case: {case}");
            assert_eq!(
                cfg.cleanup.rule(p.pending[0].rule).name,
                want_rule,
                "case: {case}"
            );
            assert_eq!(p.pending[0].at, want_at, "case: {case}");
        }
    }

    #[test]
    fn a_rule_that_matches_now_wins_over_an_earlier_upcoming_one_and_the_first_match_is_named() {
        let t = token(400, Some(200), -10);
        let inv = inventory(vec![t.clone()], vec![owner(OwnerState::Enabled, None)]);
        let mut cfg = config("");
        cfg.cleanup.rules = vec![
            rule(|r| {
                r.name = "later".into();
                r.unused_for = days(300)
            }),
            rule(|r| {
                r.name = "now-b".into();
                r.unused_for = days(100)
            }),
            rule(|r| {
                r.name = "now-a".into();
                r.unused_for = days(150)
            }),
        ];
        match verdict(&cfg.cleanup, &inv, &t, now()) {
            Verdict::Eligible { rule, since } => {
                assert_eq!(
                    cfg.cleanup.rule(rule).name,
                    "now-b",
                    "first in config order"
                );
                assert_eq!(since, ago(100));
            }
            v => panic!("{v:?}"),
        }
    }

    /// `n` tokens of one enabled owner, the first `stale` of them unused for 200 days.
    fn org_with(n: usize, stale: usize) -> OrgInventory {
        let tokens = (0..n)
            .map(|i| {
                let mut t = token(400, Some(if i < stale { 200 } else { 1 }), -30);
                t.id = format!("t{i:02}");
                t
            })
            .collect();
        inventory(tokens, vec![owner(OwnerState::Enabled, None)])
    }

    fn counts(a: &OrgApproval) -> (usize, Vec<LimitHit>) {
        (a.approved.len(), a.held.iter().map(|(_, h)| *h).collect())
    }

    /// One row of [`limits_hold_at_their_boundaries`].
    struct Limits {
        case: &'static str,
        /// Tokens in the organization, and how many of them are candidates.
        tokens: usize,
        stale: usize,
        percent: f64,
        per_run: u32,
        org_per_run: Option<u32>,
        day_left: u32,
        /// What the limits let through, and what they hold (in order).
        approved: usize,
        held: Vec<LimitHit>,
    }

    #[test]
    fn limits_hold_at_their_boundaries() {
        use LimitHit::*;
        let unlimited = Budget { day_left: u32::MAX };
        let row =
            |case, tokens, stale, percent, per_run, org_per_run, day_left, approved, held| Limits {
                case,
                tokens,
                stale,
                percent,
                per_run,
                org_per_run,
                day_left,
                approved,
                held,
            };
        let cases = vec![
            row(
                "exactly at the percent: deletions proceed",
                10,
                2,
                20.0,
                25,
                None,
                u32::MAX,
                2,
                vec![],
            ),
            row(
                "just above the percent: nothing",
                10,
                2,
                19.9,
                25,
                None,
                u32::MAX,
                0,
                vec![Percent, Percent],
            ),
            row(
                "no candidates at 0 percent",
                10,
                0,
                0.0,
                25,
                None,
                u32::MAX,
                0,
                vec![],
            ),
            row(
                "the run limit",
                10,
                3,
                100.0,
                2,
                None,
                u32::MAX,
                2,
                vec![PerRun],
            ),
            row(
                "a zero run limit",
                10,
                3,
                100.0,
                0,
                None,
                u32::MAX,
                0,
                vec![PerRun, PerRun, PerRun],
            ),
            row(
                "the organization's run limit",
                10,
                3,
                100.0,
                25,
                Some(1),
                u32::MAX,
                1,
                vec![PerRun, PerRun],
            ),
            row(
                "the organization's limit above the global one",
                10,
                3,
                100.0,
                2,
                Some(5),
                u32::MAX,
                2,
                vec![PerRun],
            ),
            row(
                "the daily budget",
                10,
                3,
                100.0,
                25,
                None,
                1,
                1,
                vec![PerDay, PerDay],
            ),
            row(
                "a spent daily budget",
                10,
                3,
                100.0,
                25,
                None,
                0,
                0,
                vec![PerDay, PerDay, PerDay],
            ),
            row(
                "the run limit before the daily budget",
                10,
                3,
                100.0,
                1,
                None,
                1,
                1,
                vec![PerRun, PerRun],
            ),
        ];
        for Limits {
            case,
            tokens,
            stale,
            percent,
            per_run,
            org_per_run,
            day_left,
            approved,
            held,
        } in cases
        {
            let inv = org_with(tokens, stale);
            let mut cfg = config("");
            cfg.cleanup.max_deletions_percent = percent;
            cfg.cleanup.max_deletions_per_run = per_run;
            cfg.organizations[0].cleanup.max_deletions_per_run = org_per_run;
            let p = plan(&cfg.cleanup, &inv, now());
            assert_eq!(p.candidates.len(), stale, "case: {case}");
            let a = approve(&cfg, &[(&inv, &p)], Budget { day_left });
            assert_eq!(counts(&a[0]), (approved, held), "case: {case}");
            // Approvals keep the plan's order (oldest eligibility, then id) and name the
            // organization and the token.
            for (ap, cand) in a[0].approved.iter().zip(&p.candidates) {
                assert_eq!(ap.org_id(), inv.org.id, "case: {case}");
                assert_eq!(ap.token(), cand.token(&inv), "case: {case}");
                assert_eq!(ap.owner(), inv.owner_of(cand.token(&inv)), "case: {case}");
                assert_eq!(
                    (ap.rule(), ap.since()),
                    (cand.rule, cand.since),
                    "case: {case}"
                );
            }
        }
        // The organization's percent overrides the global one, both ways.
        let inv = org_with(10, 2);
        let mut cfg = config("");
        cfg.cleanup.max_deletions_percent = 100.0;
        cfg.organizations[0].cleanup.max_deletions_percent = Some(10.0);
        let p = plan(&cfg.cleanup, &inv, now());
        assert_eq!(counts(&approve(&cfg, &[(&inv, &p)], unlimited)[0]).0, 0);
        cfg.cleanup.max_deletions_percent = 1.0;
        cfg.organizations[0].cleanup.max_deletions_percent = Some(20.0);
        assert_eq!(counts(&approve(&cfg, &[(&inv, &p)], unlimited)[0]).0, 2);
    }

    #[test]
    fn the_global_limits_span_organizations_and_mode_off_approves_nothing() {
        let a = org_with(10, 3);
        let mut b = org_with(10, 3);
        b.org.id = "m-00000000000000000000000000000002".into();
        let mut cfg = config("");
        cfg.cleanup.max_deletions_per_run = 4;
        let (pa, pb) = (plan(&cfg.cleanup, &a, now()), plan(&cfg.cleanup, &b, now()));
        let out = approve(&cfg, &[(&a, &pa), (&b, &pb)], Budget { day_left: 5 });
        assert_eq!(counts(&out[0]), (3, vec![]));
        assert_eq!(
            counts(&out[1]),
            (1, vec![LimitHit::PerRun, LimitHit::PerRun])
        );
        assert_eq!(out[1].approved[0].org_id(), b.org.id);
        let out = approve(&cfg, &[(&a, &pa), (&b, &pb)], Budget { day_left: 4 });
        assert_eq!(
            counts(&out[1]),
            (1, vec![LimitHit::PerRun, LimitHit::PerRun])
        );
        let out = approve(&cfg, &[(&a, &pa), (&b, &pb)], Budget { day_left: 3 });
        assert_eq!(counts(&out[1]), (0, vec![LimitHit::PerDay; 3]));
        cfg.cleanup.mode = CleanupMode::Off;
        let out = approve(&cfg, &[(&a, &pa)], Budget { day_left: 5 });
        assert_eq!(out[0].mode, CleanupMode::Off);
        assert_eq!(counts(&out[0]), (0, vec![]));
    }

    #[test]
    fn exclusions_that_cannot_be_evaluated_hold_the_token() {
        let cfg = config("exclude_users = [\"svc-*\"]\nexclude_tokens = [\"break-glass*\"]");
        let full = owner(OwnerState::Enabled, None);
        let mut alice = full.clone();
        alice.name = Some("alice".into());
        alice.email = Some("alice@example.com".into());
        let strip = |o: &Owner, name: bool, email: bool| {
            let mut o = o.clone();
            if name {
                o.name = None;
            }
            if email {
                o.email = None;
            }
            o
        };
        let named = token(400, Some(200), -30);
        let mut nameless = named.clone();
        nameless.name = None;
        let mut blank = named.clone();
        blank.name = Some(String::new());
        let gone = Owner::unknown("u");
        // (case, token, owner, Some((held, how the exclusion's text ends)) or None)
        type Case<'a> = (&'a str, &'a Token, Option<Owner>, Option<(bool, &'a str)>);
        let cases: Vec<Case<'_>> = vec![
            ("all known, no match", &named, Some(alice.clone()), None),
            (
                "name matches",
                &named,
                Some(full.clone()),
                Some((false, "exclude_users matches \"svc-backup\"")),
            ),
            (
                "email matches without a name",
                &named,
                Some(strip(&full, true, false)),
                Some((false, "exclude_users matches \"svc-backup@example.com\"")),
            ),
            (
                "no name",
                &named,
                Some(strip(&alice, true, false)),
                Some((true, "the owner's name is unknown")),
            ),
            (
                "no email",
                &named,
                Some(strip(&alice, false, true)),
                Some((true, "the owner's email is unknown")),
            ),
            (
                "neither",
                &named,
                Some(strip(&alice, true, true)),
                Some((true, "the owner's name and email are unknown")),
            ),
            (
                "not in the directory",
                &named,
                Some(gone),
                Some((true, "the owner is not in the directory")),
            ),
            (
                "not resolved",
                &named,
                None,
                Some((true, "the owner could not be resolved")),
            ),
            (
                "no token name",
                &nameless,
                Some(alice.clone()),
                Some((true, "exclude_tokens: the service sent no token name")),
            ),
            (
                "an empty token name",
                &blank,
                Some(alice.clone()),
                Some((true, "exclude_tokens: the service sent no token name")),
            ),
        ];
        for (case, t, o, want) in cases {
            let got = exclusion(&cfg.cleanup, t, o.as_ref());
            match (got, want) {
                (None, None) => {}
                (Some(e), Some((held, text))) => {
                    assert_eq!(e.held, held, "case: {case}: {e:?}");
                    assert!(e.text.ends_with(text), "case: {case}: {e:?}");
                    assert_eq!(e.reason().starts_with("held: "), held, "case: {case}");
                }
                (got, want) => panic!("case: {case}: got {got:?}, want {want:?}"),
            }
        }
        // Without exclusions configured, nothing is needed and nothing is held.
        let plain = config("");
        assert_eq!(exclusion(&plain.cleanup, &nameless, None), None);
    }

    /// A token and its owner with every member present, whether an exclusion protects them,
    /// and which members to drop from them.
    fn arb_protected() -> impl Strategy<Value = (Token, Owner, [bool; 7])> {
        (
            0i64..1000,
            proptest::option::of(0i64..1000),
            -400i64..400,
            0usize..4,
            proptest::option::of(0i64..400),
            prop_oneof![Just("svc-".to_owned()), Just("".to_owned())],
            "[a-z]{1,6}",
            prop_oneof![Just("break-glass ".to_owned()), Just("".to_owned())],
            prop_oneof![
                Just("@partner.example".to_owned()),
                Just("@corp.example".to_owned())
            ],
            proptest::array::uniform7(any::<bool>()),
        )
            .prop_map(
                |(
                    created,
                    used,
                    expires,
                    state,
                    disabled,
                    user_prefix,
                    user,
                    token_prefix,
                    domain,
                    drop,
                )| {
                    let mut t = token(created, used, expires);
                    t.id = "t".into();
                    t.user_id = format!("id-{user}");
                    t.name = Some(format!("{token_prefix}{user}"));
                    let mut o = owner(OwnerState::ALL[state], disabled);
                    o.user_id = t.user_id.clone();
                    o.name = Some(format!("{user_prefix}{user}"));
                    o.email = Some(format!("{user}{domain}"));
                    (t, o, drop)
                },
            )
    }

    proptest! {
        /// Whatever members the service leaves out, a token that an exclusion protects with
        /// every member present is never a candidate nor approved; and missing members
        /// never make a token a candidate that is not one with every member present.
        #[test]
        fn no_combination_of_missing_members_turns_a_protected_token_into_a_deletion(
            (full_token, full_owner, drop) in arb_protected(),
        ) {
            let mut cfg = config(
                "exclude_users = [\"svc-*\", \"*@partner.example\"]\nexclude_tokens = [\"break-glass*\"]",
            );
            cfg.cleanup.rules.push(rule(|r| { r.name = "gone".into(); r.owner_states = Some(vec![OwnerState::Disabled, OwnerState::Deleted, OwnerState::Unknown]) }));
            cfg.cleanup.rules.push(rule(|r| { r.name = "exp".into(); r.expired_for = days(1) }));
            cfg.cleanup.rules.push(rule(|r| { r.name = "dis".into(); r.owner_disabled_for = days(10) }));
            let mut t = full_token.clone();
            let mut o = full_owner.clone();
            if drop[0] { t.name = None; }
            if drop[1] { o.name = None; }
            if drop[2] { o.email = None; }
            if drop[3] { t.last_used = None; t.created = None; }
            if drop[4] { t.expires = None; o.disabled_date = None; }
            if drop[5] { o.state_known = false; o.state = OwnerState::Unknown; }
            let owners = if drop[6] { vec![] } else { vec![o] };
            let full = inventory(vec![full_token.clone()], vec![full_owner.clone()]);
            let degraded = inventory(vec![t], owners);
            let p_full = plan(&cfg.cleanup, &full, now());
            let p = plan(&cfg.cleanup, &degraded, now());
            let protected = exclusion(&cfg.cleanup, &full_token, Some(&full_owner)).is_some();
            if protected {
                prop_assert!(p.candidates.is_empty(), "protected, yet a candidate: {:?}", p.candidates);
            }
            for c in &p.candidates {
                prop_assert!(p_full.candidates.iter().any(|f| f.index == c.index));
            }
            let a = approve(&cfg, &[(&degraded, &p)], Budget { day_left: u32::MAX });
            if protected {
                prop_assert!(a[0].approved.is_empty());
            }
        }
    }

    proptest! {
        #[test]
        fn excluded_tokens_are_never_candidates_and_limits_hold(
            tokens in proptest::collection::vec(arb_token(), 0..60),
            max in 0u32..10,
            percent in 0.0f64..100.0,
        ) {
            let mut owners = Vec::new();
            let mut ts = Vec::new();
            for (i, (mut t, o)) in tokens.into_iter().enumerate() {
                t.id = format!("t{i}");
                ts.push(t);
                owners.push(o);
            }
            let inv = inventory(ts, owners);
            let mut cfg = config("exclude_users = [\"a*\"]\nexclude_tokens = [\"*x*\"]");
            cfg.cleanup.rules.push(rule(|r| { r.name = "dis".into(); r.owner_states = Some(vec![OwnerState::Disabled, OwnerState::Deleted]) }));
            cfg.cleanup.rules.push(rule(|r| { r.name = "exp".into(); r.expired_for = days(0) }));
            cfg.cleanup.max_deletions_per_run = max;
            cfg.cleanup.max_deletions_percent = percent;
            let p = plan(&cfg.cleanup, &inv, now());
            for c in &p.candidates {
                let token = c.token(&inv);
                let owner = inv.owner_of(token);
                prop_assert!(exclusion(&cfg.cleanup, token, owner).is_none());
                prop_assert!(!token.name.as_deref().unwrap_or("x").contains('x'));
                // A token used within unused_for never matches that rule.
                if cfg.cleanup.rule(c.rule).name == "unused" {
                    let last = token.last_activity().unwrap();
                    prop_assert!(now() - last >= chrono::Duration::days(90));
                }
            }
            let approvals = approve(&cfg, &[(&inv, &p)], Budget { day_left: u32::MAX });
            let approved: usize = approvals.iter().map(|a| a.approved.len()).sum();
            prop_assert!(approved <= max as usize);
            prop_assert!(approved as f64 <= p.total_tokens as f64 * percent / 100.0);
            let held: usize = approvals.iter().map(|a| a.held.len()).sum();
            prop_assert_eq!(approved + held, p.candidates.len());
        }
    }
}
