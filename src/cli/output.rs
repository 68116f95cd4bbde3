//! The commands' human output: what `once`, `check-config` and `report` print. Only the
//! command line prints to stdout.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::args::ReportFormat;
use super::commands::EXIT_INCOMPLETE;
use crate::{app, report};

/// For `check-config --scan`: the credentials and the permissions the configuration needs.
pub fn preflight_text(p: &app::Preflight) -> String {
    use crate::workmail::Probe;
    let mut out = String::from("\n# Pre-flight (calls that change nothing):\n");
    match &p.credentials {
        Ok(c) => out.push_str(&format!(
            "#   credentials: {} (access key {}){}\n",
            c.provider,
            c.access_key,
            c.profile
                .as_ref()
                .map(|p| format!(", profile {p}"))
                .unwrap_or_default()
        )),
        Err(e) => out.push_str(&format!("#   credentials: NONE: {e}\n")),
    }
    out.push_str(&format!(
        "#   default region: {}\n",
        p.default_region
            .as_deref()
            .unwrap_or("none (set AWS_REGION or a profile's region)")
    ));
    let line = |out: &mut String, perm: &crate::workmail::Permission| {
        let (mark, note) = match &perm.probe {
            Probe::Allowed => ("ok", String::new()),
            Probe::Denied(why) => ("DENIED", format!(": {why}")),
            Probe::Failed(why) => ("FAILED", format!(": {why}")),
            Probe::NotTried(why) => ("not tried", format!(": {why}")),
        };
        let optional = if perm.optional { ", optional" } else { "" };
        out.push_str(&format!(
            "#     {mark:<9} {} ({}{optional}){note}\n",
            perm.action, perm.purpose
        ));
    };
    for (region, perm) in &p.discovery {
        out.push_str(&format!("#   discovery in {region}:\n"));
        line(&mut out, perm);
    }
    for (org, perms) in &p.orgs {
        out.push_str(&format!(
            "#   {} ({}) in {}:\n",
            org.label, org.id, org.region
        ));
        for perm in perms {
            line(&mut out, perm);
        }
    }
    out.push_str(if p.passed() {
        "#   every permission the configuration needs is allowed (or cannot be tried)\n"
    } else {
        "#   NOT READY: a permission the configuration needs is denied or could not be checked\n"
    });
    out
}

/// For `check-config --scan`: how many tokens each rule would match now, per organization.
pub fn rule_matches(outcome: &app::OnceOutcome) -> String {
    let ctx = &outcome.ctx;
    let now = ctx.clock.now();
    let mut out =
        String::from("\n# Cleanup rules against a scan made now (nothing was deleted):\n");
    if ctx.config().cleanup.rules.is_empty() {
        out.push_str("#   no rules configured\n");
        return out;
    }
    for rule in &ctx.config().cleanup.rules {
        let mut parts = Vec::new();
        let mut total = 0;
        for st in ctx.shared.snapshot() {
            let Some(inv) = &st.inventory else {
                parts.push(format!("{}: scan incomplete", st.org.label));
                continue;
            };
            if !rule.applies_to(&inv.org.id) {
                continue;
            }
            let (n, protected) = crate::policy::rule_counts(&ctx.config().cleanup, rule, inv, now);
            total += n;
            parts.push(format!("{}: {n} (+{protected} excluded)", st.org.label));
        }
        out.push_str(&format!(
            "#   {}: {total} token(s) would match now; {}\n",
            rule.name,
            parts.join(", ")
        ));
    }
    out
}

/// Writes the report of a completed `once`; returns the exit code.
pub fn report_output(
    outcome: &app::OnceOutcome,
    filter: &report::Filter,
    format: ReportFormat,
    output: Option<&Path>,
) -> anyhow::Result<u8> {
    let ctx = &outcome.ctx;
    let rep = report::build_filtered(
        &ctx.config(),
        &ctx.shared.snapshot(),
        ctx.clock.now(),
        filter,
    );
    let text = match format {
        ReportFormat::Table => report::to_table(&rep),
        ReportFormat::Csv => report::to_csv(&rep)?,
        ReportFormat::Json => serde_json::to_string_pretty(&rep)? + "\n",
    };
    match output {
        // The report holds personal data (names, addresses): only its owner may read it.
        Some(p) => crate::ledger::create_private(p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("{}: cannot write", p.display()))?,
        None => print!("{text}"),
    }
    for (org, r) in &outcome.scans {
        if let Err(e) = r {
            eprintln!("warning: scan of {} incomplete: {e}", org.label);
            if let Some(h) = e.hint() {
                eprintln!("  hint: {h}");
            }
        }
    }
    for e in &outcome.discovery_errors {
        eprintln!("warning: {e}");
    }
    Ok(if rep.complete && outcome.complete() {
        0
    } else {
        EXIT_INCOMPLETE
    })
}

/// Prints what `once` did; returns the exit code.
pub fn print_once(outcome: &app::OnceOutcome) -> u8 {
    let mut complete = outcome.complete();
    for e in &outcome.discovery_errors {
        println!("INCOMPLETE: {e}");
    }
    for (org, r) in &outcome.scans {
        let st = outcome.ctx.shared.org(&org.id);
        match r {
            Ok(()) => {
                let s = st
                    .as_ref()
                    .and_then(|s| s.stats.clone())
                    .unwrap_or_default();
                println!(
                    "{} ({}): complete: {} tokens ({} active, {} expired, {} never used), {} owners; tokens of inactive owners: {}",
                    org.label,
                    org.id,
                    s.active + s.expired,
                    s.active,
                    s.expired,
                    s.never_used,
                    s.owners,
                    s.inactive_owner_tokens(),
                );
                for (w, n) in &s.expiring {
                    println!("    expiring within {w}: {n}");
                }
            }
            Err(e) => {
                complete = false;
                println!("{} ({}): INCOMPLETE: {e}", org.label, org.id);
                if let Some(h) = e.hint() {
                    println!("  hint: {h}");
                }
            }
        }
    }
    if let Some(c) = &outcome.cleanup {
        let mut notes = Vec::new();
        if c.reconciled > 0 {
            notes.push(format!(
                "{} earlier delete intent(s) reconciled",
                c.reconciled
            ));
        }
        if c.unreconciled > 0 {
            notes.push(format!(
                "{} delete intent(s) still unreconciled (their re-read failed)",
                c.unreconciled
            ));
        }
        if !c.skipped_orgs.is_empty() {
            notes.push(format!(
                "{} organization(s) skipped (incomplete scan)",
                c.skipped_orgs.len()
            ));
        }
        if let Some(a) = &c.aborted {
            notes.push(format!("ABORTED: {a}"));
        }
        let mut line = format!("cleanup: {}", c.counts());
        for n in notes {
            line.push_str("; ");
            line.push_str(&n);
        }
        println!("{line}");
        // Aborted runs, failed or unconfirmed deletions and unreconciled intents are
        // failures of a scheduled job.
        if c.needs_attention() {
            complete = false;
        }
    }
    if complete { 0 } else { EXIT_INCOMPLETE }
}
