//! The inventory report: golden files of the three formats against a scenario, a CSV
//! round-trip, filters, and HTML escaping of hostile strings on the status page.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden files after an intended change.

use workmail_pat_monitor::cli::{ReportFormat, report_output};
use workmail_pat_monitor::inventory::OwnerState;
use workmail_pat_monitor::report::{self, CSV_COLUMNS, Filter};

use crate::monitor::{BASIC, base_config};
use crate::support::*;

const RULES: &str = r#"
[cleanup]
mode = "off"
warn_before = "30d"
exclude_tokens = ["break-glass*"]
[[cleanup.rules]]
name = "expired"
expired_for = "1d"
[[cleanup.rules]]
name = "unused-90d"
unused_for = "90d"
"#;

fn golden(name: &str, actual: &str) {
    let path = format!("tests/golden/{name}");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all("tests/golden").unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run with UPDATE_GOLDEN=1 to create it)"));
    assert_eq!(actual, want, "{path} differs (UPDATE_GOLDEN=1 rewrites it)");
}

fn render(
    out: &workmail_pat_monitor::app::OnceOutcome,
    filter: &Filter,
    format: ReportFormat,
) -> (String, u8) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report");
    let code = report_output(out, filter, format, Some(&path)).unwrap();
    (std::fs::read_to_string(path).unwrap(), code)
}

#[tokio::test]
async fn report_formats_match_their_golden_files() {
    let server = start_scenario(BASIC).await;
    let (out, _) = once(&server, base_config(RULES)).await;
    for (format, file) in [
        (ReportFormat::Table, "report.txt"),
        (ReportFormat::Csv, "report.csv"),
        (ReportFormat::Json, "report.json"),
    ] {
        let (text, code) = render(&out, &Filter::default(), format);
        // The retired organization cannot be scanned: the exit code says so.
        assert_eq!(code, 1);
        golden(file, &text);
    }
}

#[tokio::test]
async fn csv_round_trips_through_a_csv_parser() {
    let server = start_scenario(BASIC).await;
    let (out, _) = once(&server, base_config(RULES)).await;
    let (text, _) = render(&out, &Filter::default(), ReportFormat::Csv);
    assert!(text.contains("\r\n"), "RFC 4180 line ends");
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let rep = report::build(&out.ctx.config(), &out.ctx.shared.snapshot(), now());
    assert_eq!(rows.len(), rep.tokens.len());
    for (row, tok) in rows.iter().zip(&rep.tokens) {
        assert_eq!(&row[7], tok.token_id);
        assert_eq!(
            Some(&row[8]),
            tok.token_name.as_deref(),
            "names with unicode survive"
        );
        assert_eq!(&row[5], tok.user_state.as_str());
    }
}

#[tokio::test]
async fn filters_select_the_expected_tokens() {
    let server = start_scenario(BASIC).await;
    let (out, _) = once(&server, base_config(RULES)).await;
    let ids = |f: Filter| -> Vec<String> {
        report::build_filtered(&out.ctx.config(), &out.ctx.shared.snapshot(), now(), &f)
            .tokens
            .into_iter()
            .map(|t| t.token_id)
            .collect()
    };
    let week = std::time::Duration::from_secs(7 * 86_400);
    assert_eq!(
        ids(Filter {
            expiring_within: Some(week),
            ..Default::default()
        }),
        ["t4-expired", "t1-expiring-today", "t2-never-used"]
    );
    assert_eq!(
        ids(Filter {
            owner_state: Some(OwnerState::Disabled),
            ..Default::default()
        }),
        ["t3-disabled-owner"]
    );
    assert_eq!(
        ids(Filter {
            organization: Some("labs".into()),
            ..Default::default()
        }),
        ["l1"]
    );
    let quarter = std::time::Duration::from_secs(90 * 86_400);
    let mut unused = ids(Filter {
        unused_for: Some(quarter),
        ..Default::default()
    });
    unused.sort();
    assert_eq!(
        unused,
        ["t3-disabled-owner", "t4-expired", "t6-break-glass"]
    );
}

