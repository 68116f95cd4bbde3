//! The inventory report: every token with its owner and cleanup verdict, as one stable JSON
//! schema (also served at `/api/v1/tokens`), a terminal table or RFC 4180 CSV.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::config::Config;
use crate::inventory::{OrgInventory, OwnerState, Token};
use crate::policy::Verdict;
use crate::state::OrgStatus;

/// Report schema version; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Schema version.
    pub schema_version: u32,
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// Whether every organization's latest scan completed.
    pub complete: bool,
    /// One entry per organization.
    pub organizations: Vec<OrgRow>,
    /// Matching tokens, soonest expiry first.
    pub tokens: Vec<TokenRow>,
}

/// An organization in the report.
#[derive(Debug, Clone, Serialize)]
pub struct OrgRow {
    /// Id.
    pub organization_id: String,
    /// Label.
    pub organization: String,
    /// Whether the latest scan completed.
    pub up: bool,
    /// When the data was scanned (the last complete scan).
    pub scanned_at: Option<DateTime<Utc>>,
    /// The latest scan error, if any, on one line.
    pub error: Option<String>,
    /// What to do about that error, when it is a common one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Tokens in the last complete scan.
    pub tokens: usize,
}

/// The policy's word on a token, as the report, the status page and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    /// A rule matches now.
    Eligible,
    /// A rule will match at `at`.
    Upcoming,
    /// An exclusion protects it (or holds it, when it cannot be evaluated).
    Excluded,
    /// No rule matches, now or later, on current data.
    None,
}

impl VerdictStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictStatus::Eligible => "eligible",
            VerdictStatus::Upcoming => "upcoming",
            VerdictStatus::Excluded => "excluded",
            VerdictStatus::None => "none",
        }
    }
}

/// What the cleanup policy says of a token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CleanupVerdict {
    /// `eligible` (a rule matches now), `upcoming` (will match at `at`), `excluded`, `none`.
    pub status: VerdictStatus,
    /// The rule.
    pub rule: Option<String>,
    /// When the token became or becomes eligible.
    pub at: Option<DateTime<Utc>>,
    /// The exclusion that protects it.
    pub excluded_by: Option<String>,
}

/// A token in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    /// Organization id.
    pub organization_id: String,
    /// Organization label.
    pub organization: String,
    /// Owner user id.
    pub user_id: String,
    /// Owner user name.
    pub user_name: Option<String>,
    /// Owner email.
    pub user_email: Option<String>,
    /// Owner display name.
    pub user_display_name: Option<String>,
    /// Owner state.
    pub user_state: OwnerState,
    /// IAM Identity Center user id.
    pub identity_provider_user_id: Option<String>,
    /// Token id.
    pub token_id: String,
    /// Token name (`null` when the service sent none).
    pub token_name: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Created.
    pub created: Option<DateTime<Utc>>,
    /// Last used.
    pub last_used: Option<DateTime<Utc>>,
    /// Expires.
    pub expires: Option<DateTime<Utc>>,
    /// Days until expiry (negative once expired), to one decimal.
    pub days_left: Option<f64>,
    /// The cleanup verdict.
    pub cleanup: CleanupVerdict,
}

/// Filters of the `report` command.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Organization id or label.
    pub organization: Option<String>,
    /// Only tokens expiring within this (expired ones included).
    pub expiring_within: Option<Duration>,
    /// Only tokens unused for at least this.
    pub unused_for: Option<Duration>,
    /// Only tokens whose owner is in this state.
    pub owner_state: Option<OwnerState>,
}

impl Filter {
    fn selects(&self, org_id: &str, org_label: &str) -> bool {
        self.organization
            .as_ref()
            .is_none_or(|o| o == org_id || o == org_label)
    }

    fn keep(&self, row: &TokenRow, now: DateTime<Utc>) -> bool {
        if let Some(w) = self.expiring_within {
            let limit = chrono::Duration::from_std(w)
                .ok()
                .and_then(|w| now.checked_add_signed(w))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            if row.expires.is_none_or(|e| e > limit) {
                return false;
            }
        }
        if let Some(u) = self.unused_for {
            let last = row.last_used.or(row.created);
            let min = chrono::Duration::from_std(u).unwrap_or(chrono::Duration::MAX);
            if last.is_none_or(|l| now - l < min) {
                return false;
            }
        }
        self.owner_state.is_none_or(|s| s == row.user_state)
    }
}

