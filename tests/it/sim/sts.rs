//! STS `AssumeRole`: the roles the emulator grants, the session credentials it issues and
//! checks, and the organizations each account sees, through the real SDK (the daemon's
//! `ClientFactory` and `aws_config`'s `AssumeRoleProvider`) and, for what the SDK cannot send,
//! raw form requests.

use std::sync::Arc;

use aws_credential_types::provider::ProvideCredentials;
use workmail_pat_monitor::sim::SimRole;
use workmail_pat_monitor::workmail::{ApiObserver, ClientOptions, WorkMail, error_chain};

use super::*;

const TENANT: &str = "210987654321";
const OTHER: &str = "333333333333";
const HOME_ORG: &str = "m-a0000000000000000000000000000000";
const TENANT_ORG_1: &str = "m-b1000000000000000000000000000000";
const TENANT_ORG_2: &str = "m-b2000000000000000000000000000000";
const OTHER_ORG: &str = "m-c0000000000000000000000000000000";
const TENANT_ROLE: &str = "arn:aws:iam::210987654321:role/ops/pat-monitor";
const OTHER_ROLE: &str = "arn:aws:iam::333333333333:role/pat-monitor";
const EXTERNAL_ID: &str = "tenant-external-id";

/// Organizations in three accounts; the tenant's role requires an external id, the other
/// account's does not.
const ACCOUNTS: &str = include_str!("../../fixtures/accounts.toml");

async fn start_accounts() -> SimServer {
    let scenario = Scenario::parse(ACCOUNTS).unwrap();
    let config = SimConfig {
        roles: scenario.roles().unwrap(),
        ..Default::default()
    };
    crate::support::start_sim(scenario.build(now()).unwrap(), config).await
}

#[derive(Debug)]
struct Unobserved;

