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
/// evaluated because the service left out what it needs (no token name; an owner without
/// name and email, or not in the directory). Such a token is held, never deleted: an
/// exclusion that cannot be evaluated must still protect.
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
        if name.is_none() && email.is_none() {
            return Some(Exclusion::held(
                "exclude_users",
                "the owner's name and email are unknown",
            ));
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

/// A token the policy would delete now.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The token.
    pub token: Token,
    /// Its owner as scanned.
    pub owner: Option<Owner>,
    /// The rule.
    pub rule: RuleId,
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
    pub rule: RuleId,
    /// The exclusion.
    pub by: Exclusion,
}

/// A token that becomes eligible within `warn_before`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Token id.
    pub token_id: String,
    /// The rule.
    pub rule: RuleId,
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
            // Only a protection that matters now is worth a decision record.
            Verdict::Excluded {
                rule,
                by,
                now: true,
            } => out.protected.push(Protected {
                token: token.clone(),
                owner: inv.owner_of(token).cloned(),
                rule,
                by,
            }),
            Verdict::Upcoming { .. } | Verdict::Excluded { .. } | Verdict::Never => {}
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
// Private fields rather than `#[non_exhaustive]`: the latter would still let the rest of
// the crate construct (or alter) one.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    org_id: String,
    candidate: Candidate,
}

impl Approved {
    /// The organization id.
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The candidate: the token (as scanned), its owner, the rule.
    pub fn candidate(&self) -> &Candidate {
        &self.candidate
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
                .map(|cand| (cand.clone(), LimitHit::Percent))
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
                approval.held.push((cand.clone(), hit));
                continue;
            }
            left -= 1;
            org_left -= 1;
            day_left -= 1;
            approval.approved.push(Approved {
                org_id: org_id.clone(),
                candidate: cand.clone(),
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
    fn decisions_are_per_token_not_per_user() {
        // One user, a stale token and a live one: only the stale one is a candidate.
        let mut stale = token(400, Some(200), -30);
        stale.id = "stale".into();
        let mut live = token(400, Some(1), -30);
        live.id = "live".into();
        let inv = inventory(vec![stale, live], vec![owner(OwnerState::Enabled, None)]);
        let cfg = config("");
        let p = plan(&cfg.cleanup, &inv, now());
        let ids: Vec<&str> = p.candidates.iter().map(|c| c.token.id.as_str()).collect();
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
        let ids: Vec<&str> = p.pending.iter().map(|c| c.token_id.as_str()).collect();
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
                let owner = inv.owner_of(&c.token);
                prop_assert!(exclusion(&cfg.cleanup, &c.token, owner).is_none());
                prop_assert!(!c.token.name.as_deref().unwrap_or("x").contains('x'));
                // A token used within unused_for never matches that rule.
                if cfg.cleanup.rule(c.rule).name == "unused" {
                    let last = c.token.last_activity().unwrap();
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
