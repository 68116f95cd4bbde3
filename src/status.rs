//! The status page: server-rendered HTML with no external assets. Every string that came
//! from the API is escaped.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::inventory::OwnerState;
use crate::report::{self, TokenRow, VerdictStatus};
use crate::state::OrgStatus;

/// Rows per table on the page.
const ROWS: usize = 50;

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn day(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn user(r: &TokenRow) -> String {
    let name = r
        .user_display_name
        .as_deref()
        .or(r.user_name.as_deref())
        .unwrap_or(&r.user_id);
    match &r.user_email {
        Some(e) => format!("{}<br><small>{}</small>", escape(name), escape(e)),
        None => escape(name),
    }
}

fn token_table(out: &mut String, id: &str, title: &str, rows: &[&TokenRow], total: usize) {
    let _ = write!(
        out,
        "<section id=\"{id}\"><h2>{title} <span class=\"count\">{total}</span></h2>"
    );
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">None.</p></section>");
        return;
    }
    out.push_str("<div class=\"scroll\"><table><thead><tr><th>Organization</th><th>User</th><th>State</th><th>Token</th><th>Expires</th><th>Days left</th><th>Last used</th><th>Cleanup</th></tr></thead><tbody>");
    for r in rows.iter().take(ROWS) {
        let cleanup = match r.cleanup.status {
            VerdictStatus::Eligible => format!(
                "<span class=\"bad\">delete now</span> ({})",
                escape(r.cleanup.rule.as_deref().unwrap_or(""))
            ),
            VerdictStatus::Upcoming => format!(
                "{} from {}",
                escape(r.cleanup.rule.as_deref().unwrap_or("")),
                day(r.cleanup.at)
            ),
            VerdictStatus::Excluded => "excluded".to_owned(),
            VerdictStatus::None => String::new(),
        };
        let days = r.days_left.map_or_else(String::new, |d| format!("{d:.1}"));
        let class = match r.days_left {
            Some(d) if d < 0.0 => "bad",
            Some(d) if d <= 7.0 => "warn",
            _ => "",
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}<br><small>{}</small></td><td>{}</td><td class=\"{class}\">{days}</td><td>{}</td><td>{cleanup}</td></tr>",
            escape(&r.organization),
            user(r),
            r.user_state,
            escape(r.token_name.as_deref().unwrap_or("")),
            escape(&r.token_id),
            day(r.expires),
            r.last_used
                .map_or_else(|| "never".to_owned(), |t| day(Some(t))),
        );
    }
    out.push_str("</tbody></table></div>");
    if total > ROWS {
        let _ = write!(
            out,
            "<p class=\"more\">{} more: see <a href=\"/api/v1/tokens\">/api/v1/tokens</a> or the <code>report</code> command.</p>",
            total - ROWS
        );
    }
    out.push_str("</section>");
}