impl ApiObserver for Unobserved {
    fn attempt(&self, _: &str, _: Option<&'static str>) {}
}

/// The daemon's client for `role` (with `external_id`), one attempt per call.
async fn daemon_client(server: &SimServer, role: &str, external_id: Option<&str>) -> WorkMail {
    let sdk = ClientFactory::static_sdk_config(&server.endpoint(), server.sim.region());
    let opts = ClientOptions {
        max_attempts: 1,
        retry_mode: workmail_pat_monitor::config::RetryMode::Standard,
        call_timeout: Duration::from_secs(10),
        initial_backoff: Duration::from_millis(1),
    };
    ClientFactory::from_sdk_config(sdk, &opts, Arc::new(Unobserved))
        .client(
            Some(server.sim.region()),
            Some((role, external_id)),
            "sts-test",
        )
        .await
}

async fn org_ids(client: &WorkMail) -> Vec<String> {
    let (orgs, next) = client.list_organizations_page(None, 100).await.unwrap();
    assert_eq!(next, None);
    orgs.into_iter().map(|o| o.id).collect()
}

/// `aws_config`'s provider for `role`, as the daemon builds it, asked once.
async fn assume(
    server: &SimServer,
    role: &str,
    external_id: Option<&str>,
    session_secs: u64,
) -> Result<
    aws_credential_types::Credentials,
    aws_credential_types::provider::error::CredentialsError,
> {
    let sdk = ClientFactory::static_sdk_config(&server.endpoint(), server.sim.region());
    let mut p = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("workmail-pat-monitor")
        .session_length(Duration::from_secs(session_secs))
        .configure(&sdk);
    if let Some(id) = external_id {
        p = p.external_id(id);
    }
    crate::support::within(
        "AssumeRole",
        crate::support::DEADLINE,
        p.build().await.provide_credentials(),
    )
    .await
}

/// A WorkMail SDK client with exactly these credentials, one attempt per call.
fn client_with(server: &SimServer, key: &str, secret: &str, token: Option<&str>) -> Client {
    let sdk = ClientFactory::static_sdk_config(&server.endpoint(), server.sim.region());
    let creds = aws_sdk_workmail::config::Credentials::new(
        key,
        secret,
        token.map(str::to_owned),
        None,
        "test",
    );
    let conf = aws_sdk_workmail::config::Builder::from(&sdk)
        .credentials_provider(creds)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    Client::from_conf(conf)
}

#[tokio::test]
async fn assumed_credentials_see_only_their_accounts_organizations() {
    let server = start_accounts().await;

    let tenant = daemon_client(&server, TENANT_ROLE, Some(EXTERNAL_ID)).await;
    assert_eq!(org_ids(&tenant).await, [TENANT_ORG_1, TENANT_ORG_2]);
    let pat = tenant.pat_settings(TENANT_ORG_1).await.unwrap();
    assert!(pat.is_some(), "the tenant's organization answers");
    // Another account's organization is not there for this caller, as with a missing one.
    let err = tenant.pat_settings(HOME_ORG).await.unwrap_err();
    assert_eq!(err.kind, "OrganizationNotFoundException", "{err}");

    let other = daemon_client(&server, OTHER_ROLE, None).await;
    assert_eq!(org_ids(&other).await, [OTHER_ORG]);
    // A role without an external id condition also takes a call that sends one.
    let other = daemon_client(&server, OTHER_ROLE, Some("unasked-for")).await;
    assert_eq!(org_ids(&other).await, [OTHER_ORG]);

    // Credentials that were not issued act as the emulator's own account, as before STS.
    let (orgs, _) = sdk_client(&server)
        .list_organizations()
        .send()
        .await
        .map(|o| (o.organization_summaries().to_vec(), ()))
        .unwrap();
    let ids: Vec<&str> = orgs.iter().filter_map(|o| o.organization_id()).collect();
    assert_eq!(ids, [HOME_ORG]);

    let calls = server.sim.calls();
    assert_eq!(calls.count("AssumeRole"), 3, "{calls:?}");
    assert_eq!(calls.refused, 0, "{calls:?}");
    assert_eq!(server.sim.sessions_issued(), 3);
}

#[tokio::test]
async fn issued_credentials_are_what_sts_returns_and_name_their_account() {
    let server = start_accounts().await;
    let before = server.sim.now();
    let creds = assume(&server, TENANT_ROLE, Some(EXTERNAL_ID), 900)
        .await
        .unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"), "{creds:?}");
    assert_eq!(creds.access_key_id().len(), 20);
    let token = creds.session_token().expect("a session token");
    let expiry: DateTime<Utc> = creds.expiry().expect("an expiry").into();
    let lifetime = expiry - before;
    assert!(
        (899..=901).contains(&lifetime.num_seconds()),
        "{lifetime:?}"
    );

    let client = client_with(
        &server,
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(token),
    );
    let d = client
        .describe_organization()
        .organization_id(TENANT_ORG_1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.arn(),
        Some(format!("arn:aws:workmail:us-east-1:{TENANT}:organization/{TENANT_ORG_1}").as_str())
    );
    let idp = client
        .describe_identity_provider_configuration()
        .organization_id(TENANT_ORG_1)
        .send()
        .await
        .unwrap();
    let app = idp
        .identity_center_configuration()
        .map(|c| c.application_arn())
        .unwrap_or_default();
    assert!(app.starts_with(&format!("arn:aws:sso::{TENANT}:")), "{app}");
    expect_err!(
        client
            .describe_organization()
            .organization_id(OTHER_ORG)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
}

#[tokio::test]
async fn a_forged_or_missing_session_token_or_a_wrong_secret_is_refused() {
    let server = start_accounts().await;
    let creds = assume(&server, OTHER_ROLE, None, 3600).await.unwrap();
    let (key, secret) = (creds.access_key_id(), creds.secret_access_key());
    let token = creds.session_token().unwrap();

    let ok = client_with(&server, key, secret, Some(token));
    ok.list_organizations().send().await.unwrap();

    let cases = [
        ("forged token", secret, Some("forged")),
        ("another session's token", secret, Some(&token[1..])),
        ("no token", secret, None),
    ];
    for (case, secret, token) in cases {
        let err = client_with(&server, key, secret, token)
            .list_organizations()
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            status_code(&err),
            (403, "UnrecognizedClientException".to_owned()),
            "case: {case}"
        );
        let message = err.as_service_error().and_then(|e| e.message());
        assert_eq!(
            message,
            Some("The security token included in the request is invalid."),
            "case: {case}"
        );
    }
    // An issued key is always known: its signature is checked though the emulator was
    // configured with no credentials.
    let err = client_with(&server, key, "not-the-secret", Some(token))
        .list_organizations()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "InvalidSignatureException".to_owned())
    );
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 4, "{calls:?}");
    assert_eq!(calls.count("ListOrganizations"), 1, "{calls:?}");
}