#[tokio::test]
async fn the_status_page_escapes_hostile_strings() {
    let server = start_scenario(BASIC).await;
    server
        .sim
        .mutate(workmail_pat_monitor::sim::Mutation::AddToken {
            organization_id: crate::monitor::CORP.to_owned(),
            token_id: "hostile".to_owned(),
            user_id: "11111111-1111-1111-1111-111111111111".to_owned(),
            name: "\"quoted\" & 'single'".to_owned(),
            created: now() - chrono::Duration::days(1),
            last_used: None,
            expires: now() + chrono::Duration::days(1),
            scopes: vec!["IMAP".to_owned()],
        })
        .unwrap();
    let (out, _) = once(&server, base_config(RULES)).await;
    let page =
        workmail_pat_monitor::status::render(&out.ctx.config(), &out.ctx.shared.snapshot(), now());
    assert!(page.contains("Alice &lt;script&gt;alert(1)&lt;/script&gt; Ünïcødé"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("&quot;quoted&quot; &amp; &#39;single&#39;"));
    assert!(page.contains("iPhone Mail 📱"));
    for section in [
        "organizations",
        "expiring",
        "unused",
        "inactive-owners",
        "cleanup",
    ] {
        assert!(
            page.contains(&format!("id=\"{section}\"")),
            "section {section}"
        );
    }
}

#[tokio::test]
async fn the_status_page_shows_per_organization_modes() {
    let server = start_scenario(BASIC).await;
    let mut cfg = base_config(&RULES.replace("mode = \"off\"", "mode = \"dry-run\""));
    cfg.organizations[0].cleanup.mode = Some(workmail_pat_monitor::config::CleanupMode::Enforce);
    let (opts, _) = options();
    let ctx = workmail_pat_monitor::app::Context::new(cfg, source(&server), &opts).await;
    for org in ctx.resolve_orgs().await.unwrap() {
        let _ = ctx.scan_and_publish(&org, None).await;
    }
    let page = workmail_pat_monitor::status::render(&ctx.config(), &ctx.shared.snapshot(), now());
    assert!(page.contains("Mode: <code>dry-run</code>"), "{page}");
    assert!(
        page.contains("Per organization: corp <code>enforce</code>."),
        "{page}"
    );
}

#[tokio::test]
async fn csv_cells_that_a_spreadsheet_would_run_are_defused() {
    let formulas = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)",
        "\tTAB",
        "\rCR",
    ];
    let mut scenario = String::from(
        "[[organizations]]\nid = \"m-00000000000000000000000000000001\"\nalias = \"corp\"\n\
         [[organizations.users]]\nid = \"11111111-1111-1111-1111-111111111111\"\nname = \"=evil-user\"\n",
    );
    for (i, name) in formulas.iter().enumerate() {
        scenario.push_str(&format!(
            "[[organizations.tokens]]\nid = \"t{i}\"\nuser_id = \"11111111-1111-1111-1111-111111111111\"\nname = {name:?}\ncreated = \"now-10d\"\nexpires = \"now+10d\"\n"
        ));
    }
    let server = start_scenario(&scenario).await;
    let cfg = config(
        "[[organizations]]\nid = \"m-00000000000000000000000000000001\"\nalias = \"corp\"\nregion = \"us-east-1\"\n",
    );
    let (out, _) = once(&server, cfg).await;
    let (csv_text, _) = render(&out, &Filter::default(), ReportFormat::Csv);
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), formulas.len());
    for row in &rows {
        let name = &row[8];
        assert!(name.starts_with('\''), "token name {name:?} is defused");
        assert!(formulas.contains(&&name[1..]), "{name:?} keeps its text");
        assert_eq!(&row[3], "'=evil-user", "user names too");
        // Numbers the report computes are not text: days_left stays a number.
        assert!(row[13].parse::<f64>().is_ok(), "{:?}", &row[13]);
    }
    // JSON and the table carry the names unchanged.
    let (json, _) = render(&out, &Filter::default(), ReportFormat::Json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token_name"].as_str().unwrap())
        .collect();
    for f in formulas {
        assert!(names.contains(&f), "{f:?} in {names:?}");
    }
    let (table, _) = render(&out, &Filter::default(), ReportFormat::Table);
    assert!(table.contains("=HYPERLINK("), "{table}");
}

#[cfg(unix)]
#[tokio::test]
async fn report_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = start_scenario(BASIC).await;
    let (out, _) = once(&server, base_config(RULES)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.csv");
    // Even over an existing file others could read.
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    report_output(&out, &Filter::default(), ReportFormat::Csv, Some(&path)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("organization_id,")
    );
}

#[tokio::test]
async fn the_report_the_status_page_and_the_metrics_show_the_plan_published_with_the_scan() {
    let server = start_scenario(BASIC).await;
    let mut cfg = base_config(&RULES.replace("mode = \"off\"", "mode = \"dry-run\""));
    cfg.cleanup.warn_before = std::time::Duration::from_secs(400 * 86_400);
    let (opts, clock) = options();
    let ctx = workmail_pat_monitor::app::Context::new(cfg, source(&server), &opts).await;
    for org in ctx.resolve_orgs().await.unwrap() {
        let _ = ctx.scan_and_publish(&org, None).await;
    }
    let at_scan = report::build(&ctx.config(), &ctx.shared.snapshot(), clock.now());
    // Time passes without a scan: tokens that would be eligible by now are still shown as
    // the published plan says, everywhere alike.
    clock.advance(chrono::Duration::days(365));
    let later = report::build(&ctx.config(), &ctx.shared.snapshot(), clock.now());
    let verdicts = |r: &report::Report| -> Vec<(String, report::CleanupVerdict)> {
        r.tokens
            .iter()
            .map(|t| (t.token_id.clone(), t.cleanup.clone()))
            .collect()
    };
    let mut a = verdicts(&at_scan);
    let mut b = verdicts(&later);
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, b);
    let upcoming = later
        .tokens
        .iter()
        .filter(|t| t.cleanup.status == report::VerdictStatus::Upcoming)
        .count();
    assert!(upcoming > 0);
    let text = ctx.metrics.render(&ctx.shared);
    let pending: f64 = text
        .lines()
        .filter(|l| l.starts_with("workmail_pat_cleanup_pending{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(pending as usize, upcoming, "{text}");
    let page =
        workmail_pat_monitor::status::render(&ctx.config(), &ctx.shared.snapshot(), clock.now());
    assert!(
        page.contains(&format!(
            "Pending within 400d <span class=\"count\">{upcoming}</span>"
        )),
        "{page}"
    );
}
