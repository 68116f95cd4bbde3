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
const SCENARIO: &str = include_str!("../../fixtures/sim.toml");

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

// The topics come after the helpers above: `expect_err!` must be defined before them.
mod constraints;
mod errors;
mod faults;
mod generation;
mod introspection;
mod operations;
mod paging;
mod signatures;
mod sts;
mod throttling;