#[tokio::test]
async fn expired_session_credentials_are_refused() {
    let server = start_accounts().await;
    // Issued by a clock ten minutes behind, for the shortest session: they expire five
    // minutes from now (real time), within the signature's 15-minute window either way.
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: -600 })
        .unwrap();
    let creds = assume(&server, OTHER_ROLE, None, 900).await.unwrap();
    let client = client_with(
        &server,
        creds.access_key_id(),
        creds.secret_access_key(),
        creds.session_token(),
    );
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: 0 })
        .unwrap();
    client.list_organizations().send().await.unwrap();

    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: 400 })
        .unwrap();
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(status_code(&err), (400, "ExpiredTokenException".to_owned()));
    let message = err.as_service_error().and_then(|e| e.message());
    assert_eq!(
        message,
        Some("The security token included in the request is expired")
    );
}

#[tokio::test]
async fn a_wrong_external_id_or_an_unknown_role_is_access_denied() {
    let server = start_accounts().await;
    let unknown = "arn:aws:iam::210987654321:role/not-granted";
    let cases = [
        ("wrong external id", TENANT_ROLE, Some("guess")),
        ("missing external id", TENANT_ROLE, None),
        ("unknown role", unknown, None),
    ];
    for (case, role, external_id) in cases {
        let err = assume(&server, role, external_id, 3600).await.unwrap_err();
        let chain = error_chain(&err);
        assert!(chain.contains("AccessDenied"), "case: {case}: {chain}");
        let denial = format!(
            "User: arn:aws:iam::123456789012:user/emulator is not authorized to perform: sts:AssumeRole on resource: {role}"
        );
        assert!(chain.contains(&denial), "case: {case}: {chain}");

        // Through the daemon's client, the denial reaches the caller as a credentials error.
        let client = daemon_client(&server, role, external_id).await;
        let err = client.list_organizations_page(None, 10).await.unwrap_err();
        assert_eq!(err.kind, "credentials", "case: {case}: {err}");
    }
    let calls = server.sim.calls();
    assert_eq!(calls.count("AssumeRole"), 6, "{calls:?}");
    assert_eq!(calls.count("ListOrganizations"), 0, "{calls:?}");
    assert_eq!(server.sim.sessions_issued(), 0);

    // A role granted mid-run can be assumed from then on; one revoked no longer can.
    server.sim.set_role(unknown, Some(SimRole::default()));
    assume(&server, unknown, None, 3600).await.unwrap();
    server.sim.set_role(unknown, None);
    assume(&server, unknown, None, 3600).await.unwrap_err();
}

#[tokio::test]
async fn assumed_credentials_can_assume_another_role() {
    let server = start_accounts().await;
    let first = assume(&server, TENANT_ROLE, Some(EXTERNAL_ID), 3600)
        .await
        .unwrap();
    // An unknown role, asked with the tenant's session: the denial names that session.
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleSessionName=chained&RoleArn={}",
        "arn%3Aaws%3Aiam%3A%3A333333333333%3Arole%2Fnope"
    );
    let r = sts_signed(&server, &first, body.as_bytes()).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body.contains(
            "User: arn:aws:sts::210987654321:assumed-role/pat-monitor/workmail-pat-monitor is not authorized"
        ),
        "{r:?}"
    );
    // A granted one: the session is the new role's.
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleSessionName=chained&RoleArn={}",
        "arn%3Aaws%3Aiam%3A%3A333333333333%3Arole%2Fpat-monitor"
    );
    let r = sts_signed(&server, &first, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body
            .contains("<Arn>arn:aws:sts::333333333333:assumed-role/pat-monitor/chained</Arn>"),
        "{r:?}"
    );
}

// === Raw form requests ===

/// Form headers for STS with a well-formed `Authorization` and a dummy signature.
fn sts_headers(service: &str, at: DateTime<Utc>) -> Vec<(String, String)> {
    let date = amz_date(at);
    vec![
        (
            "Content-Type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ),
        ("X-Amz-Date".into(), date.clone()),
        (
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/{}/us-east-1/{service}/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature={}",
                &date[..8],
                "0".repeat(64)
            ),
        ),
    ]
}

async fn sts_raw(server: &SimServer, body: &str) -> Raw {
    let headers = sts_headers("sts", Utc::now());
    raw(server.addr, "POST", "/", &headers, body.as_bytes()).await
}

/// A form request signed (with the test's own signer) with issued credentials.
async fn sts_signed(
    server: &SimServer,
    creds: &aws_credential_types::Credentials,
    body: &[u8],
) -> Raw {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let hmac = |key: &[u8], data: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    };
    let date = amz_date(Utc::now());
    let host = server.addr.to_string();
    let token = creds.session_token().unwrap();
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("host", host.as_str()),
        ("x-amz-date", date.as_str()),
        ("x-amz-security-token", token),
    ];
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = "content-type;host;x-amz-date;x-amz-security-token";
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{}/us-east-1/sts/aws4_request", &date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{}", creds.secret_access_key()).into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part);
    }
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={}",
        creds.access_key_id(),
        hex::encode(hmac(&key, &to_sign))
    );
    let sent: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| *k != "host")
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([("authorization".to_owned(), authorization)])
        .collect();
    raw(server.addr, "POST", "/", &sent, body).await
}

