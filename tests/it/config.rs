//! Configuration errors: every invalid config names the key and the problem, and the
//! binary exits non-zero without doing anything.

use workmail_pat_monitor::config::Config;

use crate::support::output_of;

const ORG: &str = "[[organizations]]\nid = \"m-00000000000000000000000000000001\"\n";

#[test]
fn each_invalid_config_gets_a_precise_message() {
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown key",
            format!("[scan]\nintervall = \"1m\"\n{ORG}"),
            "unknown field `intervall`",
        ),
        (
            "bad duration",
            format!("[scan]\ninterval = \"10x\"\n{ORG}"),
            "scan.interval: invalid duration \"10x\"",
        ),
        (
            "interval too short",
            format!("[scan]\ninterval = \"500ms\"\n{ORG}"),
            "scan.interval: must be at least 1s",
        ),
        (
            "page size",
            format!("[scan]\npage_size = 1000\n{ORG}"),
            "scan.page_size: 1000 is out of range (allowed 1..=100)",
        ),
        (
            "concurrency",
            format!("[scan]\nmax_concurrency = 0\n{ORG}"),
            "scan.max_concurrency: 0 is out of range",
        ),
        (
            "listen",
            format!("[server]\nlisten = \"nope\"\n{ORG}"),
            "server.listen: \"nope\" is not an address:port",
        ),
        (
            "window",
            format!("[metrics]\nexpiry_windows = [\"7d\", \"7d\"]\n{ORG}"),
            "metrics.expiry_windows[1]: \"7d\" is listed twice",
        ),
        (
            "zero window",
            format!("[metrics]\nunused_thresholds = [\"0d\"]\n{ORG}"),
            "metrics.unused_thresholds[0]: \"0d\" must be longer than zero",
        ),
        (
            "user label",
            format!("[metrics]\nuser_labels = [\"phone\"]\n{ORG}"),
            "metrics.user_labels[0]: unknown label \"phone\"",
        ),
        (
            "org id",
            "[[organizations]]\nid = \"m-123\"\n".to_owned(),
            "organizations[0].id: \"m-123\" is not a WorkMail organization id",
        ),
        (
            "duplicate org",
            format!("{ORG}{ORG}"),
            "organizations[1].id: \"m-00000000000000000000000000000001\" is configured twice",
        ),
        (
            "region",
            format!("{ORG}region = \"US East\"\n"),
            "organizations[0].region: \"US East\" is not an AWS region",
        ),
        (
            "role arn",
            format!("{ORG}role_arn = \"arn:aws:iam::1:user/x\"\n"),
            "organizations[0].role_arn",
        ),
        (
            "external id without role",
            format!("{ORG}external_id = \"x\"\n"),
            "organizations[0].external_id: is set but role_arn is not",
        ),
        (
            "no organizations",
            "[scan]\ninterval = \"1m\"\n".to_owned(),
            "organizations: no organizations",
        ),
        (
            "empty discovery",
            "[discovery]\nregions = []\n".to_owned(),
            "discovery.regions: must list at least one region",
        ),
        (
            "an account's role arn",
            "[discovery]\n[[discovery.accounts]]\nrole_arn = \"arn:aws:iam::1:role/x\"\nregions = [\"us-east-1\"]\n".to_owned(),
            "discovery.accounts[0].role_arn: \"arn:aws:iam::1:role/x\" is not an IAM role ARN",
        ),
        (
            "an account without regions",
            "[discovery]\n[[discovery.accounts]]\nrole_arn = \"arn:aws:iam::210987654321:role/m\"\n".to_owned(),
            "discovery.accounts[0].regions: is missing, and there are no discovery.regions to take",
        ),
        (
            "an account with an empty region list",
            "[discovery]\nregions = [\"us-east-1\"]\n[[discovery.accounts]]\nrole_arn = \"arn:aws:iam::210987654321:role/m\"\nregions = []\n".to_owned(),
            "discovery.accounts[0].regions: must list at least one region",
        ),
        (
            "an account listed twice",
            "[discovery]\nregions = [\"us-east-1\"]\n[[discovery.accounts]]\nrole_arn = \"arn:aws:iam::210987654321:role/m\"\n[[discovery.accounts]]\nrole_arn = \"arn:aws:iam::210987654321:role/m\"\n".to_owned(),
            "discovery.accounts[1].role_arn: \"arn:aws:iam::210987654321:role/m\" is listed twice",
        ),
        (
            "an account's region",
            "[discovery]\n[[discovery.accounts]]\nrole_arn = \"arn:aws:iam::210987654321:role/m\"\nregions = [\"eu-west-1\", \"Mars\"]\n".to_owned(),
            "discovery.accounts[0].regions[1]: \"Mars\" is not an AWS region",
        ),
        (
            "an account key",
            "[discovery]\n[[discovery.accounts]]\nrole_arn = \"arn:aws:iam::210987654321:role/m\"\nregion = \"us-east-1\"\n".to_owned(),
            "region",
        ),
        (
            "mode",
            format!("{ORG}[cleanup]\nmode = \"yolo\"\n"),
            "cleanup.mode: unknown mode \"yolo\"",
        ),
        (
            "mode without rules",
            format!("{ORG}[cleanup]\nmode = \"enforce\"\n"),
            "cleanup.rules: cleanup.mode is \"enforce\" but no rules are configured",
        ),
        (
            "rule without condition",
            format!("{ORG}[[cleanup.rules]]\nname = \"x\"\n"),
            "cleanup.rules[0]: has no condition",
        ),
        (
            "rule name",
            format!("{ORG}[[cleanup.rules]]\nname = \"a b\"\nunused_for = \"1d\"\n"),
            "cleanup.rules[0].name: \"a b\" must be 1 to 64 characters",
        ),
        (
            "duplicate rule",
            format!(
                "{ORG}[[cleanup.rules]]\nname = \"a\"\nunused_for = \"1d\"\n[[cleanup.rules]]\nname = \"a\"\nunused_for = \"2d\"\n"
            ),
            "cleanup.rules[1].name: \"a\" is used twice",
        ),
        (
            "owner state",
            format!("{ORG}[[cleanup.rules]]\nname = \"a\"\nowner_states = [\"GONE\"]\n"),
            "cleanup.rules[0].owner_states[0]: unknown state \"GONE\"",
        ),
        (
            "percent",
            format!("{ORG}[cleanup]\nmax_deletions_percent = 150.0\n"),
            "cleanup.max_deletions_percent: 150 is not a percentage",
        ),
        (
            "glob",
            format!("{ORG}[cleanup]\nexclude_users = [\"a[\"]\n"),
            "cleanup.exclude_users[0]: invalid glob \"a[\"",
        ),
        (
            "rule organization",
            format!(
                "{ORG}[[cleanup.rules]]\nname = \"a\"\nunused_for = \"1d\"\norganizations = [\"nope\"]\n"
            ),
            "cleanup.rules[0].organizations[0]: \"nope\" is neither a configured alias nor an organization id",
        ),
        (
            "wrong type",
            format!("[scan]\npage_size = \"ten\"\n{ORG}"),
            "invalid type",
        ),
        (
            "enforce without a ledger",
            format!(
                "{ORG}[cleanup]\nmode = \"enforce\"\n[[cleanup.rules]]\nname = \"a\"\nunused_for = \"90d\"\n"
            ),
            "cleanup.audit_log: is required: cleanup.mode is \"enforce\"",
        ),
        (
            "an organization in enforce without a ledger",
            format!(
                "{ORG}alias = \"corp\"\ncleanup = {{ mode = \"enforce\" }}\n[[cleanup.rules]]\nname = \"a\"\nunused_for = \"90d\"\n"
            ),
            "cleanup.audit_log: is required: organization corp sets cleanup.mode \"enforce\"",
        ),
        (
            "a rule duration in minutes",
            format!("{ORG}[[cleanup.rules]]\nname = \"a\"\nunused_for = \"6m\"\n"),
            "cleanup.rules[0].unused_for: \"6m\" is in minutes (`m` and `min` mean minutes, not months); rule durations count days, e.g. \"180d\"",
        ),
        (
            "minutes anywhere in a rule duration",
            format!("{ORG}[[cleanup.rules]]\nname = \"a\"\nexpired_for = \"30d 5min\"\n"),
            "cleanup.rules[0].expired_for: \"30d 5min\" is in minutes",
        ),
        (
            "a zero rule duration",
            format!("{ORG}[[cleanup.rules]]\nname = \"a\"\nowner_disabled_for = \"0s\"\n"),
            "cleanup.rules[0].owner_disabled_for: \"0s\" is shorter than one day",
        ),
        (
            "warn_before under a day",
            format!("{ORG}[cleanup]\nwarn_before = \"12h\"\n"),
            "cleanup.warn_before: \"12h\" is shorter than one day",
        ),
        (
            "daily budget",
            format!("{ORG}[cleanup]\nmax_deletions_per_day = -1\n"),
            "cleanup.max_deletions_per_day: -1 is out of range",
        ),
    ];
    for (case, text, want) in cases {
        let err = Config::parse(text, "test.toml")
            .expect_err(case)
            .to_string();
        assert!(err.starts_with("test.toml: "), "case: {case}: {err}");
        assert!(
            err.contains(want),
            "case: {case}: got {err:?}, want {want:?}"
        );
    }
}