/// Renders the page.
pub fn render(config: &Config, orgs: &[OrgStatus], now: DateTime<Utc>) -> String {
    let report = report::build(config, orgs, now);
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>WorkMail PAT monitor</title><link rel=\"icon\" href=\"data:,\"><style>",
        "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem;color:#1d2433;background:#fafbfc}",
        "h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}",
        "table{border-collapse:collapse;width:100%;font-size:.9rem;background:#fff}",
        "th,td{border-bottom:1px solid #e1e4e8;padding:.35rem .5rem;text-align:left;vertical-align:top}",
        "th{background:#f0f2f5}.scroll{overflow-x:auto}small{color:#5b6473}",
        ".bad{color:#b00020;font-weight:600}.warn{color:#a35200;font-weight:600}.ok{color:#137333;font-weight:600}",
        ".count{font-weight:normal;color:#5b6473}.empty,.more{color:#5b6473}",
        "nav a{margin-right:1rem}code{background:#eef0f3;padding:0 .2rem}",
        "</style></head><body>",
        "<h1>WorkMail personal access tokens</h1>",
        "<nav><a href=\"/metrics\">/metrics</a><a href=\"/api/v1/tokens\">/api/v1/tokens</a><a href=\"/healthz\">/healthz</a><a href=\"/readyz\">/readyz</a></nav>",
    ));
    let _ = write!(
        out,
        "<p>Generated {} UTC. Data is refreshed every {} (scan interval).</p>",
        now.format("%Y-%m-%d %H:%M:%S"),
        crate::config::format_duration(config.scan.interval)
    );

    out.push_str("<section id=\"organizations\"><h2>Organizations</h2><div class=\"scroll\"><table><thead><tr><th>Organization</th><th>Scan</th><th>Last success</th><th>Tokens</th><th>Expired</th><th>Never used</th><th>Tokens of inactive owners</th><th>PATs</th></tr></thead><tbody>");
    for st in orgs {
        let health = if st.up {
            "<span class=\"ok\">up</span>".to_owned()
        } else if st.last_attempt.is_none() {
            "pending".to_owned()
        } else {
            let (kind, message, hint) = st.last_error.as_ref().map_or(("", "", ""), |e| {
                (e.kind, e.message.as_str(), e.hint.as_deref().unwrap_or(""))
            });
            format!(
                "<span class=\"bad\">failing</span><br><small>{}</small><br><small>{}</small>{}",
                escape(kind),
                escape(message),
                if hint.is_empty() {
                    String::new()
                } else {
                    format!("<br><small>Hint: {}</small>", escape(hint))
                }
            )
        };
        let (tokens, expired, never, inactive) = st.stats.as_ref().map_or(
            (
                "—".to_owned(),
                "—".to_owned(),
                "—".to_owned(),
                "—".to_owned(),
            ),
            |s| {
                (
                    (s.active + s.expired).to_string(),
                    s.expired.to_string(),
                    s.never_used.to_string(),
                    s.inactive_owner_tokens().to_string(),
                )
            },
        );
        let pat = st.inventory.as_ref().and_then(|i| i.pat).map_or_else(
            || "not configured".to_owned(),
            |p| {
                format!(
                    "{}{}",
                    if p.enabled { "active" } else { "inactive" },
                    p.lifetime_days
                        .map(|d| format!(", {d} days"))
                        .unwrap_or_default()
                )
            },
        );
        let _ = write!(
            out,
            "<tr><td>{}<br><small>{}</small></td><td>{health}</td><td>{}</td><td>{tokens}</td><td>{expired}</td><td>{never}</td><td>{inactive}</td><td>{pat}</td></tr>",
            escape(&st.org.label),
            escape(&st.org.id),
            day(st.last_success),
        );
    }
    out.push_str("</tbody></table></div></section>");

    let expiring: Vec<&TokenRow> = report
        .tokens
        .iter()
        .filter(|r| r.days_left.is_some())
        .collect();
    token_table(
        &mut out,
        "expiring",
        "Soonest-expiring tokens",
        &expiring,
        expiring.len(),
    );
    let threshold = config
        .metrics
        .unused_thresholds
        .iter()
        .map(|w| w.duration)
        .min()
        .unwrap_or(std::time::Duration::from_secs(30 * 86_400));
    let unused: Vec<&TokenRow> = report
        .tokens
        .iter()
        .filter(|r| {
            r.last_used.is_none()
                || r.last_used.is_some_and(|l| {
                    now - l >= chrono::Duration::from_std(threshold).unwrap_or_default()
                })
        })
        .collect();
    token_table(
        &mut out,
        "unused",
        &format!(
            "Unused (never, or not for {})",
            crate::config::format_duration(threshold)
        ),
        &unused,
        unused.len(),
    );
    let inactive: Vec<&TokenRow> = report
        .tokens
        .iter()
        .filter(|r| r.user_state != OwnerState::Enabled)
        .collect();
    token_table(
        &mut out,
        "inactive-owners",
        "Tokens of inactive owners",
        &inactive,
        inactive.len(),
    );

    out.push_str("<section id=\"cleanup\"><h2>Cleanup plan</h2>");
    if config.cleanup.rules.is_empty() {
        out.push_str("<p class=\"empty\">No cleanup rules are configured.</p>");
    } else {
        let _ = write!(
            out,
            "<p>Mode: <code>{}</code>; at most {} deletions per run and {}% of an organization's tokens.</p>",
            config.cleanup.mode.as_str(),
            config.cleanup.max_deletions_per_run,
            config.cleanup.max_deletions_percent
        );
        let overrides: Vec<String> = orgs
            .iter()
            .filter_map(|st| {
                let mode = config.cleanup_mode(&st.org.id);
                (mode != config.cleanup.mode)
                    .then(|| format!("{} <code>{}</code>", escape(&st.org.label), mode.as_str()))
            })
            .collect();
        if !overrides.is_empty() {
            let _ = write!(out, "<p>Per organization: {}.</p>", overrides.join(", "));
        }
        let eligible: Vec<&TokenRow> = report
            .tokens
            .iter()
            .filter(|r| r.cleanup.status == VerdictStatus::Eligible)
            .collect();
        token_table(
            &mut out,
            "would-delete",
            "Would delete now",
            &eligible,
            eligible.len(),
        );
        // Pending as the plan published with the scan says (the metrics say the same).
        let pending_ids: std::collections::HashSet<(&str, &str)> = orgs
            .iter()
            .filter_map(|st| Some((st, st.inventory.as_deref()?, st.plan.as_deref()?)))
            .flat_map(|(st, inv, plan)| {
                plan.pending
                    .iter()
                    .map(move |p| (st.org.id.as_str(), inv.tokens[p.index].id.as_str()))
            })
            .collect();
        let pending: Vec<&TokenRow> = report
            .tokens
            .iter()
            .filter(|r| pending_ids.contains(&(r.organization_id.as_str(), r.token_id.as_str())))
            .collect();
        token_table(
            &mut out,
            "pending",
            &format!(
                "Pending within {}",
                crate::config::format_duration(config.cleanup.warn_before)
            ),
            &pending,
            pending.len(),
        );
        out.push_str("<h2>Last run</h2><div class=\"scroll\"><table><thead><tr><th>Organization</th><th>When</th><th>Mode</th><th>Token</th><th>Rule</th><th>Action</th><th>Reason</th></tr></thead><tbody>");
        let mut any = false;
        for st in orgs {
            let Some(run) = &st.cleanup else { continue };
            for a in run.actions.iter().take(ROWS) {
                any = true;
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&st.org.label),
                    day(Some(run.at)),
                    run.mode,
                    escape(a.token_name.as_deref().unwrap_or("")),
                    escape(&a.token_id),
                    escape(&a.rule),
                    a.action,
                    escape(&a.reason),
                );
            }
            let shown = run.actions.len().min(ROWS) as u64;
            let total: u64 = run.counts.values().sum();
            if total > shown {
                let counts: Vec<String> =
                    run.counts.iter().map(|(a, n)| format!("{a}={n}")).collect();
                let _ = write!(
                    out,
                    "<tr><td colspan=\"7\" class=\"empty\">{}: {} more decisions ({}); the ledger (<code>cleanup.audit_log</code>) has each one.</td></tr>",
                    escape(&st.org.label),
                    total - shown,
                    counts.join(", ")
                );
            }
        }
        if !any {
            out.push_str("<tr><td colspan=\"7\" class=\"empty\">No cleanup run yet.</td></tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section></body></html>\n");
    out
}