/// The text of one XML element, the first of its name.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// Asserts an STS error document; returns its message.
fn assert_sts_error(r: &Raw, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/xml"), "{r:?}");
    assert!(
        r.body
            .starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
        "{r:?}"
    );
    assert_eq!(element(&r.body, "Type"), Some("Sender"), "{r:?}");
    assert_eq!(element(&r.body, "Code"), Some(code), "{r:?}");
    assert_eq!(
        element(&r.body, "RequestId"),
        r.header("x-amzn-requestid"),
        "{r:?}"
    );
    element(&r.body, "Message").unwrap_or_default().to_owned()
}

const ASSUME: &str = "Action=AssumeRole&Version=2011-06-15";
const ROLE: &str = "RoleArn=arn%3Aaws%3Aiam%3A%3A333333333333%3Arole%2Fpat-monitor";

#[tokio::test]
async fn a_raw_assume_role_answers_the_documented_xml() {
    let server = start_accounts().await;
    let r = sts_raw(
        &server,
        &format!("{ASSUME}&{ROLE}&RoleSessionName=a%2Bb%40c.d&DurationSeconds=1800"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert!(
        r.body.starts_with(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ),
        "{r:?}"
    );
    let role_id = element(&r.body, "AssumedRoleId").unwrap();
    assert!(
        role_id.starts_with("AROA") && role_id.ends_with(":a+b@c.d"),
        "{role_id}"
    );
    assert_eq!(
        element(&r.body, "Arn"),
        Some("arn:aws:sts::333333333333:assumed-role/pat-monitor/a+b@c.d")
    );
    let expiration = element(&r.body, "Expiration").unwrap();
    let expiration = DateTime::parse_from_rfc3339(expiration).unwrap().to_utc();
    let lifetime = expiration - Utc::now();
    assert!(
        (1790..=1800).contains(&lifetime.num_seconds()),
        "{lifetime:?}"
    );
    assert_eq!(
        element(&r.body, "RequestId"),
        r.header("x-amzn-requestid"),
        "{r:?}"
    );
    for member in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
        assert!(
            element(&r.body, member).is_some_and(|v| !v.is_empty()),
            "{member}"
        );
    }
}

#[tokio::test]
async fn malformed_assume_role_requests_get_stss_errors() {
    let server = start_accounts().await;
    let s = "RoleSessionName=ok-session";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "short session name",
            format!("{ASSUME}&{ROLE}&RoleSessionName=a"),
            "ValidationError",
            "1 validation error detected: Value 'a' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2",
        ),
        (
            "long session name",
            format!("{ASSUME}&{ROLE}&RoleSessionName={}", "s".repeat(65)),
            "ValidationError",
            "at 'roleSessionName' failed to satisfy constraint: Member must have length less than or equal to 64",
        ),
        (
            "session name with a slash",
            format!("{ASSUME}&{ROLE}&RoleSessionName=a%2Fb"),
            "ValidationError",
            "Value 'a/b' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        ),
        (
            "markup is escaped",
            format!("{ASSUME}&{ROLE}&RoleSessionName=%3Cx%3E"),
            "ValidationError",
            "Value '<x>' at 'roleSessionName'",
        ),
        (
            "no role",
            format!("{ASSUME}&{s}"),
            "ValidationError",
            "Value null at 'roleArn' failed to satisfy constraint: Member must not be null",
        ),
        (
            "two problems",
            format!("{ASSUME}&RoleArn=short&RoleSessionName=x"),
            "ValidationError",
            "2 validation errors detected: Value 'short' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20; Value 'x' at 'roleSessionName'",
        ),
        (
            "not a role ARN",
            format!("{ASSUME}&{s}&RoleArn=arn%3Aaws%3Aiam%3A%3A333333333333%3Auser%2Fbob"),
            "ValidationError",
            "arn:aws:iam::333333333333:user/bob is not a valid role ARN",
        ),
        (
            "short external id",
            format!("{ASSUME}&{ROLE}&{s}&ExternalId=x"),
            "ValidationError",
            "Value 'x' at 'externalId' failed to satisfy constraint: Member must have length greater than or equal to 2",
        ),
        (
            "external id with a space",
            format!("{ASSUME}&{ROLE}&{s}&ExternalId=a+b"),
            "ValidationError",
            "at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern",
        ),
        (
            "short duration",
            format!("{ASSUME}&{ROLE}&{s}&DurationSeconds=899"),
            "ValidationError",
            "Value '899' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900",
        ),
        (
            "long duration",
            format!("{ASSUME}&{ROLE}&{s}&DurationSeconds=43201"),
            "ValidationError",
            "Member must have value less than or equal to 43200",
        ),
        (
            "another action",
            format!("Action=GetCallerIdentity&Version=2011-06-15&{ROLE}&{s}"),
            "InvalidAction",
            "Could not find operation GetCallerIdentity for version 2011-06-15",
        ),
        (
            "another version",
            format!("Action=AssumeRole&Version=2010-01-01&{ROLE}&{s}"),
            "InvalidAction",
            "Could not find operation AssumeRole for version 2010-01-01",
        ),
        (
            "bad percent-encoding",
            format!("{ASSUME}&{ROLE}&RoleSessionName=%zz"),
            "MalformedQueryString",
            "malformed value of RoleSessionName",
        ),
    ];
    let assume_calls = cases.iter().filter(|c| c.2 == "ValidationError").count();
    for (case, body, code, want) in &cases {
        let r = sts_raw(&server, body).await;
        let message = assert_sts_error(&r, 400, code);
        if *case == "markup is escaped" {
            assert!(r.body.contains("Value '&lt;x&gt;'"), "case: {case}: {r:?}");
        }
        let message = message.replace("&lt;", "<").replace("&gt;", ">");
        assert!(message.contains(want), "case: {case}: {message}");
    }
    let calls = server.sim.calls();
    assert_eq!(
        calls.count("AssumeRole") as usize,
        assume_calls,
        "{calls:?}"
    );
    assert_eq!(server.sim.sessions_issued(), 0);
}