#[test]
fn the_shipped_configs_are_valid() {
    for path in ["config/example.toml", "config/demo.toml"] {
        if let Err(e) = Config::load(std::path::Path::new(path)) {
            panic!("{path}: {e}");
        }
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = Config::parse(ORG, "t").unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9795");
    assert_eq!(c.scan.interval.as_secs(), 600);
    assert_eq!(c.scan.page_size, 100);
    assert_eq!(c.scan.max_concurrency, 8);
    assert_eq!(c.scan.user_cache_ttl.as_secs(), 6 * 3600);
    let windows: Vec<&str> = c
        .metrics
        .expiry_windows
        .iter()
        .map(|w| w.label.as_str())
        .collect();
    assert_eq!(windows, ["1d", "7d", "30d"]);
    assert!(c.metrics.per_token);
    assert_eq!(c.cleanup.mode.as_str(), "off");
    assert_eq!(c.cleanup.max_deletions_per_run, 25);
    assert_eq!(c.cleanup.max_deletions_percent, 10.0);
    assert_eq!(c.cleanup.warn_before.as_secs(), 7 * 86_400);
}

#[tokio::test]
async fn check_config_exits_non_zero_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, format!("[scan]\npage_size = 0\n{ORG}")).unwrap();
    let out = output_of(
        "the binary",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor"))
            .args(["check-config", "--config"])
            .arg(&path),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml: scan.page_size: 0 is out of range"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let good = dir.path().join("good.toml");
    std::fs::write(&good, ORG).unwrap();
    let out = output_of(
        "the binary",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor"))
            .args(["check-config", "--config"])
            .arg(&good),
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Minutes are written `min`, never `m` (which reads like months).
    assert!(stdout.contains("interval = \"10min\""), "{stdout}");

    let missing = output_of(
        "the binary",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor")).args([
            "once",
            "--config",
            "/nonexistent/config.toml",
        ]),
    )
    .await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/config.toml"));
}

