//! The WorkMail emulator, driven by the real `aws-sdk-workmail` client over loopback HTTP —
//! and, where the SDK cannot send what a test needs (unknown targets, unsigned or hand-signed
//! requests, bodies the SDK would never build), by hand-written HTTP/1.1 requests.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_workmail::Client;
use aws_sdk_workmail::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_workmail::config::timeout::TimeoutConfig;
use aws_sdk_workmail::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_workmail::types::{EntityState, ListUsersFilters, PersonalAccessTokenSummary};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use workmail_pat_monitor::sim::world::{self, GenSpec, Org, World};
use workmail_pat_monitor::sim::{
    Faults, Mutation, OPERATIONS, OpFaults, Scenario, SimConfig, SimServer, model,
};
use workmail_pat_monitor::workmail::ClientFactory;

use crate::support::{now, request, sdk_client, sdk_client_with, start_scenario, start_sim};

// === Fixtures ===

const ORG: &str = "m-0123456789abcdef0123456789abcdef";
const NOIDP: &str = "m-11111111111111111111111111111111";
const GONE: &str = "m-22222222222222222222222222222222";
const PATOFF: &str = "m-33333333333333333333333333333333";
const NO_SUCH_ORG: &str = "m-00000000000000000000000000000000";
const ALICE: &str = "a1000000-0000-4000-8000-000000000001";
const BOB: &str = "b2000000-0000-4000-8000-000000000002";
const CAROL: &str = "c3000000-0000-4000-8000-000000000003";
const DAVE: &str = "d4000000-0000-4000-8000-000000000004";
const GHOST: &str = "deadbeef-0000-4000-8000-00000000dead";

/// Four organizations: one with users and tokens of every kind, one without an identity
/// provider configuration, one not Active, one with PATs switched off. Times use
/// milliseconds so fractional epoch seconds go over the wire.
const SCENARIO: &str = r#"
[[organizations]]
id = "m-0123456789abcdef0123456789abcdef"
alias = "acme"
identity_provider = { authentication_mode = "IDENTITY_PROVIDER_AND_DIRECTORY", pat_status = "ACTIVE", pat_lifetime_days = 365 }

[[organizations.users]]
id = "a1000000-0000-4000-8000-000000000001"
name = "alice"
email = "alice@acme.example.com"
display_name = "Alice Ångström"
enabled_date = "2025-01-02T03:04:05.678Z"
identity_provider_user_id = "90676d0a-1111-2222-3333-444455556666"

[[organizations.users]]
id = "b2000000-0000-4000-8000-000000000002"
name = "bob"
email = "bob@acme.example.com"
display_name = "Bob <b>Builder</b>"
state = "DISABLED"
enabled_date = "now-400d"
disabled_date = "now-10d"

[[organizations.users]]
id = "c3000000-0000-4000-8000-000000000003"
name = "carol"
display_name = "Carol"
state = "DELETED"
disabled_date = "now-100d"

[[organizations.users]]
id = "d4000000-0000-4000-8000-000000000004"
name = "dave"
email = "dave@acme.example.com"
display_name = "Dave"
identity_provider_user_id = "90676d0a-9999-2222-3333-444455556666"

[[organizations.tokens]]
id = "pat-alice-1"
user_id = "a1000000-0000-4000-8000-000000000001"
name = "Thunderbird on laptop"
created = "2026-03-04T05:06:07.891Z"
last_used = "2026-10-31T23:59:59.5Z"
expires = "2027-03-04T05:06:07.891Z"
scopes = ["IMAP", "SMTP"]

[[organizations.tokens]]
id = "pat-alice-2"
user_id = "a1000000-0000-4000-8000-000000000001"
name = "iPhone Mail 📱"
created = "now-10d"
expires = "now+20d"
scopes = ["EWS"]

[[organizations.tokens]]
id = "pat-bob-1"
user_id = "b2000000-0000-4000-8000-000000000002"
name = "mutt"
created = "now-200d"
last_used = "now-100d"
expires = "now-1d"

[[organizations.tokens]]
id = "pat-ghost-1"
user_id = "deadbeef-0000-4000-8000-00000000dead"
name = "printer scan-to-mail"
created = "now-300d"
last_used = "now-200d"
expires = "now+60d"
scopes = ["SMTP"]

[[organizations]]
id = "m-11111111111111111111111111111111"
alias = "noidp"

[[organizations.users]]
id = "e5000000-0000-4000-8000-000000000005"
name = "erin"
email = "erin@noidp.example.com"

[[organizations]]
id = "m-22222222222222222222222222222222"
alias = "gone"
state = "Deleted"

[[organizations]]
id = "m-33333333333333333333333333333333"
alias = "patoff"
identity_provider = { authentication_mode = "IDENTITY_PROVIDER_ONLY", pat_status = "INACTIVE" }
"#;

fn scenario_world() -> World {
    Scenario::parse(SCENARIO).unwrap().build(now()).unwrap()
}

/// A generated world big enough for many pages: two Active organizations of 120 users and
/// 257 tokens each, plus one that is not Active.
fn big_world() -> World {
    world::generate(&GenSpec {
        seed: 11,
        organizations: 2,
        users_per_org: 120,
        tokens_per_org: Some(257),
        inactive_organization: true,
        now: now(),
    })
}

fn active_orgs(world: &World) -> Vec<&Org> {
    world
        .orgs
        .values()
        .filter(|o| o.state == "Active")
        .collect()
}

fn t(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

/// Milliseconds of an SDK timestamp, rounded: a JSON number with a fraction is a binary
/// float on its way, so compare at the millisecond precision the emulator writes.
fn ms(t: &aws_smithy_types::DateTime) -> i64 {
    t.secs() * 1000 + (i64::from(t.subsec_nanos()) + 500_000) / 1_000_000
}

fn opt_ms(t: Option<&aws_smithy_types::DateTime>) -> Option<i64> {
    t.map(ms)
}

/// A client like [`sdk_client_with`] but with a retry partition of its own, so the retry
/// quota tests drain is not the one other tests' clients share.
fn isolated(server: &SimServer, retry: RetryConfig) -> Client {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = sdk_client_with(server, retry);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let conf = base
        .config()
        .to_builder()
        .retry_partition(RetryPartition::new(format!("sim-test-{n}")))
        .build();
    Client::from_conf(conf)
}

/// HTTP status and error code of an SDK error.
fn status_code<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_workmail::config::http::HttpResponse>,
) -> (u16, String) {
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

/// Asserts a call failed with the given modeled error (by its `is_*` method) and HTTP
/// status; evaluates to the error message.
macro_rules! expect_err {
    ($result:expr, $is:ident, $status:expr) => {{
        let err = $result.expect_err(concat!("expected ", stringify!($is)));
        let service = err
            .as_service_error()
            .unwrap_or_else(|| panic!("not a service error: {err:?}"));
        assert!(
            service.$is(),
            "expected {} but got {service:?}",
            stringify!($is)
        );
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some($status),
            "{err:?}"
        );
        let message: String = service.message().unwrap_or_default().into();
        message
    }};
}

fn token_ids(items: &[PersonalAccessTokenSummary]) -> Vec<String> {
    items
        .iter()
        .map(|t| t.personal_access_token_id().unwrap().to_owned())
        .collect()
}

fn assert_unique(ids: &[String]) {
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "duplicates in {ids:?}");
}

// === Raw HTTP ===

