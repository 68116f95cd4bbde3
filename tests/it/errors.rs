//! First contact with an account: the failures people meet first (no credentials, an
//! unreachable endpoint, a missing IAM permission, the wrong region, a bad signature) are
//! told in a few readable lines with a hint, never as the SDK's `Debug` dump; and
//! `check-config --scan` checks each permission the configuration needs before it scans.

use std::path::{Path, PathBuf};

use workmail_pat_monitor::sim::{OpFaults, SimConfig, SimServer};

use crate::monitor::{BASIC, CORP};
use crate::support::*;

/// Debug forms of SDK errors that must never reach a person.
const DEBUG_TEXT: &[&str] = &[
    "{ source:",
    "DispatchFailure(",
    "ConnectorError {",
    "Some(\"",
];

pub(crate) fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// corp only, in `region`, fast to fail, optionally with a cleanup section.
pub(crate) fn corp_config(region: &str, extra: &str) -> String {
    format!(
        "[scan]\ncall_timeout = \"1s\"\nmax_attempts = 1\nowner_lookup = \"describe\"\n\
         [[organizations]]\nid = \"{CORP}\"\nalias = \"corp\"\nregion = \"{region}\"\n{extra}"
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// At most three lines on stderr, no Debug text anywhere, and `needles` in what it said.
    fn assert_readable(&self, case: &str, needles: &[&str]) {
        let lines = self.stderr.lines().count();
        assert!(
            lines <= 3,
            "case: {case}: {lines} lines on stderr:\n{}",
            self.stderr
        );
        for d in DEBUG_TEXT {
            assert!(
                !self.all().contains(d),
                "case: {case}: Debug text {d:?}:\n{}",
                self.all()
            );
        }
        for n in needles {
            assert!(
                self.all().contains(n),
                "case: {case}: no {n:?} in:\n{}",
                self.all()
            );
        }
    }
}

async fn run(cmd: &mut tokio::process::Command) -> Run {
    let out = output_of("the binary", cmd).await;
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `once` against `server` with a scrubbed environment, and `env` on top.
async fn once_with(
    server: &SimServer,
    config: &Path,
    env: &[(&str, &str)],
    remove: &[&str],
) -> Run {
    let mut cmd = bin_against(server);
    cmd.args(["once", "--config"]).arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    run(&mut cmd).await
}

#[tokio::test]
async fn no_credentials_say_which_chain_was_tried_and_how_to_choose() {
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &corp_config("us-east-1", ""));
    let home = dir.path().join("home");
    let r = once_with(
        &server,
        &config,
        &[("HOME", home.to_str().unwrap())],
        &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    )
    .await;
    assert_eq!(r.code, 1);
    r.assert_readable(
        "no credentials",
        &[
            "no AWS credentials in the default chain (Environment",
            "AWS_PROFILE",
        ],
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named_with_what_set_it() {
    let server = start_scenario(BASIC).await;
    let closed = free_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &corp_config("us-east-1", ""));
    let endpoint = format!("http://127.0.0.1:{closed}");
    let r = once_with(&server, &config, &[("AWS_ENDPOINT_URL", &endpoint)], &[]).await;
    assert_eq!(r.code, 1);
    r.assert_readable(
        "unreachable",
        &[&format!(
            "cannot connect to {endpoint} (set by AWS_ENDPOINT_URL)"
        )],
    );
}

#[tokio::test]
async fn access_denied_names_the_iam_action_and_the_policy_that_grants_it() {
    let cleanup = format!(
        "[cleanup]\nmode = \"enforce\"\nmax_deletions_percent = 100\naudit_log = {:?}\n[[cleanup.rules]]\nname = \"expired\"\nexpired_for = \"1d\"\n",
        scratch_file("ledger.jsonl")
    );
    let cases: &[(&str, String, &str)] = &[
        (
            "ListPersonalAccessTokens",
            corp_config("us-east-1", ""),
            "config/iam-policy-readonly.json",
        ),
        (
            "DescribeUser",
            corp_config("us-east-1", ""),
            "config/iam-policy-readonly.json",
        ),
        (
            "ListUsers",
            corp_config("us-east-1", "")
                .replace("owner_lookup = \"describe\"", "owner_lookup = \"list\""),
            "config/iam-policy-readonly.json",
        ),
        (
            "ListOrganizations",
            "[scan]\nmax_attempts = 1\n[discovery]\nregions = [\"us-east-1\"]\n".to_owned(),
            "config/iam-policy-readonly.json",
        ),
        (
            "GetPersonalAccessTokenMetadata",
            corp_config("us-east-1", &cleanup),
            "config/iam-policy-readonly.json",
        ),
        (
            "DeletePersonalAccessToken",
            corp_config("us-east-1", &cleanup),
            "config/iam-policy-cleanup.json",
        ),
    ];
    for (op, config, policy) in cases {
        let server = start_scenario(BASIC).await;
        server.sim.set_op_faults(
            op,
            OpFaults {
                access_denied: true,
                ..Default::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), config);
        let r = once_with(&server, &config, &[], &[]).await;
        assert_eq!(r.code, 1, "case: {op}: {}", r.all());
        r.assert_readable(
            op,
            &[&format!("workmail:{op}"), policy, "AccessDeniedException"],
        );
    }
}

#[tokio::test]
async fn an_organization_in_the_wrong_region_says_organizations_are_regional() {
    let server = start_scenario_with(
        BASIC,
        SimConfig {
            other_regions: vec!["eu-west-1".to_owned()],
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &corp_config("eu-west-1", ""));
    let r = once_with(&server, &config, &[], &[]).await;
    assert_eq!(r.code, 1);
    r.assert_readable(
        "wrong region",
        &[
            "OrganizationNotFoundException",
            "organizations are regional",
            "in eu-west-1",
        ],
    );
}

#[tokio::test]
async fn a_region_the_endpoint_does_not_serve_names_both() {
    // One AWS_ENDPOINT_URL (the emulator serves us-east-1) and an organization configured in
    // another region: the service refuses the signature's scope, not the secret.
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &corp_config("eu-west-1", ""));
    let r = once_with(&server, &config, &[], &[]).await;
    assert_eq!(r.code, 1);
    r.assert_readable(
        "signed for another region",
        &[
            "signed for eu-west-1",
            "serves another region",
            "(set by AWS_ENDPOINT_URL)",
        ],
    );
    assert!(
        !r.all().contains("secret access key does not belong"),
        "a scope error blamed the secret:\n{}",
        r.all()
    );
}

#[tokio::test]
async fn a_bad_signature_points_at_the_secret_or_the_clock() {
    let mut credentials = std::collections::HashMap::new();
    credentials.insert("AKIDTEST".to_owned(), "the-right-secret".to_owned());
    let server = start_scenario_with(
        BASIC,
        SimConfig {
            credentials,
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &corp_config("us-east-1", ""));
    // bin_against signs with "test-secret".
    let r = once_with(&server, &config, &[], &[]).await;
    assert_eq!(r.code, 1);
    r.assert_readable(
        "bad signature",
        &["InvalidSignatureException", "secret access key", "clock"],
    );
}

#[tokio::test]
async fn the_json_log_and_the_tokens_api_carry_the_readable_error_and_its_hint() {
    let server = start_scenario(BASIC).await;
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            access_denied: true,
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_addr().port();
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{}",
            corp_config("us-east-1", "")
        ),
    );
    let mut child = bin_against(&server)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_ready(addr).await;
    let (status, api) = http_get(&format!("http://{addr}/api/v1/tokens")).await;
    assert_eq!(status, 200);
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let org = &api["organizations"][0];
    let error = org["error"].as_str().unwrap();
    assert!(
        error.starts_with("ListPersonalAccessTokens: AccessDeniedException: "),
        "{error}"
    );
    assert!(
        org["hint"]
            .as_str()
            .unwrap()
            .contains("workmail:ListPersonalAccessTokens"),
        "{org}"
    );
    let (_, page) = http_get(&format!("http://{addr}/")).await;
    assert!(page.contains("Hint: the identity is not allowed workmail:ListPersonalAccessTokens"));
    child.kill().await.unwrap();
    let out = within("the daemon's log", DEADLINE, child.wait_with_output())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let failed: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "scan failed; keeping the last complete data")
        .unwrap_or_else(|| panic!("no scan failure in the log:\n{log}"));
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("ListPersonalAccessTokens: AccessDeniedException"),
        "{failed}"
    );
    assert!(
        failed["hint"]
            .as_str()
            .unwrap()
            .contains("config/iam-policy-readonly.json")
    );
    for d in DEBUG_TEXT {
        assert!(!log.contains(d), "Debug text {d:?} in the log:\n{log}");
    }
}