#[tokio::test]
async fn check_config_scan_counts_what_each_rule_would_match() {
    let server = crate::support::start_scenario(crate::monitor::BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "{ORG}alias = \"corp\"\n[cleanup]\nmode = \"enforce\"\naudit_log = {:?}\nexclude_tokens = [\"break-glass*\"]\n\
             [[cleanup.rules]]\nname = \"expired\"\nexpired_for = \"1d\"\n\
             [[cleanup.rules]]\nname = \"unused-90d\"\nunused_for = \"90d\"\n",
            dir.path().join("ledger.jsonl").display().to_string()
        ),
    )
    .unwrap();
    let out = output_of(
        "the binary",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor"))
            .args(["check-config", "--scan", "--config"])
            .arg(&path)
            .env("AWS_ENDPOINT_URL", server.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env_remove("AWS_PROFILE"),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Against the real clock every fixture token is long expired or unused, but the
    // counts are what the rules say of the data: each rule on its own, exclusions apart.
    assert!(stdout.contains("#   expired: "), "{stdout}");
    assert!(stdout.contains("#   unused-90d: "), "{stdout}");
    assert!(stdout.contains("(+1 excluded)"), "{stdout}");
    // It only reads: enforce mode in the file notwithstanding.
    assert!(server.sim.deleted().is_empty());
    assert_eq!(server.sim.calls().count("DeletePersonalAccessToken"), 0);
}

#[test]
fn rule_organizations_resolve_aliases_to_ids() {
    let c = Config::parse(
        &format!(
            "{ORG}alias = \"corp\"\n[[cleanup.rules]]\nname = \"a\"\nunused_for = \"1d\"\norganizations = [\"corp\"]\n"
        ),
        "t",
    )
    .unwrap();
    let rule = &c.cleanup.rules[0];
    assert_eq!(
        rule.organizations.as_deref(),
        Some(&["m-00000000000000000000000000000001".to_owned()][..])
    );
    // A discovered organization that happens to share the alias is not armed.
    assert!(rule.applies_to("m-00000000000000000000000000000001"));
    assert!(!rule.applies_to("m-00000000000000000000000000000009"));
}