/// Builds the full report from published state.
pub fn build(config: &Config, orgs: &[OrgStatus], now: DateTime<Utc>) -> Report {
    build_filtered(config, orgs, now, &Filter::default())
}

/// Builds the report with a filter.
pub fn build_filtered(
    config: &Config,
    orgs: &[OrgStatus],
    now: DateTime<Utc>,
    filter: &Filter,
) -> Report {
    let rows = org_rows(orgs, filter);
    let tokens = sorted_tokens(orgs, filter, now)
        .into_iter()
        .map(|(_, st, inv, i)| token_row(config, st, inv, i, now))
        .filter(|row| filter.keep(row, now))
        .collect();
    Report {
        schema_version: SCHEMA_VERSION,
        generated_at: now,
        complete: complete(&rows),
        organizations: rows,
        tokens,
    }
}

/// Writes the whole report as compact JSON, a row at a time: the same document as
/// [`build`] serializes to, without ever holding every row in memory.
pub fn write_json(
    config: &Config,
    orgs: &[OrgStatus],
    now: DateTime<Utc>,
    mut out: impl std::io::Write,
) -> std::io::Result<()> {
    let filter = Filter::default();
    let rows = org_rows(orgs, &filter);
    write!(
        out,
        "{{\"schema_version\":{SCHEMA_VERSION},\"generated_at\":{},\"complete\":{},\"organizations\":",
        serde_json::to_string(&now)?,
        complete(&rows)
    )?;
    serde_json::to_writer(&mut out, &rows)?;
    out.write_all(b",\"tokens\":[")?;
    let mut first = true;
    for (_, st, inv, i) in sorted_tokens(orgs, &filter, now) {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        serde_json::to_writer(&mut out, &token_row(config, st, inv, i, now))?;
    }
    out.write_all(b"]}")
}

fn complete(rows: &[OrgRow]) -> bool {
    !rows.is_empty() && rows.iter().all(|r| r.up)
}

fn org_rows(orgs: &[OrgStatus], filter: &Filter) -> Vec<OrgRow> {
    orgs.iter()
        .filter(|st| filter.selects(&st.org.id, &st.org.label))
        .map(|st| OrgRow {
            organization_id: st.org.id.clone(),
            organization: st.org.label.clone(),
            up: st.up,
            scanned_at: st.inventory.as_ref().map(|i| i.scanned_at),
            error: st.last_error.as_ref().map(|e| e.message.clone()),
            hint: st.last_error.as_ref().and_then(|e| e.hint.clone()),
            tokens: st.inventory.as_ref().map_or(0, |i| i.tokens.len()),
        })
        .collect()
}

/// Days until expiry (negative once expired), to one decimal, rounded down.
fn days_left(t: &Token, now: DateTime<Utc>) -> Option<f64> {
    t.expires
        .map(|e| ((e - now).num_seconds() as f64 / 8640.0).floor() / 10.0)
}

/// A token of the report, by its position in its organization's inventory, with its sort key.
type Sorted<'a> = (f64, &'a OrgStatus, &'a OrgInventory, usize);

/// The selected organizations' tokens, soonest expiry first, then by organization and id.
fn sorted_tokens<'a>(
    orgs: &'a [OrgStatus],
    filter: &Filter,
    now: DateTime<Utc>,
) -> Vec<Sorted<'a>> {
    let mut out: Vec<Sorted<'a>> = orgs
        .iter()
        .filter(|st| filter.selects(&st.org.id, &st.org.label))
        .filter_map(|st| st.inventory.as_deref().map(|inv| (st, inv)))
        .flat_map(|(st, inv)| {
            inv.tokens
                .iter()
                .enumerate()
                .map(move |(i, t)| (days_left(t, now).unwrap_or(f64::INFINITY), st, inv, i))
        })
        .collect();
    out.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| a.1.org.label.cmp(&b.1.org.label))
            .then_with(|| a.2.tokens[a.3].id.cmp(&b.2.tokens[b.3].id))
    });
    out
}