#[tokio::test]
async fn each_protocol_must_be_signed_for_its_own_service() {
    let server = start_accounts().await;
    // A form signed for WorkMail: STS refuses the scope, in its own words.
    let headers = sts_headers("workmail", Utc::now());
    let body = format!("{ASSUME}&{ROLE}&RoleSessionName=ok");
    let r = raw(server.addr, "POST", "/", &headers, body.as_bytes()).await;
    let message = assert_sts_error(&r, 403, "SignatureDoesNotMatch");
    assert!(message.contains("us-east-1/sts"), "{message}");

    // A WorkMail call signed for STS: WorkMail refuses it.
    let mut headers = dummy_signed("us-east-1", "WorkMailService.ListOrganizations", Utc::now());
    for (k, v) in &mut headers {
        if k == "Authorization" {
            *v = v.replace("/workmail/", "/sts/");
        }
    }
    let r = raw(server.addr, "POST", "/", &headers, b"{}").await;
    let message = r.assert_error(403, "InvalidSignatureException");
    assert!(message.contains("us-east-1/workmail"), "{message}");

    // No signature at all.
    let r = raw(
        server.addr,
        "POST",
        "/",
        &[(
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )],
        body.as_bytes(),
    )
    .await;
    assert_sts_error(&r, 403, "InvalidClientTokenId");
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 3, "{calls:?}");
    assert_eq!(calls.total(), 0, "{calls:?}");
}

#[test]
fn scenario_accounts_and_roles_are_validated() {
    let bad_account = "[[organizations]]\nalias = \"x\"\naccount = \"12345\"\n";
    let err = Scenario::parse(bad_account)
        .unwrap()
        .build(now())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid account \"12345\" of organization x: expected 12 digits"
    );
    let bad_role = "[[roles]]\narn = \"arn:aws:iam::123:role/x\"\n";
    let err = Scenario::parse(bad_role)
        .unwrap()
        .roles()
        .unwrap_err()
        .to_string();
    assert!(err.contains("arn:aws:iam::123:role/x"), "{err}");
    let unknown = "[[roles]]\narn = \"arn:aws:iam::123456789012:role/x\"\nexternal = \"y\"\n";
    assert!(Scenario::parse(unknown).is_err());

    // The generator keeps every organization in the emulator's account unless spread.
    let mut w = world::generate(&GenSpec::new(3, now()));
    assert!(w.orgs.values().all(|o| o.account_id == world::ACCOUNT_ID));
    w.spread_over_accounts(&[TENANT, OTHER]);
    let accounts: Vec<&str> = w.orgs.values().map(|o| o.account_id.as_str()).collect();
    assert_eq!(accounts, [TENANT, OTHER, TENANT, OTHER]);
}