async fn check_config(server: &SimServer, config: &Path) -> Run {
    let mut cmd = bin_against(server);
    cmd.args(["check-config", "--scan", "--config"]).arg(config);
    run(&mut cmd).await
}

#[tokio::test]
async fn the_pre_flight_marks_exactly_the_denied_permission() {
    let cleanup = format!(
        "[cleanup]\nmode = \"enforce\"\nmax_deletions_percent = 100\naudit_log = {:?}\n[[cleanup.rules]]\nname = \"expired\"\nexpired_for = \"1d\"\n",
        scratch_file("ledger.jsonl")
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &corp_config("us-east-1", &cleanup)
            .replace("owner_lookup = \"describe\"", "owner_lookup = \"auto\""),
    );

    // Everything allowed: exit 0, and it says where the credentials came from and the region.
    let server = start_scenario(BASIC).await;
    let r = check_config(&server, &config).await;
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("credentials: Environment"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(access key ****TEST)"), "{}", r.stdout);
    assert!(!r.all().contains("test-secret"), "never the secret");
    assert!(
        r.stdout.contains("default region: us-east-1"),
        "{}",
        r.stdout
    );
    for op in [
        "ListPersonalAccessTokens",
        "ListUsers",
        "DescribeUser",
        "DescribeIdentityProviderConfiguration",
        "GetPersonalAccessTokenMetadata",
    ] {
        assert!(
            r.stdout.contains(&format!("ok        workmail:{op} ")),
            "{op}:\n{}",
            r.stdout
        );
    }
    assert!(
        r.stdout
            .contains("not tried workmail:DeletePersonalAccessToken")
            && r.stdout.contains("simulate-principal-policy"),
        "{}",
        r.stdout
    );
    assert!(server.sim.deleted().is_empty());
    assert_eq!(server.sim.calls().count("DeletePersonalAccessToken"), 0);

    // One operation denied: exactly that permission is marked, and the exit code says so.
    for denied in ["ListUsers", "GetPersonalAccessTokenMetadata"] {
        let server = start_scenario(BASIC).await;
        server.sim.set_op_faults(
            denied,
            OpFaults {
                access_denied: true,
                ..Default::default()
            },
        );
        let r = check_config(&server, &config).await;
        assert_eq!(r.code, 1, "{denied}: {}", r.all());
        let marked: Vec<&str> = r.stdout.lines().filter(|l| l.contains("DENIED")).collect();
        assert_eq!(marked.len(), 1, "{denied}: {marked:?}");
        assert!(
            marked[0].contains(&format!("workmail:{denied} ")),
            "{marked:?}"
        );
        assert!(r.stdout.contains("NOT READY"), "{}", r.stdout);
    }
}