/// The verdict the plan published with the scan gave a token.
fn published_verdict(config: &Config, st: &OrgStatus, index: usize) -> CleanupVerdict {
    let none = CleanupVerdict {
        status: VerdictStatus::None,
        rule: None,
        at: None,
        excluded_by: None,
    };
    let Some(verdict) = st.plan.as_ref().and_then(|p| p.verdicts.get(index)) else {
        return none;
    };
    let name = |id| Some(config.cleanup.rule(id).name.clone());
    match verdict {
        Verdict::Eligible { rule, since } => CleanupVerdict {
            status: VerdictStatus::Eligible,
            rule: name(*rule),
            at: (*since != DateTime::<Utc>::MIN_UTC).then_some(*since),
            excluded_by: None,
        },
        Verdict::Upcoming { rule, at } => CleanupVerdict {
            status: VerdictStatus::Upcoming,
            rule: name(*rule),
            at: Some(*at),
            excluded_by: None,
        },
        Verdict::Excluded { rule, by, .. } => CleanupVerdict {
            status: VerdictStatus::Excluded,
            rule: name(*rule),
            at: None,
            excluded_by: Some(by.text.clone()),
        },
        Verdict::Never => none,
    }
}

fn token_row(
    config: &Config,
    st: &OrgStatus,
    inv: &OrgInventory,
    index: usize,
    now: DateTime<Utc>,
) -> TokenRow {
    let t = &inv.tokens[index];
    let owner = inv.owner_of(t);
    let cleanup = published_verdict(config, st, index);
    TokenRow {
        organization_id: st.org.id.clone(),
        organization: st.org.label.clone(),
        user_id: t.user_id.clone(),
        user_name: owner.and_then(|o| o.name.clone()),
        user_email: owner.and_then(|o| o.email.clone()),
        user_display_name: owner.and_then(|o| o.display_name.clone()),
        user_state: inv.owner_state(t),
        identity_provider_user_id: owner.and_then(|o| o.identity_provider_user_id.clone()),
        token_id: t.id.clone(),
        token_name: t.name.clone(),
        scopes: t.scopes.clone(),
        created: t.created,
        last_used: t.last_used,
        expires: t.expires,
        days_left: days_left(t, now),
        cleanup,
    }
}