/// A response read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts an AWS error answer: status, `x-amzn-errortype`, `__type` and a request id.
    fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("x-amzn-errortype"), Some(code), "{self:?}");
        let body = self.json();
        assert_eq!(body["__type"], code, "{self:?}");
        assert!(self.header("x-amzn-requestid").is_some(), "{self:?}");
        body["Message"].as_str().unwrap_or_default().to_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Host` is the address, with its port).
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Raw {
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The emulator reads a body by its length: say it even when it is empty.
    let length = body.len().to_string();
    if body.is_empty() {
        all.push(("Content-Length", &length));
    }
    let r = request(&addr.to_string(), method, path, &all, body).await;
    Raw {
        status: r.status,
        body: r.text(),
        headers: r.headers,
    }
}

async fn get(server: &SimServer, path: &str) -> Raw {
    raw(server.addr, "GET", path, &[], b"").await
}

async fn send_json(server: &SimServer, method: &str, path: &str, body: &Value) -> Raw {
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    raw(
        server.addr,
        method,
        path,
        &headers,
        body.to_string().as_bytes(),
    )
    .await
}

fn amz_date(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// AWS JSON 1.1 headers with a well-formed SigV4 `Authorization` header for `region` and a
/// dummy signature: what an emulator without configured credentials accepts.
fn dummy_signed(region: &str, target: &str, at: DateTime<Utc>) -> Vec<(String, String)> {
    let date = amz_date(at);
    vec![
        ("Content-Type".into(), "application/x-amz-json-1.1".into()),
        ("X-Amz-Target".into(), target.to_owned()),
        ("X-Amz-Date".into(), date.clone()),
        (
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/{}/{region}/workmail/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
                &date[..8],
                "0".repeat(64)
            ),
        ),
    ]
}

/// Calls `op` with a raw JSON body and a dummy signature.
async fn call(server: &SimServer, op: &str, body: &Value) -> Raw {
    let headers = dummy_signed(
        server.sim.region(),
        &format!("WorkMailService.{op}"),
        Utc::now(),
    );
    raw(
        server.addr,
        "POST",
        "/",
        &headers,
        body.to_string().as_bytes(),
    )
    .await
}

/// A textbook SigV4 signer for a POST / with the headers [`dummy_signed`] sends (plus,
/// optionally, a signed `x-amz-content-sha256`), independent of the emulator's and the
/// SDK's signers.
struct Signer<'a> {
    access_key: &'a str,
    secret: &'a str,
    region: &'a str,
    host: &'a str,
    target: &'a str,
    date: &'a str,
    /// A signed `x-amz-content-sha256` header with this value.
    content_sha256: Option<String>,
}

impl Signer<'_> {
    /// The request headers, `Authorization` included, for `body`.
    fn headers(&self, body: &[u8]) -> Vec<(String, String)> {
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};
        let hmac = |key: &[u8], data: &str| {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        };
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            ("host".to_owned(), self.host.to_owned()),
            ("x-amz-date".to_owned(), self.date.to_owned()),
            ("x-amz-target".to_owned(), self.target.to_owned()),
        ];
        if let Some(h) = &self.content_sha256 {
            headers.push(("x-amz-content-sha256".to_owned(), h.clone()));
        }
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical = format!(
            "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
            hex::encode(Sha256::digest(body))
        );
        let scope = format!("{}/{}/workmail/aws4_request", &self.date[..8], self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            self.date,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{}", self.secret).into_bytes();
        for part in scope.split('/') {
            key = hmac(&key, part);
        }
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={}",
            self.access_key,
            hex::encode(hmac(&key, &to_sign))
        );
        // The raw client sends its own Host (the address with its port).
        headers.retain(|(k, _)| k != "host");
        headers.push(("authorization".to_owned(), authorization));
        headers
    }
}

// === 1. Every operation, happy path ===

#[tokio::test]
async fn lists_and_describes_organizations() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let world = server.sim.world();

    let out = client.list_organizations().send().await.unwrap();
    assert!(out.next_token().is_none());
    let got: Vec<(String, String, String, String)> = out
        .organization_summaries()
        .iter()
        .map(|o| {
            (
                o.organization_id().unwrap().to_owned(),
                o.alias().unwrap().to_owned(),
                o.default_mail_domain().unwrap().to_owned(),
                o.state().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String)> = world
        .orgs
        .values()
        .map(|o| {
            (
                o.id.clone(),
                o.alias.clone(),
                o.default_mail_domain.clone(),
                o.state.clone(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].1, "acme");
    assert_eq!(got[0].2, "acme.example.com");

    // Every organization can be described, including one that is not Active.
    for o in world.orgs.values() {
        let d = client
            .describe_organization()
            .organization_id(&o.id)
            .send()
            .await
            .unwrap();
        assert_eq!(d.organization_id(), Some(o.id.as_str()));
        assert_eq!(d.alias(), Some(o.alias.as_str()));
        assert_eq!(d.state(), Some(o.state.as_str()));
        assert_eq!(
            d.default_mail_domain(),
            Some(o.default_mail_domain.as_str())
        );
        assert_eq!(d.directory_type(), Some("WorkMailDirectory"));
        assert!(d.directory_id().unwrap().starts_with("d-"));
        assert_eq!(
            d.arn(),
            Some(
                format!(
                    "arn:aws:workmail:us-east-1:123456789012:organization/{}",
                    o.id
                )
                .as_str()
            )
        );
        assert_eq!(
            opt_ms(d.completed_date()),
            Some(o.completed.timestamp_millis())
        );
        assert_eq!(
            o.completed,
            now() - chrono::Duration::days(800),
            "scenario organizations complete 800 days before now"
        );
    }
    let gone = client
        .describe_organization()
        .organization_id(GONE)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.state(), Some("Deleted"));
}

async fn user_ids(client: &Client, filters: Option<ListUsersFilters>) -> Vec<String> {
    let out = client
        .list_users()
        .organization_id(ORG)
        .set_filters(filters)
        .send()
        .await
        .unwrap();
    assert!(out.next_token().is_none());
    out.users()
        .iter()
        .map(|u| u.id().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_users_with_each_filter() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let f = ListUsersFilters::builder;

    assert_eq!(user_ids(&client, None).await, [ALICE, BOB, CAROL, DAVE]);
    let cases: Vec<(ListUsersFilters, Vec<&str>)> = vec![
        (f().username_prefix("b").build(), vec![BOB]),
        (
            f().username_prefix("").build(),
            vec![ALICE, BOB, CAROL, DAVE],
        ),
        (f().username_prefix("zed").build(), vec![]),
        (f().display_name_prefix("Alice Å").build(), vec![ALICE]),
        (f().display_name_prefix("Bob <b>").build(), vec![BOB]),
        (f().primary_email_prefix("dave@").build(), vec![DAVE]),
        // Carol has no email: no prefix matches her, not even the empty one.
        (f().primary_email_prefix("").build(), vec![ALICE, BOB, DAVE]),
        (f().state(EntityState::Enabled).build(), vec![ALICE, DAVE]),
        (f().state(EntityState::Disabled).build(), vec![BOB]),
        (f().state(EntityState::Deleted).build(), vec![CAROL]),
        (
            f().identity_provider_user_id_prefix("90676d0a-1111")
                .build(),
            vec![ALICE],
        ),
        (
            f().identity_provider_user_id_prefix("90676D0A").build(),
            vec![],
        ),
        (
            f().identity_provider_user_id_prefix("90676d0a").build(),
            vec![ALICE, DAVE],
        ),
    ];
    for (filters, want) in cases {
        assert_eq!(
            user_ids(&client, Some(filters.clone())).await,
            want,
            "{filters:?}"
        );
    }

    // One filter per request.
    let two = f().username_prefix("a").state(EntityState::Enabled).build();
    let msg = expect_err!(
        client
            .list_users()
            .organization_id(ORG)
            .filters(two)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("one filter"), "{msg}");

    // The fields of each user, against the world.
    let out = client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    let world = server.sim.world();
    let org = &world.orgs[ORG];
    for u in out.users() {
        let w = &org.users[u.id().unwrap()];
        assert_eq!(u.name(), Some(w.name.as_str()));
        assert_eq!(u.email(), w.email.as_deref());
        assert_eq!(u.display_name(), w.display_name.as_deref());
        assert_eq!(u.state().map(EntityState::as_str), Some(w.state.as_str()));
        assert_eq!(u.user_role().map(|r| r.as_str()), Some("USER"));
        assert_eq!(
            opt_ms(u.enabled_date()),
            w.enabled_date.map(|d| d.timestamp_millis())
        );
        assert_eq!(
            opt_ms(u.disabled_date()),
            w.disabled_date.map(|d| d.timestamp_millis())
        );
        assert_eq!(
            u.identity_provider_user_id(),
            w.identity_provider_user_id.as_deref()
        );
    }
    let alice = &out.users()[0];
    assert_eq!(
        opt_ms(alice.enabled_date()),
        Some(t("2025-01-02T03:04:05.678Z").timestamp_millis())
    );
    assert!(alice.identity_provider_identity_store_id().is_some());
    assert_eq!(out.users()[2].email(), None);
}

#[tokio::test]
async fn describes_users_by_id_name_and_email() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    for key in [ALICE, "alice", "alice@acme.example.com"] {
        let u = client
            .describe_user()
            .organization_id(ORG)
            .user_id(key)
            .send()
            .await
            .unwrap();
        assert_eq!(u.user_id(), Some(ALICE), "by {key}");
        assert_eq!(u.name(), Some("alice"));
        assert_eq!(u.email(), Some("alice@acme.example.com"));
        assert_eq!(u.display_name(), Some("Alice Ångström"));
        assert_eq!(u.state(), Some(&EntityState::Enabled));
        assert_eq!(u.user_role().map(|r| r.as_str()), Some("USER"));
        assert_eq!(
            opt_ms(u.enabled_date()),
            Some(t("2025-01-02T03:04:05.678Z").timestamp_millis())
        );
        assert_eq!(u.disabled_date(), None);
        assert_eq!(
            u.identity_provider_user_id(),
            Some("90676d0a-1111-2222-3333-444455556666")
        );
    }
    let bob = client
        .describe_user()
        .organization_id(ORG)
        .user_id("bob@acme.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(bob.user_id(), Some(BOB));
    assert_eq!(bob.state(), Some(&EntityState::Disabled));
    assert_eq!(
        opt_ms(bob.disabled_date()),
        Some((now() - chrono::Duration::days(10)).timestamp_millis())
    );
    assert_eq!(bob.display_name(), Some("Bob <b>Builder</b>"));
    let carol = client
        .describe_user()
        .organization_id(ORG)
        .user_id("carol")
        .send()
        .await
        .unwrap();
    assert_eq!(carol.user_id(), Some(CAROL));
    assert_eq!(carol.state(), Some(&EntityState::Deleted));
    assert_eq!(carol.email(), None);
    assert_eq!(carol.identity_provider_user_id(), None);
}

#[tokio::test]
async fn lists_tokens_of_the_organization_and_of_one_user() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let world = server.sim.world();
    let org = &world.orgs[ORG];

    let out = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert!(out.next_token().is_none());
    let items = out.personal_access_token_summaries();
    assert_eq!(
        token_ids(items),
        ["pat-alice-1", "pat-alice-2", "pat-bob-1", "pat-ghost-1"]
    );
    for s in items {
        let w = &org.tokens[s.personal_access_token_id().unwrap()];
        assert_eq!(s.user_id(), Some(w.user_id.as_str()));
        assert_eq!(s.name(), Some(w.name.as_str()));
        assert_eq!(opt_ms(s.date_created()), Some(w.created.timestamp_millis()));
        assert_eq!(
            opt_ms(s.date_last_used()),
            w.last_used.map(|d| d.timestamp_millis())
        );
        assert_eq!(opt_ms(s.expires_time()), Some(w.expires.timestamp_millis()));
        assert_eq!(s.scopes(), w.scopes.as_slice());
    }
    assert_eq!(items[1].name(), Some("iPhone Mail 📱"));
    assert_eq!(items[1].date_last_used(), None);
    assert_eq!(items[2].scopes(), ["IMAP"], "the scenario's default scope");
    assert_eq!(items[3].user_id(), Some(GHOST));

    let by_user = |user: &'static str| {
        let client = client.clone();
        async move {
            let out = client
                .list_personal_access_tokens()
                .organization_id(ORG)
                .user_id(user)
                .send()
                .await
                .unwrap();
            assert!(out.next_token().is_none());
            token_ids(out.personal_access_token_summaries())
        }
    };
    assert_eq!(by_user(ALICE).await, ["pat-alice-1", "pat-alice-2"]);
    assert_eq!(by_user(BOB).await, ["pat-bob-1"]);
    assert!(by_user(DAVE).await.is_empty());
}

#[tokio::test]
async fn gets_token_metadata_with_fractional_timestamps() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let m = client
        .get_personal_access_token_metadata()
        .organization_id(ORG)
        .personal_access_token_id("pat-alice-1")
        .send()
        .await
        .unwrap();
    assert_eq!(m.personal_access_token_id(), Some("pat-alice-1"));
    assert_eq!(m.user_id(), Some(ALICE));
    assert_eq!(m.name(), Some("Thunderbird on laptop"));
    assert_eq!(m.scopes(), ["IMAP", "SMTP"]);
    assert_eq!(
        opt_ms(m.date_created()),
        Some(t("2026-03-04T05:06:07.891Z").timestamp_millis())
    );
    assert_eq!(
        opt_ms(m.date_last_used()),
        Some(t("2026-10-31T23:59:59.5Z").timestamp_millis())
    );
    assert_eq!(
        opt_ms(m.expires_time()),
        Some(t("2027-03-04T05:06:07.891Z").timestamp_millis())
    );

    // On the wire: epoch seconds with a fraction only where there is one.
    let r = call(
        &server,
        "GetPersonalAccessTokenMetadata",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-alice-1"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    let body = r.json();
    assert_eq!(body["DateCreated"].as_f64(), Some(1_772_600_767.891));
    assert_eq!(body["DateLastUsed"].as_f64(), Some(1_793_491_199.5));
    let r = call(
        &server,
        "GetPersonalAccessTokenMetadata",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-bob-1"}),
    )
    .await;
    let body = r.json();
    assert!(body["ExpiresTime"].is_u64(), "{body}");
    assert!(body.get("DateLastUsed").is_some());
    let r = call(
        &server,
        "GetPersonalAccessTokenMetadata",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-alice-2"}),
    )
    .await;
    assert!(
        r.json().get("DateLastUsed").is_none(),
        "never used: no member"
    );
}

#[tokio::test]
async fn deletes_tokens_with_an_empty_answer_idempotently() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-bob-1")
        .send()
        .await
        .unwrap();
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .personal_access_token_id("pat-bob-1")
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );
    // Deleting again succeeds, and so does deleting a token that never existed.
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-bob-1")
        .send()
        .await
        .unwrap();
    let r = call(
        &server,
        "DeletePersonalAccessToken",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-never-was"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({}), "the output shape has no members");
    assert!(r.header("x-amzn-requestid").is_some());

    let deleted = server.sim.deleted();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].organization_id, ORG);
    assert_eq!(deleted[0].token_id, "pat-bob-1");
    assert_eq!(deleted[0].user_id, BOB);
    let left = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(
        token_ids(left.personal_access_token_summaries()),
        ["pat-alice-1", "pat-alice-2", "pat-ghost-1"]
    );
    assert_eq!(server.sim.calls().count("DeletePersonalAccessToken"), 3);
}

#[tokio::test]
async fn describes_identity_provider_configurations() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let c = client
        .describe_identity_provider_configuration()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.authentication_mode().map(|m| m.as_str()),
        Some("IDENTITY_PROVIDER_AND_DIRECTORY")
    );
    let pat = c.personal_access_token_configuration().unwrap();
    assert_eq!(pat.status().as_str(), "ACTIVE");
    assert_eq!(pat.lifetime_in_days(), Some(365));
    let ic = c.identity_center_configuration().unwrap();
    assert!(
        ic.instance_arn()
            .starts_with("arn:aws:sso:::instance/ssoins-")
    );
    assert!(
        ic.application_arn()
            .starts_with("arn:aws:sso::123456789012:application/")
    );

    let off = client
        .describe_identity_provider_configuration()
        .organization_id(PATOFF)
        .send()
        .await
        .unwrap();
    assert_eq!(
        off.authentication_mode().map(|m| m.as_str()),
        Some("IDENTITY_PROVIDER_ONLY")
    );
    let pat = off.personal_access_token_configuration().unwrap();
    assert_eq!(pat.status().as_str(), "INACTIVE");
    assert_eq!(pat.lifetime_in_days(), None);

    expect_err!(
        client
            .describe_identity_provider_configuration()
            .organization_id(NOIDP)
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );
}

// === 2. Pagination ===

#[tokio::test]
async fn token_items_paginate_across_many_pages() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    for org in active_orgs(&world) {
        server.sim.reset_calls();
        let items: Vec<PersonalAccessTokenSummary> = client
            .list_personal_access_tokens()
            .organization_id(&org.id)
            .max_results(7)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        let ids = token_ids(&items);
        let want: Vec<String> = org.tokens.keys().cloned().collect();
        assert_eq!(want.len(), 257);
        assert_eq!(ids, want, "the whole set, in order");
        assert_unique(&ids);
        assert_eq!(
            server.sim.calls().count("ListPersonalAccessTokens"),
            37,
            "257 tokens in pages of 7, no empty trailing page"
        );
        for s in &items {
            let w = &org.tokens[s.personal_access_token_id().unwrap()];
            assert_eq!(s.user_id(), Some(w.user_id.as_str()));
            assert_eq!(opt_ms(s.expires_time()), Some(w.expires.timestamp_millis()));
        }

        // One user's tokens, two per page.
        let mut per_user: HashMap<&str, Vec<String>> = HashMap::new();
        for t in org.tokens.values() {
            per_user.entry(&t.user_id).or_default().push(t.id.clone());
        }
        let (user, want) = per_user
            .iter()
            .filter(|(u, _)| org.users.contains_key(**u))
            .max_by_key(|(u, v)| (v.len(), **u))
            .unwrap();
        assert!(want.len() >= 5, "the generator skews tokens to a few users");
        let items: Vec<PersonalAccessTokenSummary> = client
            .list_personal_access_tokens()
            .organization_id(&org.id)
            .user_id(*user)
            .max_results(2)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(&token_ids(&items), want);
    }
}

#[tokio::test]
async fn user_pages_and_organization_items_paginate() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    let org = active_orgs(&world)[0];

    let pages: Vec<_> = client
        .list_users()
        .organization_id(&org.id)
        .max_results(9)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 14, "120 users in pages of 9");
    for (i, p) in pages.iter().enumerate() {
        let want = if i == 13 { 120 - 13 * 9 } else { 9 };
        assert_eq!(p.users().len(), want, "page {i}");
        assert_eq!(p.next_token().is_some(), i < 13);
    }
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.users())
        .map(|u| u.id().unwrap().to_owned())
        .collect();
    assert_eq!(ids, org.users.keys().cloned().collect::<Vec<_>>());
    assert_unique(&ids);

    // A filtered listing pages through its own subset.
    let pages: Vec<_> = client
        .list_users()
        .organization_id(&org.id)
        .filters(
            ListUsersFilters::builder()
                .state(EntityState::Disabled)
                .build(),
        )
        .max_results(4)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.users())
        .map(|u| u.id().unwrap().to_owned())
        .collect();
    let want: Vec<String> = org
        .users
        .values()
        .filter(|u| u.state == "DISABLED")
        .map(|u| u.id.clone())
        .collect();
    assert!(want.len() > 8, "several pages of disabled users");
    assert_eq!(ids, want);

    // Organizations, one per page.
    server.sim.reset_calls();
    let pages: Vec<_> = client
        .list_organizations()
        .max_results(1)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert!(pages.iter().all(|p| p.organization_summaries().len() == 1));
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.organization_summaries())
        .map(|o| o.organization_id().unwrap())
        .collect();
    assert_eq!(
        ids,
        world.orgs.keys().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(ids.len(), 3);
    assert_eq!(server.sim.calls().count("ListOrganizations"), 3);
}

#[tokio::test]
async fn deleting_between_pages_neither_skips_nor_repeats() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    let org = active_orgs(&world)[0];
    let all: Vec<String> = org.tokens.keys().cloned().collect();

    // The paginator fetches a page only when asked for it, so what happens between two
    // `next()` calls happens between two requests.
    let mut pages = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(10)
        .into_paginator()
        .send();
    let first = pages.next().await.unwrap().unwrap();
    let mut seen = token_ids(first.personal_access_token_summaries());
    assert_eq!(seen, all[..10]);

    // Delete the token the cursor points after, one already seen, and one on page 3.
    for id in [&all[9], &all[0], &all[25]] {
        client
            .delete_personal_access_token()
            .organization_id(&org.id)
            .personal_access_token_id(id)
            .send()
            .await
            .unwrap();
    }
    // A token added behind the cursor is not listed; one added ahead of it is.
    let add = |id: &str| Mutation::AddToken {
        organization_id: org.id.clone(),
        token_id: id.to_owned(),
        user_id: org.users.keys().next().unwrap().clone(),
        name: "added mid-listing".into(),
        created: now(),
        last_used: None,
        expires: now() + chrono::Duration::days(30),
        scopes: vec!["IMAP".into()],
    };
    let behind = format!("pat-{}", "0".repeat(24));
    let ahead = format!("pat-{}", "f".repeat(24));
    assert!(behind < all[0] && ahead > all[all.len() - 1]);
    server.sim.mutate(add(&behind)).unwrap();
    server.sim.mutate(add(&ahead)).unwrap();

    while let Some(page) = pages.next().await {
        seen.extend(token_ids(page.unwrap().personal_access_token_summaries()));
    }
    let mut want: Vec<String> = all.iter().filter(|id| **id != all[25]).cloned().collect();
    want.push(ahead);
    assert_unique(&seen);
    assert_eq!(seen, want);
    assert_eq!(
        seen[10], all[10],
        "page 2 starts right after the deleted cursor"
    );
}

#[tokio::test]
async fn forged_tampered_and_foreign_next_tokens_are_refused() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    let orgs = active_orgs(&world);
    let (a, b) = (&orgs[0].id, &orgs[1].id);

    let page = client
        .list_personal_access_tokens()
        .organization_id(a)
        .max_results(5)
        .send()
        .await
        .unwrap();
    let token = page.next_token().unwrap().to_owned();
    // The genuine token works, and works again (it is a cursor, not a one-time ticket).
    for _ in 0..2 {
        let next = client
            .list_personal_access_tokens()
            .organization_id(a)
            .max_results(5)
            .next_token(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            token_ids(next.personal_access_token_summaries()),
            orgs[0]
                .tokens
                .keys()
                .skip(5)
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
        );
    }
    let users_token = client
        .list_users()
        .organization_id(a)
        .max_results(5)
        .send()
        .await
        .unwrap()
        .next_token()
        .unwrap()
        .to_owned();

    let flip = |s: &str, at: usize| {
        let mut chars: Vec<char> = s.chars().collect();
        chars[at] = if chars[at] == '0' { '1' } else { '0' };
        chars.into_iter().collect::<String>()
    };
    let dot = token.find('.').unwrap();
    let forged = [
        "garbage".to_owned(),
        "deadbeef.00".to_owned(),
        flip(&token, 0),               // payload
        flip(&token, dot - 1),         // payload
        flip(&token, token.len() - 1), // MAC
        token[..token.len() - 2].to_owned(),
        token.replace('.', ""),
        users_token.clone(), // another operation's token
    ];
    for bad in &forged {
        let msg = expect_err!(
            client
                .list_personal_access_tokens()
                .organization_id(a)
                .max_results(5)
                .next_token(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("NextToken"), "{msg}");
    }
    // Bound to the organization and to the arguments of the listing.
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(b)
            .next_token(&token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    let user = orgs[0].tokens.values().next().unwrap().user_id.clone();
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(a)
            .user_id(user)
            .next_token(&token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client
            .list_users()
            .organization_id(a)
            .next_token(&token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client
            .list_users()
            .organization_id(a)
            .filters(ListUsersFilters::builder().username_prefix("a").build())
            .next_token(&users_token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client.list_organizations().next_token(&token).send().await,
        is_invalid_parameter_exception,
        400
    );
    // The page size is not part of the binding: a client may change it between pages.
    client
        .list_users()
        .organization_id(a)
        .max_results(50)
        .next_token(&users_token)
        .send()
        .await
        .unwrap();
}

// === 3. Validation and not-found errors through the SDK ===

#[tokio::test]
async fn validation_errors_surface_as_invalid_parameter_exceptions() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);

    // Missing required members: the SDK sends the request anyway.
    let msg = expect_err!(
        client.describe_organization().send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(
        msg.contains("at 'organizationId' failed to satisfy constraint: Member must not be null"),
        "{msg}"
    );
    let msg = expect_err!(
        client.describe_user().organization_id(ORG).send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("'userId'"), "{msg}");
    let msg = expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("'personalAccessTokenId'"), "{msg}");
    let msg = expect_err!(
        client.list_personal_access_tokens().send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("'organizationId'"), "{msg}");

    // OrganizationId pattern (and length).
    for bad in [
        "m-XYZ",
        "m-0123456789ABCDEF0123456789ABCDEF",
        "x-0123456789abcdef0123456789abcdef",
        "m-0123456789abcdef0123456789abcdef0",
        "",
    ] {
        let msg = expect_err!(
            client.list_users().organization_id(bad).send().await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'organizationId'"), "{bad}: {msg}");
    }
    let msg = expect_err!(
        client.list_users().organization_id("m-XYZ").send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(
        msg.contains("Member must satisfy regular expression pattern: ^m-[0-9a-f]{32}$"),
        "{msg}"
    );

    // MaxResults 1..=100.
    for bad in [0, 101, 1000, -1] {
        let msg = expect_err!(
            client
                .list_users()
                .organization_id(ORG)
                .max_results(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'maxResults'"), "{bad}: {msg}");
        expect_err!(
            client.list_organizations().max_results(bad).send().await,
            is_invalid_parameter_exception,
            400
        );
        expect_err!(
            client
                .list_personal_access_tokens()
                .organization_id(ORG)
                .max_results(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
    }
    for good in [1, 100] {
        client
            .list_users()
            .organization_id(ORG)
            .max_results(good)
            .send()
            .await
            .unwrap();
    }

    // NextToken length 1..=1024.
    for bad in [String::new(), "a".repeat(1025)] {
        let msg = expect_err!(
            client
                .list_personal_access_tokens()
                .organization_id(ORG)
                .next_token(&bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'nextToken'"), "{msg}");
    }

    // PersonalAccessTokenId: 1..=64 of [a-zA-Z0-9_-].
    for bad in ["bad token!", "pat/1", "pât", "a".repeat(65).as_str()] {
        let msg = expect_err!(
            client
                .get_personal_access_token_metadata()
                .organization_id(ORG)
                .personal_access_token_id(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'personalAccessTokenId'"), "{bad}: {msg}");
        expect_err!(
            client
                .delete_personal_access_token()
                .organization_id(ORG)
                .personal_access_token_id(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
    }
    // At the limit the format is fine; the token just does not exist.
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .personal_access_token_id("a_-Z9".repeat(12) + "abcd")
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );

    // UserId and filters.
    expect_err!(
        client
            .describe_user()
            .organization_id(ORG)
            .user_id("has space")
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client
            .list_users()
            .organization_id(ORG)
            .filters(
                ListUsersFilters::builder()
                    .identity_provider_user_id_prefix("not-hex!")
                    .build()
            )
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    // Nothing was deleted by the refused deletions.
    assert!(server.sim.deleted().is_empty());
    assert_eq!(server.sim.world(), scenario_world());
}

#[tokio::test]
async fn missing_and_inactive_things_surface_as_their_sdk_variants() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);

    // Unknown organization, on every operation that takes one.
    let o = NO_SUCH_ORG;
    expect_err!(
        client
            .describe_organization()
            .organization_id(o)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client.list_users().organization_id(o).send().await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_user()
            .organization_id(o)
            .user_id(ALICE)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(o)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .delete_personal_access_token()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_identity_provider_configuration()
            .organization_id(o)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );

    // An organization that is not Active.
    let o = GONE;
    expect_err!(
        client.list_users().organization_id(o).send().await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .describe_user()
            .organization_id(o)
            .user_id(ALICE)
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(o)
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .delete_personal_access_token()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .describe_identity_provider_configuration()
            .organization_id(o)
            .send()
            .await,
        is_organization_state_exception,
        400
    );

    // Unknown users, tokens and configurations.
    expect_err!(
        client
            .describe_user()
            .organization_id(ORG)
            .user_id("nobody")
            .send()
            .await,
        is_entity_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_user()
            .organization_id(ORG)
            .user_id(GHOST)
            .send()
            .await,
        is_entity_not_found_exception,
        400
    );
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(ORG)
            .user_id(GHOST)
            .send()
            .await,
        is_entity_not_found_exception,
        400
    );
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .personal_access_token_id("pat-nope")
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_identity_provider_configuration()
            .organization_id(NOIDP)
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );
}

#[tokio::test]
async fn unknown_targets_and_unsigned_requests_over_raw_http() {
    let server = start_scenario(SCENARIO).await;
    let body = json!({});

    // Signed, unknown target.
    for target in [
        "WorkMailService.CreateUser",
        "WorkMailService.listorganizations",
        "SomeOtherService.ListOrganizations",
        "",
    ] {
        let headers = dummy_signed("us-east-1", target, Utc::now());
        let r = raw(
            server.addr,
            "POST",
            "/",
            &headers,
            body.to_string().as_bytes(),
        )
        .await;
        r.assert_error(400, "UnknownOperationException");
    }
    // No target header at all.
    let headers: Vec<_> = dummy_signed("us-east-1", "", Utc::now())
        .into_iter()
        .filter(|(k, _)| k != "X-Amz-Target")
        .collect();
    let r = raw(server.addr, "POST", "/", &headers, b"{}").await;
    r.assert_error(400, "UnknownOperationException");

    // Unsigned: refused before anything else, whatever the target.
    let calls_before = server.sim.calls();
    for target in [
        "WorkMailService.ListOrganizations",
        "WorkMailService.CreateUser",
    ] {
        let headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            ("X-Amz-Target".to_owned(), target.to_owned()),
        ];
        let r = raw(server.addr, "POST", "/", &headers, b"{}").await;
        r.assert_error(403, "UnrecognizedClientException");
    }
    // An Authorization header that is not SigV4 is no better.
    let headers = vec![
        (
            "X-Amz-Target".to_owned(),
            "WorkMailService.ListOrganizations".to_owned(),
        ),
        ("Authorization".to_owned(), "Bearer abc".to_owned()),
    ];
    let r = raw(server.addr, "POST", "/", &headers, b"{}").await;
    r.assert_error(403, "UnrecognizedClientException");
    let calls = server.sim.calls();
    assert_eq!(calls.refused, calls_before.refused + 3);
    assert_eq!(
        calls.count("ListOrganizations"),
        0,
        "refused calls are not served"
    );

    // The same request, signed, is served.
    let r = call(&server, "ListOrganizations", &json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["OrganizationSummaries"].as_array().unwrap().len(),
        4
    );
    assert_eq!(server.sim.calls().count("ListOrganizations"), 1);

    // The AWS JSON protocol is POST /.
    let headers = dummy_signed("us-east-1", "WorkMailService.ListOrganizations", Utc::now());
    let r = raw(server.addr, "GET", "/", &headers, b"").await;
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("UnknownOperationException")
    );
    assert!(r.status >= 400);
}

#[tokio::test]
async fn malformed_bodies_are_serialization_exceptions() {
    let server = start_scenario(SCENARIO).await;
    for body in [
        json!({"OrganizationId": ORG, "MaxResults": "10"}),
        json!({"OrganizationId": 7}),
        json!({"OrganizationId": ORG, "Filters": "State=ENABLED"}),
        json!([ORG]),
    ] {
        let r = call(&server, "ListUsers", &body).await;
        r.assert_error(400, "SerializationException");
    }
    let headers = dummy_signed("us-east-1", "WorkMailService.ListUsers", Utc::now());
    let r = raw(server.addr, "POST", "/", &headers, b"{\"OrganizationId\": ").await;
    r.assert_error(400, "SerializationException");
    // An empty body is an empty structure: here, a missing required member.
    let r = raw(server.addr, "POST", "/", &headers, b"").await;
    let msg = r.assert_error(400, "InvalidParameterException");
    assert!(msg.contains("'organizationId'"), "{msg}");
}

// === 4. Model-driven validation ===

/// One request that breaks one constraint of the model.
#[derive(Debug)]
struct Violation {
    op: &'static str,
    body: Value,
    /// The member as AWS names it in validation messages (`filters.usernamePrefix`).
    path: String,
    /// The start of the constraint's wording.
    constraint: String,
    /// The offending value, when the shape is sensitive (it must not be echoed).
    secret: Option<String>,
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

fn set_at(body: &mut Value, at: &[String], value: Option<Value>) {
    let (last, parents) = at.split_last().unwrap();
    let mut cur = body;
    for p in parents {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.clone())
            .or_insert_with(|| json!({}));
    }
    let obj = cur.as_object_mut().unwrap();
    match value {
        Some(v) => {
            obj.insert(last.clone(), v);
        }
        None => {
            obj.remove(last);
        }
    }
}

/// A string of the allowed length that the pattern refuses, if there is one.
fn pattern_breaker(pattern: &str, min: usize, max: usize) -> Option<String> {
    let re = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
    let len = min.max(1).min(max);
    ['!', ' ', '#', '~', 'Z', 'é', '*', '\u{7f}']
        .iter()
        .map(|c| c.to_string().repeat(len))
        .find(|s| !re.is_match(s))
}

#[allow(clippy::too_many_arguments)]
fn collect_violations(
    model: &Value,
    op: &'static str,
    shape_name: &str,
    base: &Value,
    at: &[String],
    path: &str,
    out: &mut Vec<Violation>,
    unbreakable: &mut Vec<String>,
) {
    let shape = &model["shapes"][shape_name];
    assert_eq!(shape["type"], "structure", "{shape_name}");
    let join = |m: &str| {
        if path.is_empty() {
            lower_first(m)
        } else {
            format!("{path}.{}", lower_first(m))
        }
    };
    for required in shape["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap();
        let mut body = base.clone();
        let mut where_ = at.to_vec();
        where_.push(name.to_owned());
        set_at(&mut body, &where_, None);
        out.push(Violation {
            op,
            body,
            path: join(name),
            constraint: "Member must not be null".into(),
            secret: None,
        });
    }
    for (name, member) in shape["members"].as_object().unwrap() {
        let target_name = member["shape"].as_str().unwrap();
        let target = &model["shapes"][target_name];
        let mut where_ = at.to_vec();
        where_.push(name.clone());
        let mpath = join(name);
        let sensitive = target["sensitive"].as_bool().unwrap_or(false);
        let mut push = |value: Value, constraint: String| {
            let mut body = base.clone();
            let secret = sensitive.then(|| value.as_str().unwrap_or_default().to_owned());
            set_at(&mut body, &where_, Some(value));
            out.push(Violation {
                op,
                body,
                path: mpath.clone(),
                constraint,
                secret,
            });
        };
        match target["type"].as_str().unwrap() {
            "string" => {
                let min = target["min"].as_u64();
                let max = target["max"].as_u64();
                if let Some(min) = min.filter(|m| *m > 0) {
                    push(
                        json!("a".repeat(min as usize - 1)),
                        format!("Member must have length greater than or equal to {min}"),
                    );
                }
                if let Some(max) = max {
                    push(
                        json!("a".repeat(max as usize + 1)),
                        format!("Member must have length less than or equal to {max}"),
                    );
                }
                if target["enum"].is_array() {
                    push(
                        json!("NOT_A_MEMBER"),
                        "Member must satisfy enum value set: [".into(),
                    );
                }
                if let Some(p) = target["pattern"].as_str() {
                    let lo = min.unwrap_or(0) as usize;
                    let hi = max.unwrap_or(64) as usize;
                    match pattern_breaker(p, lo, hi) {
                        Some(s) => push(
                            json!(s),
                            format!("Member must satisfy regular expression pattern: {p}"),
                        ),
                        None => unbreakable.push(format!("{op}.{mpath} ({target_name})")),
                    }
                }
            }
            "integer" | "long" => {
                if let Some(min) = target["min"].as_i64() {
                    push(
                        json!(min - 1),
                        format!("Member must have value greater than or equal to {min}"),
                    );
                }
                if let Some(max) = target["max"].as_i64() {
                    push(
                        json!(max + 1),
                        format!("Member must have value less than or equal to {max}"),
                    );
                }
            }
            "structure" => {
                collect_violations(
                    model,
                    op,
                    target_name,
                    base,
                    &where_,
                    &mpath,
                    out,
                    unbreakable,
                );
            }
            "boolean" | "timestamp" => {}
            other => panic!(
                "{op}: member {mpath} has a {other} shape this test does not know how to break"
            ),
        }
    }
}

#[tokio::test]
async fn every_model_constraint_of_every_operation_is_enforced() {
    let server = start_scenario(SCENARIO).await;
    let model: Value = serde_json::from_str(model::SERVICE_MODEL).unwrap();
    let valid_member = |name: &str| -> Value {
        match name {
            "OrganizationId" => json!(ORG),
            "UserId" => json!(ALICE),
            "PersonalAccessTokenId" => json!("pat-alice-2"),
            "MaxResults" => json!(100),
            "Filters" => json!({"State": "ENABLED"}),
            other => panic!("no valid value known for required member {other}"),
        }
    };

    let mut violations = Vec::new();
    let mut unbreakable = Vec::new();
    let mut bases = Vec::new();
    for op in OPERATIONS {
        let input = model["operations"][op]["input"]["shape"].as_str().unwrap();
        let shape = &model["shapes"][input];
        let mut base = json!({});
        for r in shape["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            base[r] = valid_member(r);
        }
        collect_violations(
            &model,
            op,
            input,
            &base,
            &[],
            "",
            &mut violations,
            &mut unbreakable,
        );
        // Every optional member the emulator can fill without state of its own.
        let mut full = base.clone();
        for name in shape["members"].as_object().unwrap().keys() {
            if full.get(name).is_none() && name != "NextToken" {
                full[name] = valid_member(name);
            }
        }
        bases.push((*op, base, full));
    }

    for v in &violations {
        let r = call(&server, v.op, &v.body).await;
        let msg = r.assert_error(400, "InvalidParameterException");
        let want = format!(
            "at '{}' failed to satisfy constraint: {}",
            v.path, v.constraint
        );
        assert!(
            msg.contains(&want),
            "{} {}: {msg:?} lacks {want:?}",
            v.op,
            v.body
        );
        assert!(msg.contains("validation error"), "{msg}");
        if let Some(secret) = &v.secret {
            assert!(
                !msg.contains(secret.as_str()),
                "sensitive value echoed: {msg}"
            );
            assert!(msg.contains("Value '***'"), "{msg}");
        }
    }
    // Only a pattern that matches everything cannot be broken.
    assert!(!unbreakable.is_empty());
    for u in &unbreakable {
        assert!(u.ends_with(".nextToken (NextToken)"), "{u}");
    }
    // Every operation had its constraints checked, nested ones included.
    for op in OPERATIONS {
        assert!(violations.iter().any(|v| v.op == *op), "{op}");
    }
    for path in [
        "filters.usernamePrefix",
        "filters.displayNamePrefix",
        "filters.primaryEmailPrefix",
        "filters.state",
        "filters.identityProviderUserIdPrefix",
    ] {
        assert!(violations.iter().any(|v| v.path == path), "{path}");
    }
    assert!(violations.len() >= 50, "{}", violations.len());
    assert!(
        server.sim.deleted().is_empty(),
        "no violating request was served"
    );

    // Valid requests pass validation (Delete last: it deletes).
    bases.sort_by_key(|(op, _, _)| *op == "DeletePersonalAccessToken");
    for (op, base, full) in &bases {
        for body in [base, full] {
            let r = call(&server, op, body).await;
            assert_eq!(r.status, 200, "{op} {body}: {r:?}");
        }
    }
}

// === 5. Throttling ===

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_after_the_retry_after_delay() {
    let server = start_scenario(SCENARIO).await;
    // One call per 200 ms, no burst: back-to-back calls are throttled, and a retry after
    // the 250 ms the emulator asks for finds a fresh token.
    server.sim.set_op_faults(
        "ListUsers",
        OpFaults {
            throttle_rate: Some(5.0),
            throttle_burst: Some(1.0),
            retry_after_ms: Some(250),
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(4));
    let started = Instant::now();
    for _ in 0..4 {
        let out = client
            .list_users()
            .organization_id(ORG)
            .send()
            .await
            .unwrap();
        assert_eq!(out.users().len(), 4);
    }
    let elapsed = started.elapsed();
    let calls = server.sim.calls();
    let retries = calls.retries("ListUsers");
    assert!(retries > 0, "{calls:?}");
    assert_eq!(calls.count("ListUsers"), 4 + retries, "{calls:?}");
    assert!(
        elapsed >= Duration::from_millis(250) * retries as u32,
        "the SDK honoured x-amz-retry-after: {elapsed:?} for {retries} retries"
    );
    // Other operations are not throttled.
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(server.sim.calls().retries("DescribeOrganization"), 0);
}

#[tokio::test]
async fn throttling_surfaces_when_the_sdk_may_not_retry() {
    let server = start_scenario(SCENARIO).await;
    server.sim.set_op_faults(
        "*",
        OpFaults {
            throttle_rate: Some(0.01),
            throttle_burst: Some(1.0),
            retry_after_ms: Some(250),
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(1));
    client.list_organizations().send().await.unwrap();
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(status_code(&err), (400, "ThrottlingException".to_owned()));
    assert_eq!(
        err.raw_response()
            .and_then(|r| r.headers().get("x-amz-retry-after")),
        Some("250")
    );
    let calls = server.sim.calls();
    assert_eq!(calls.count("ListOrganizations"), 2);
    assert_eq!(calls.retries("ListOrganizations"), 0);
    // The default applies to every operation, each with a bucket of its own.
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err).1, "ThrottlingException");
}

// === 6. Other faults ===

#[tokio::test]
async fn server_errors_are_retried_then_surface() {
    let server = start_scenario(SCENARIO).await;
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    server.sim.set_op_faults(
        "DescribeOrganization",
        OpFaults {
            internal_error_rate: 1.0,
            ..Default::default()
        },
    );
    server.sim.set_op_faults(
        "ListOrganizations",
        OpFaults {
            unavailable_rate: 1.0,
            ..Default::default()
        },
    );
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), (500, "InternalFailure".to_owned()));
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(status_code(&err), (503, "ServiceUnavailable".to_owned()));
    let calls = server.sim.calls();
    assert_eq!(calls.count("DescribeOrganization"), 3, "{calls:?}");
    assert_eq!(calls.retries("DescribeOrganization"), 2);
    assert_eq!(calls.count("ListOrganizations"), 3);
    assert_eq!(calls.retries("ListOrganizations"), 2);

    server.sim.set_faults(Faults::default());
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    client.list_organizations().send().await.unwrap();
}

#[tokio::test]
async fn a_failing_page_fails_the_listing_and_can_be_resumed() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let org = active_orgs(&world)[0];
    let all: Vec<String> = org.tokens.keys().cloned().collect();
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            fail_pages: vec![3],
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    let results: Vec<Result<PersonalAccessTokenSummary, _>> = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    assert_eq!(results.len(), 11, "two good pages, then the error");
    let good: Vec<String> = results[..10]
        .iter()
        .map(|r| {
            r.as_ref()
                .unwrap()
                .personal_access_token_id()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(good, all[..10]);
    let err = results[10].as_ref().unwrap_err();
    assert_eq!(status_code(err), (500, "InternalFailure".to_owned()));
    let calls = server.sim.calls();
    assert_eq!(
        calls.count("ListPersonalAccessTokens"),
        2 + 3,
        "page 3 tried 3 times"
    );

    // Page by page: the token of page 2 still works once the fault is gone.
    let p1 = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .send()
        .await
        .unwrap();
    let p2 = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .set_next_token(p1.next_token().map(str::to_owned))
        .send()
        .await
        .unwrap();
    let p3 = || {
        client
            .list_personal_access_tokens()
            .organization_id(&org.id)
            .max_results(5)
            .set_next_token(p2.next_token().map(str::to_owned))
            .send()
    };
    assert_eq!(status_code(&p3().await.unwrap_err()).1, "InternalFailure");
    server.sim.set_faults(Faults::default());
    let p3 = p3().await.unwrap();
    assert_eq!(token_ids(p3.personal_access_token_summaries()), all[10..15]);
}

#[tokio::test]
async fn truncated_and_malformed_bodies_are_errors_not_panics() {
    let server = start_scenario(SCENARIO).await;
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    server.sim.set_op_faults(
        "DescribeOrganization",
        OpFaults {
            truncated_rate: 1.0,
            ..Default::default()
        },
    );
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            malformed_rate: 1.0,
            ..Default::default()
        },
    );
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    // A 200 whose body does not parse: an error with no modeled code, not retried.
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(200));
    assert_eq!(status_code(&err).1, "", "{err:?}");
    let err = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(200));
    let items: Vec<Result<PersonalAccessTokenSummary, _>> = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
    let calls = server.sim.calls();
    assert_eq!(calls.count("DescribeOrganization"), 1, "{calls:?}");
    assert_eq!(calls.count("ListPersonalAccessTokens"), 2, "{calls:?}");

    // What went over the wire.
    let r = call(
        &server,
        "DescribeOrganization",
        &json!({"OrganizationId": ORG}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with('{') && serde_json::from_str::<Value>(&r.body).is_err());
    let r = call(
        &server,
        "ListPersonalAccessTokens",
        &json!({"OrganizationId": ORG}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.body.starts_with('{'));
}

#[tokio::test]
async fn a_repeated_next_token_stops_the_sdk_paginator_silently() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let org = active_orgs(&world)[0];
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            repeat_next_token: true,
            ..Default::default()
        },
    );
    let client = sdk_client(&server);
    // Page 1 answers a fresh token T; page 2 (sent T) answers T again. The SDK paginator
    // treats a repeated token as the end (`stop_on_duplicate_token`, on by default): the
    // listing ends after two pages, without an error — a short listing a caller cannot
    // tell from a complete one.
    let items: Vec<PersonalAccessTokenSummary> = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    let all: Vec<String> = org.tokens.keys().cloned().collect();
    assert_eq!(token_ids(&items), all[..10]);
    assert!(items.len() < all.len());
    assert_eq!(server.sim.calls().count("ListPersonalAccessTokens"), 2);
}

#[tokio::test]
async fn access_denied_is_not_retried() {
    let server = start_scenario(SCENARIO).await;
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            access_denied: true,
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    let err = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), (400, "AccessDeniedException".to_owned()));
    assert!(
        err.as_service_error()
            .and_then(|e| e.message())
            .unwrap_or_default()
            .contains("workmail:ListPersonalAccessTokens")
    );
    assert_eq!(server.sim.calls().count("ListPersonalAccessTokens"), 1);
    client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn latency_is_added_and_a_stall_times_the_client_out() {
    let server = start_scenario(SCENARIO).await;
    server.sim.set_op_faults(
        "ListOrganizations",
        OpFaults {
            latency_ms: 150,
            ..Default::default()
        },
    );
    server.sim.set_op_faults(
        "DescribeOrganization",
        OpFaults {
            stall_rate: 1.0,
            stall_ms: Some(3_000),
            ..Default::default()
        },
    );
    let base = isolated(&server, RetryConfig::standard().with_max_attempts(1));
    let client = Client::from_conf(
        base.config()
            .to_builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build(),
    );
    let started = Instant::now();
    client.list_organizations().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    let started = Instant::now();
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(2_900));
}

// === 7. Signatures ===

fn emulator_credentials(secret: &str) -> SimConfig {
    SimConfig {
        credentials: HashMap::from([("AKIDEMULATOR".to_owned(), secret.to_owned())]),
        ..Default::default()
    }
}

#[tokio::test]
async fn configured_credentials_verify_the_sdk_signature() {
    let server = start_sim(scenario_world(), emulator_credentials("emulator-secret")).await;
    let client = sdk_client(&server);
    client.list_organizations().send().await.unwrap();
    client
        .describe_user()
        .organization_id(ORG)
        .user_id("alice@acme.example.com")
        .send()
        .await
        .unwrap();
    let users = client
        .list_users()
        .organization_id(ORG)
        .filters(
            ListUsersFilters::builder()
                .display_name_prefix("Alice Å")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        users.users().len(),
        1,
        "a UTF-8 body is signed and verified"
    );
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-bob-1")
        .send()
        .await
        .unwrap();
    assert_eq!(server.sim.calls().refused, 0);

    // Another secret for the same key: the signature does not match.
    let server = start_sim(scenario_world(), emulator_credentials("another-secret")).await;
    let client = sdk_client(&server);
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "InvalidSignatureException".to_owned())
    );
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 1, "not retried");
    assert_eq!(calls.total(), 0);

    // An access key the emulator does not know.
    let config = SimConfig {
        credentials: HashMap::from([("AKIDSOMEONEELSE".to_owned(), "x".to_owned())]),
        ..Default::default()
    };
    let server = start_sim(scenario_world(), config).await;
    let err = sdk_client(&server)
        .list_organizations()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "UnrecognizedClientException".to_owned())
    );
}

#[tokio::test]
async fn a_signature_for_another_region_is_refused() {
    let server = start_scenario(SCENARIO).await;
    let sdk = ClientFactory::static_sdk_config(&server.endpoint(), "eu-west-1");
    let client = Client::from_conf(aws_sdk_workmail::config::Builder::from(&sdk).build());
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "InvalidSignatureException".to_owned())
    );
    let msg = err
        .as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default();
    assert!(msg.contains("us-east-1"), "{msg}");

    // An emulator for eu-west-1 takes it, and says so in its ARNs.
    let config = SimConfig {
        region: "eu-west-1".into(),
        ..Default::default()
    };
    let server = start_sim(scenario_world(), config).await;
    let client = sdk_client(&server);
    let d = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert!(d.arn().unwrap().starts_with("arn:aws:workmail:eu-west-1:"));
}

#[tokio::test]
async fn clock_skew_is_refused_then_corrected_by_the_sdk() {
    let server = start_sim(scenario_world(), emulator_credentials("emulator-secret")).await;
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: 3600 })
        .unwrap();

    // Without retries, the skewed request is refused.
    let once = sdk_client_with(&server, RetryConfig::standard().with_max_attempts(1));
    let err = once.list_organizations().send().await.unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "InvalidSignatureException".to_owned())
    );
    let msg = err
        .as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default();
    assert!(msg.contains("Signature expired"), "{msg}");
    assert_eq!(server.sim.calls().refused, 1);

    // With retries, the SDK (aws-runtime's service clock skew interceptor) reads the
    // emulator's `Date` header off the refusal, sees more than 4 minutes of skew, classifies
    // InvalidSignatureException as retryable and signs the retry with the corrected clock.
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    let out = client.list_organizations().send().await.unwrap();
    assert_eq!(out.organization_summaries().len(), 4);
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 2, "{calls:?}");
    assert_eq!(calls.count("ListOrganizations"), 1);
    assert_eq!(calls.retries("ListOrganizations"), 1, "served on attempt 2");
    // The client keeps the skew it learnt: its next call is signed right the first time.
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 2);
    assert_eq!(calls.retries("DescribeOrganization"), 0);

    // Skew within the 15 minutes SigV4 allows is no problem at all.
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: -600 })
        .unwrap();
    let fresh = sdk_client_with(&server, RetryConfig::standard().with_max_attempts(1));
    fresh.list_organizations().send().await.unwrap();
}

#[tokio::test]
async fn hand_signed_requests_sign_the_host_port_and_the_body() {
    let server = start_sim(scenario_world(), emulator_credentials("emulator-secret")).await;
    let date = amz_date(Utc::now());
    let host = server.addr.to_string();
    let signer = Signer {
        access_key: "AKIDEMULATOR",
        secret: "emulator-secret",
        region: "us-east-1",
        host: &host,
        target: "WorkMailService.ListOrganizations",
        date: &date,
        content_sha256: None,
    };
    let body: &[u8] = br#"{"MaxResults":2}"#;
    let other: &[u8] = br#"{"MaxResults":3}"#;
    let send = |headers: Vec<(String, String)>, body: &'static [u8]| {
        let addr = server.addr;
        async move { raw(addr, "POST", "/", &headers, body).await }
    };
    let r = send(signer.headers(body), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["OrganizationSummaries"].as_array().unwrap().len(),
        2
    );

    // The same signature over another body.
    send(signer.headers(body), other)
        .await
        .assert_error(403, "InvalidSignatureException");
    // Signed for the host without its port.
    let no_port = Signer {
        host: "127.0.0.1",
        ..signer
    };
    send(no_port.headers(body), body)
        .await
        .assert_error(403, "InvalidSignatureException");
    // With the wrong secret.
    let wrong = Signer {
        secret: "guess",
        host: &host,
        ..no_port
    };
    send(wrong.headers(body), body)
        .await
        .assert_error(403, "InvalidSignatureException");
    // A signed x-amz-content-sha256 header is just a header: the payload hash is that of
    // the body received, so a header vouching for another body does not make it pass.
    let vouching = Signer {
        secret: "emulator-secret",
        content_sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))),
        ..wrong
    };
    let r = send(vouching.headers(body), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    send(vouching.headers(body), other)
        .await
        .assert_error(403, "InvalidSignatureException");
    assert_eq!(server.sim.calls().refused, 4);
}

#[tokio::test]
async fn dates_and_scopes_of_unverified_signatures_are_still_checked() {
    // No credentials configured: any key and signature, but the scope and date must hold.
    let server = start_scenario(SCENARIO).await;
    let target = "WorkMailService.ListOrganizations";
    let ok = dummy_signed(
        "us-east-1",
        target,
        Utc::now() - chrono::Duration::minutes(10),
    );
    let r = raw(server.addr, "POST", "/", &ok, b"{}").await;
    assert_eq!(r.status, 200, "ten minutes off is within SigV4's fifteen");

    let stale = dummy_signed(
        "us-east-1",
        target,
        Utc::now() - chrono::Duration::minutes(20),
    );
    let msg = raw(server.addr, "POST", "/", &stale, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");
    assert!(msg.contains("Signature expired"), "{msg}");

    let future = dummy_signed(
        "us-east-1",
        target,
        Utc::now() + chrono::Duration::minutes(20),
    );
    raw(server.addr, "POST", "/", &future, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");

    let region = dummy_signed("eu-west-1", target, Utc::now());
    raw(server.addr, "POST", "/", &region, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");

    let service: Vec<_> = dummy_signed("us-east-1", target, Utc::now())
        .into_iter()
        .map(|(k, v)| (k, v.replace("/workmail/", "/s3/")))
        .collect();
    raw(server.addr, "POST", "/", &service, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");

    let no_date: Vec<_> = dummy_signed("us-east-1", target, Utc::now())
        .into_iter()
        .filter(|(k, _)| k != "X-Amz-Date")
        .collect();
    raw(server.addr, "POST", "/", &no_date, b"{}")
        .await
        .assert_error(403, "IncompleteSignatureException");

    // A credential scope dated another day than X-Amz-Date.
    let mut other_day = dummy_signed("us-east-1", target, Utc::now());
    let yesterday = amz_date(Utc::now() - chrono::Duration::days(1));
    for (k, v) in &mut other_day {
        if k == "Authorization" {
            let today = &amz_date(Utc::now())[..8];
            *v = v.replace(&format!("/{today}/"), &format!("/{}/", &yesterday[..8]));
        }
    }
    raw(server.addr, "POST", "/", &other_day, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");
    assert_eq!(server.sim.calls().refused, 6);
}

// === 8. Deterministic generation ===

#[tokio::test]
async fn the_same_seed_makes_the_same_world() {
    let a = world::generate(&GenSpec::new(7, now()));
    let b = world::generate(&GenSpec::new(7, now()));
    let c = world::generate(&GenSpec::new(8, now()));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let ids = |w: &World| -> BTreeSet<String> {
        w.orgs
            .values()
            .flat_map(|o| o.tokens.keys().cloned())
            .collect()
    };
    assert!(
        ids(&a).is_disjoint(&ids(&c)),
        "a different seed, different tokens"
    );
    assert!(
        a.orgs
            .keys()
            .collect::<BTreeSet<_>>()
            .is_disjoint(&c.orgs.keys().collect()),
        "and different organizations"
    );

    // Two emulators from the same seed answer the SDK identically.
    let mut listings = Vec::new();
    for w in [a.clone(), b] {
        let server = start_sim(w, SimConfig::default()).await;
        let client = sdk_client(&server);
        let mut all = Vec::new();
        for org in active_orgs(&a) {
            let items: Vec<PersonalAccessTokenSummary> = client
                .list_personal_access_tokens()
                .organization_id(&org.id)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap();
            all.extend(items);
        }
        listings.push(all);
    }
    assert!(!listings[0].is_empty());
    assert_eq!(listings[0], listings[1]);
}

/// Checks every category issue 2 asks of the generator, against `now`.
fn assert_covers_every_category(w: &World, now: DateTime<Utc>) {
    let day = chrono::Duration::days(1);
    let not_active: Vec<&Org> = w.orgs.values().filter(|o| o.state != "Active").collect();
    assert_eq!(not_active.len(), 1, "one organization not Active");
    let active = active_orgs(w);
    let pat = |o: &Org| o.identity_provider.as_ref().map(|p| p.pat_status.clone());
    let statuses: BTreeSet<Option<String>> = active.iter().map(|o| pat(o)).collect();
    assert!(statuses.contains(&Some("ACTIVE".into())), "{statuses:?}");
    assert!(statuses.contains(&Some("INACTIVE".into())), "{statuses:?}");
    assert!(
        statuses.contains(&None),
        "an organization without configuration"
    );

    let users: Vec<_> = active.iter().flat_map(|o| o.users.values()).collect();
    for state in ["ENABLED", "DISABLED", "DELETED"] {
        assert!(users.iter().any(|u| u.state == state), "users {state}");
    }
    for u in &users {
        assert_eq!(u.disabled_date.is_some(), u.state != "ENABLED", "{u:?}");
    }
    let tokens: Vec<_> = active
        .iter()
        .flat_map(|o| o.tokens.values().map(move |t| (o, t)))
        .collect();
    assert!(
        tokens
            .iter()
            .any(|(o, t)| !o.users.contains_key(&t.user_id)),
        "owners missing from the directory"
    );
    let expiring = |lo: chrono::Duration, hi: chrono::Duration| {
        tokens
            .iter()
            .any(|(_, t)| t.expires - now >= lo && t.expires - now < hi)
    };
    let far = chrono::Duration::days(100_000);
    assert!(expiring(-far, chrono::Duration::zero()), "expired");
    assert!(
        expiring(chrono::Duration::zero(), day),
        "expiring within a day"
    );
    assert!(expiring(day, day * 7), "within a week");
    assert!(expiring(day * 7, day * 30), "within a month");
    assert!(expiring(day * 31, far), "long-lived");
    assert!(
        tokens.iter().any(|(_, t)| t.last_used.is_none()),
        "never used"
    );
    let idle = |lo: i64, hi: i64| {
        tokens.iter().any(|(_, t)| {
            t.last_used
                .is_some_and(|u| now - u >= day * lo as i32 && now - u < day * hi as i32)
        })
    };
    assert!(idle(0, 1), "used today");
    assert!(idle(30, 90), "unused 30 days");
    assert!(idle(90, 180), "unused 90 days");
    assert!(idle(180, 100_000), "unused 180+ days");
    for (_, t) in &tokens {
        assert!((1..=10).contains(&t.scopes.len()), "{t:?}");
        assert!(t.created <= now && t.created < t.expires, "{t:?}");
        if let Some(u) = t.last_used {
            assert!(u >= t.created && u <= now, "{t:?}");
        }
    }
    assert!(
        tokens.iter().any(|(_, t)| t.name.contains(' ')),
        "names with spaces"
    );
    assert!(
        tokens.iter().any(|(_, t)| !t.name.is_ascii()),
        "unicode names"
    );
    assert!(tokens.iter().any(|(_, t)| t.scopes.len() == 1));
    assert!(tokens.iter().any(|(_, t)| t.scopes.len() >= 5));
}

#[tokio::test]
async fn generated_worlds_cover_every_category() {
    let specs = [
        GenSpec::new(7, now()),
        GenSpec {
            users_per_org: 200,
            ..GenSpec::new(7, now())
        },
        GenSpec {
            users_per_org: 20,
            ..GenSpec::new(12345, now())
        },
    ];
    for spec in &specs {
        assert_covers_every_category(&world::generate(spec), spec.now);
    }

    // As the SDK sees it: the configurations and the organization that is not Active.
    let w = world::generate(&specs[0]);
    let server = start_sim(w.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    for org in w.orgs.values() {
        let r = client
            .describe_identity_provider_configuration()
            .organization_id(&org.id)
            .send()
            .await;
        match (&org.state[..], &org.identity_provider) {
            ("Active", Some(p)) => {
                let c = r.unwrap();
                let got = c.personal_access_token_configuration().unwrap();
                assert_eq!(got.status().as_str(), p.pat_status);
            }
            ("Active", None) => {
                expect_err!(r, is_resource_not_found_exception, 400);
            }
            _ => {
                expect_err!(r, is_organization_state_exception, 400);
            }
        }
    }
}

#[tokio::test]
async fn generated_times_follow_now() {
    let shift = chrono::Duration::days(10) + chrono::Duration::seconds(17);
    let a = world::generate(&GenSpec::new(3, now()));
    let b = world::generate(&GenSpec::new(3, now() + shift));
    assert_eq!(a.orgs.len(), b.orgs.len());
    for (oa, ob) in a.orgs.values().zip(b.orgs.values()) {
        assert_eq!(oa.id, ob.id);
        assert_eq!(ob.completed - oa.completed, shift);
        for (ua, ub) in oa.users.values().zip(ob.users.values()) {
            assert_eq!(ua.id, ub.id);
            assert_eq!(
                ub.enabled_date.zip(ua.enabled_date).map(|(b, a)| b - a),
                Some(shift)
            );
            assert_eq!(ub.disabled_date.map(|d| d - shift), ua.disabled_date);
        }
        for (ta, tb) in oa.tokens.values().zip(ob.tokens.values()) {
            assert_eq!(ta.id, tb.id);
            assert_eq!(tb.created - ta.created, shift);
            assert_eq!(tb.expires - ta.expires, shift);
            assert_eq!(tb.last_used.map(|d| d - shift), ta.last_used);
        }
    }
    assert_covers_every_category(&b, now() + shift);
}

// === 9. Introspection over HTTP ===

#[tokio::test]
async fn introspection_over_http() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    client.list_organizations().send().await.unwrap();
    client.list_organizations().send().await.unwrap();
    client
        .describe_user()
        .organization_id(ORG)
        .user_id(ALICE)
        .send()
        .await
        .unwrap();
    let unsigned = raw(server.addr, "POST", "/", &[], b"{}").await;
    assert_eq!(unsigned.status, 403);

    let r = get(&server, "/_sim/calls").await;
    assert_eq!(r.status, 200);
    let calls = r.json();
    assert_eq!(calls["by_operation"]["ListOrganizations"], 2, "{calls}");
    assert_eq!(calls["by_operation"]["DescribeUser"], 1, "{calls}");
    assert_eq!(calls["by_attempt"]["ListOrganizations"]["1"], 2, "{calls}");
    assert_eq!(calls["refused"], 1, "{calls}");
    assert_eq!(
        serde_json::from_value::<workmail_pat_monitor::sim::Calls>(calls).unwrap(),
        server.sim.calls()
    );
    assert_eq!(
        raw(server.addr, "DELETE", "/_sim/calls", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        get(&server, "/_sim/calls").await.json()["by_operation"],
        json!({})
    );

    // Deleted tokens.
    assert_eq!(get(&server, "/_sim/deleted").await.json(), json!([]));
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-ghost-1")
        .send()
        .await
        .unwrap();
    let deleted = get(&server, "/_sim/deleted").await.json();
    assert_eq!(deleted.as_array().unwrap().len(), 1, "{deleted}");
    assert_eq!(deleted[0]["organization_id"], ORG);
    assert_eq!(deleted[0]["token_id"], "pat-ghost-1");
    assert_eq!(deleted[0]["user_id"], GHOST);
    let at = t(deleted[0]["at"].as_str().unwrap());
    assert!((Utc::now() - at).num_seconds().abs() < 60, "{at}");

    // Faults, set at run time.
    let faults = json!({"operations": {"ListUsers": {"access_denied": true}}});
    let r = send_json(&server, "PUT", "/_sim/faults", &faults).await;
    assert_eq!(r.status, 200, "{r:?}");
    let err = client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err).1, "AccessDeniedException");
    let got = get(&server, "/_sim/faults").await.json();
    assert_eq!(got["operations"]["ListUsers"]["access_denied"], true);
    assert!(server.sim.faults().for_op("ListUsers").access_denied);
    let r = send_json(&server, "PUT", "/_sim/faults", &json!({"bogus": 1})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid faults")
    );
    assert!(
        server.sim.faults().for_op("ListUsers").access_denied,
        "unchanged"
    );
    let r = send_json(&server, "PUT", "/_sim/faults", &json!({})).await;
    assert_eq!(r.status, 200);
    client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();

    // The world summary.
    let w = get(&server, "/_sim/world").await.json();
    assert_eq!(w["region"], "us-east-1");
    let orgs = w["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 4);
    assert_eq!(orgs[0]["id"], ORG);
    assert_eq!(orgs[0]["tokens"], 3);
    assert_eq!(orgs[0]["pat_status"], "ACTIVE");

    // Paths and methods that do not exist.
    assert_eq!(get(&server, "/_sim/nothing").await.status, 404);
    assert_eq!(
        raw(server.addr, "POST", "/_sim/calls", &[], b"")
            .await
            .status,
        405
    );
    assert_eq!(
        raw(server.addr, "GET", "/_sim/mutate", &[], b"")
            .await
            .status,
        405
    );
}

#[tokio::test]
async fn mutations_over_http_are_seen_by_the_sdk() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let mutate = |m: Value| {
        let server = &server;
        async move { send_json(server, "POST", "/_sim/mutate", &m).await }
    };
    let metadata = |id: &'static str| {
        let client = client.clone();
        async move {
            client
                .get_personal_access_token_metadata()
                .organization_id(ORG)
                .personal_access_token_id(id)
                .send()
                .await
        }
    };

    // mark_used, at a given time and at the emulator's clock.
    let r = mutate(json!({"action": "mark_used", "organization_id": ORG,
        "token_id": "pat-alice-2", "at": "2026-11-01T11:00:00.250Z"}))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = metadata("pat-alice-2").await.unwrap();
    assert_eq!(
        opt_ms(m.date_last_used()),
        Some(t("2026-11-01T11:00:00.250Z").timestamp_millis())
    );
    let r = mutate(json!({"action": "mark_used", "organization_id": ORG, "token_id": "pat-bob-1"}))
        .await;
    assert_eq!(r.status, 200);
    let used = metadata("pat-bob-1").await.unwrap();
    let used = ms(used.date_last_used().unwrap());
    assert!((Utc::now().timestamp_millis() - used).abs() < 60_000);

    // set_user_state, both ways.
    let r = mutate(json!({"action": "set_user_state", "organization_id": ORG,
        "user_id": DAVE, "state": "DISABLED"}))
    .await;
    assert_eq!(r.status, 200);
    let dave = client
        .describe_user()
        .organization_id(ORG)
        .user_id(DAVE)
        .send()
        .await
        .unwrap();
    assert_eq!(dave.state(), Some(&EntityState::Disabled));
    assert!(dave.disabled_date().is_some());
    mutate(json!({"action": "set_user_state", "organization_id": ORG,
        "user_id": DAVE, "state": "ENABLED"}))
    .await;
    let dave = client
        .describe_user()
        .organization_id(ORG)
        .user_id(DAVE)
        .send()
        .await
        .unwrap();
    assert_eq!(dave.state(), Some(&EntityState::Enabled));
    assert_eq!(dave.disabled_date(), None);

    // add_token.
    let r = mutate(json!({"action": "add_token", "organization_id": ORG,
        "token_id": "pat-dave-1", "user_id": DAVE, "name": "Évolution (maison)",
        "created": "2026-10-01T00:00:00Z", "expires": "2027-10-01T00:00:00.125Z",
        "scopes": ["IMAP", "EWS.Mail.Read"]}))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = metadata("pat-dave-1").await.unwrap();
    assert_eq!(m.user_id(), Some(DAVE));
    assert_eq!(m.name(), Some("Évolution (maison)"));
    assert_eq!(m.date_last_used(), None);
    assert_eq!(
        opt_ms(m.expires_time()),
        Some(t("2027-10-01T00:00:00.125Z").timestamp_millis())
    );
    let daves = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .user_id(DAVE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        token_ids(daves.personal_access_token_summaries()),
        ["pat-dave-1"]
    );

    // Refused mutations.
    let r =
        mutate(json!({"action": "mark_used", "organization_id": ORG, "token_id": "nope"})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    let r = mutate(json!({"action": "explode"})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid mutation")
    );

    // From the library: a token removed behind the API's back, an organization leaving
    // the Active state mid-scan.
    server
        .sim
        .mutate(Mutation::RemoveToken {
            organization_id: ORG.into(),
            token_id: "pat-dave-1".into(),
        })
        .unwrap();
    expect_err!(
        metadata("pat-dave-1").await,
        is_resource_not_found_exception,
        400
    );
    assert!(
        server.sim.deleted().is_empty(),
        "not deleted through the API"
    );
    server
        .sim
        .mutate(Mutation::SetExpiry {
            organization_id: ORG.into(),
            token_id: "pat-alice-1".into(),
            expires: now() + chrono::Duration::days(400),
        })
        .unwrap();
    let m = metadata("pat-alice-1").await.unwrap();
    assert_eq!(
        opt_ms(m.expires_time()),
        Some((now() + chrono::Duration::days(400)).timestamp_millis())
    );
    server
        .sim
        .mutate(Mutation::SetOrganizationState {
            organization_id: ORG.into(),
            state: "Deleting".into(),
        })
        .unwrap();
    expect_err!(
        client.list_users().organization_id(ORG).send().await,
        is_organization_state_exception,
        400
    );
}