fn day(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

fn verdict_text(v: &CleanupVerdict) -> String {
    let rule = v.rule.as_deref().unwrap_or("");
    match v.status {
        VerdictStatus::Eligible => format!("delete now ({rule})"),
        VerdictStatus::Upcoming => format!("{rule} from {}", day(v.at)),
        VerdictStatus::Excluded => format!("excluded ({rule})"),
        VerdictStatus::None => String::new(),
    }
}

/// The CSV header, in column order.
pub const CSV_COLUMNS: &[&str] = &[
    "organization_id",
    "organization",
    "user_id",
    "user_name",
    "user_email",
    "user_state",
    "identity_provider_user_id",
    "token_id",
    "token_name",
    "scopes",
    "created",
    "last_used",
    "expires",
    "days_left",
    "cleanup_status",
    "cleanup_rule",
    "cleanup_at",
];

/// A text cell as CSV carries it: one that a spreadsheet would run as a formula (it begins
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as OWASP
/// advises against CSV injection. Numbers and dates the report computes are not text cells.
fn text_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// Renders the report as RFC 4180 CSV (CRLF line ends, quoting as needed).
pub fn to_csv(report: &Report) -> Result<String, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    let ts = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default()
    };
    for r in &report.tokens {
        w.write_record([
            text_cell(&r.organization_id).as_ref(),
            &text_cell(&r.organization),
            &text_cell(&r.user_id),
            &text_cell(r.user_name.as_deref().unwrap_or("")),
            &text_cell(r.user_email.as_deref().unwrap_or("")),
            r.user_state.as_str(),
            &text_cell(r.identity_provider_user_id.as_deref().unwrap_or("")),
            &text_cell(&r.token_id),
            &text_cell(r.token_name.as_deref().unwrap_or("")),
            &text_cell(&r.scopes.join(" ")),
            &ts(r.created),
            &ts(r.last_used),
            &ts(r.expires),
            &r.days_left.map(|d| format!("{d:.1}")).unwrap_or_default(),
            r.cleanup.status.as_str(),
            &text_cell(r.cleanup.rule.as_deref().unwrap_or("")),
            &ts(r.cleanup.at),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Renders the report as a table that fits a terminal.
pub fn to_table(report: &Report) -> String {
    let header = [
        "ORGANIZATION",
        "USER",
        "STATE",
        "TOKEN",
        "EXPIRES",
        "DAYS",
        "LAST USED",
        "CLEANUP",
    ];
    // Widths are terminal columns: CJK characters and most emoji take two.
    let cell = |s: &str, n: usize| {
        if s.width() <= n {
            return s.to_owned();
        }
        let mut out = String::new();
        for c in s.chars() {
            if out.width() + c.width().unwrap_or(0) + 1 > n {
                break;
            }
            out.push(c);
        }
        out.push('…');
        out
    };
    let rows: Vec<[String; 8]> = report
        .tokens
        .iter()
        .map(|r| {
            [
                cell(&r.organization, 16),
                cell(
                    r.user_name
                        .as_deref()
                        .or(r.user_email.as_deref())
                        .unwrap_or(&r.user_id),
                    24,
                ),
                r.user_state.as_str().to_owned(),
                cell(r.token_name.as_deref().unwrap_or("-"), 24),
                day(r.expires),
                r.days_left.map(|d| format!("{d:.1}")).unwrap_or_default(),
                if r.last_used.is_some() {
                    day(r.last_used)
                } else {
                    "never".to_owned()
                },
                cell(&verdict_text(&r.cleanup), 28),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.width());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w.saturating_sub(c.width())));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&header.map(str::to_owned));
    for r in &rows {
        out.push_str(&line(r));
    }
    let incomplete: Vec<&str> = report
        .organizations
        .iter()
        .filter(|o| !o.up)
        .map(|o| o.organization.as_str())
        .collect();
    out.push_str(&format!(
        "{} tokens in {} organizations{}\n",
        report.tokens.len(),
        report.organizations.len(),
        if incomplete.is_empty() {
            String::new()
        } else {
            format!("; INCOMPLETE scan of: {}", incomplete.join(", "))
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr;

    use super::*;

    #[test]
    fn table_columns_align_in_terminal_columns() {
        let row = |name: &str| TokenRow {
            organization_id: "m-1".into(),
            organization: "corp".into(),
            user_id: "u".into(),
            user_name: Some("ユーザー".into()),
            user_email: None,
            user_display_name: None,
            user_state: OwnerState::Enabled,
            identity_provider_user_id: None,
            token_id: "t".into(),
            token_name: Some(name.into()),
            scopes: vec![],
            created: None,
            last_used: None,
            expires: None,
            days_left: None,
            cleanup: CleanupVerdict {
                status: VerdictStatus::None,
                rule: None,
                at: None,
                excluded_by: None,
            },
        };
        let report = Report {
            schema_version: SCHEMA_VERSION,
            generated_at: DateTime::<Utc>::MIN_UTC,
            complete: true,
            organizations: vec![],
            tokens: vec![
                row("メール クライアント メール クライアント"),
                row("📱📱"),
                row("mutt"),
            ],
        };
        let text = to_table(&report);
        let lines: Vec<&str> = text.lines().take(4).collect();
        // The STATE column starts at the same terminal column on every line.
        let state_at = |l: &str| {
            let i = l.find("ENABLED").or_else(|| l.find("STATE")).unwrap();
            l[..i].width()
        };
        let first = state_at(lines[0]);
        for l in &lines {
            assert_eq!(state_at(l), first, "{text}");
        }
        // Long names are cut to the column (24 columns), with an ellipsis.
        assert!(text.contains('…'));
        for l in &lines[1..] {
            let token_col = &l[l.find("ENABLED").unwrap() + "ENABLED".len()..];
            let name = token_col.trim_start().split("  ").next().unwrap();
            assert!(name.width() <= 24, "{name:?}");
        }
    }
}
