//! The WorkMail emulator: the slice of the WorkMail API this project uses, over the real
//! AWS JSON 1.1 protocol, with model-driven validation, SigV4 checks, fault injection and
//! introspection. Tests, benchmarks and the `demo` command all run against it.
//!
//! Introspection lives under `/_sim/`, which the AWS protocol (`POST /` only) never uses.

pub mod faults;
pub mod model;
pub mod mutate;
pub mod ops;
pub mod sigv4;
pub mod sts;
pub mod world;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Limited};
use hyper::Request;
use hyper::body::Incoming;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::httpd::{self, Resp};
pub use faults::{Faults, OpFaults};
use faults::{omit, roll};
pub use mutate::Mutation;
pub use ops::{Deleted, ErrorAnswer, OPERATIONS};
pub use sts::SimRole;
pub use world::{GenSpec, Scenario, World};

/// The largest request body the emulator reads.
const MAX_BODY: usize = 1 << 20;

/// How the emulator behaves, apart from its data.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The region requests must be signed for, where the organizations live.
    pub region: String,
    /// More regions the emulator answers for, as endpoints of regions without organizations
    /// (so that an organization asked for in the wrong region is not found there).
    pub other_regions: Vec<String>,
    /// Access key id → secret key. Empty: any credentials are accepted (scope still checked).
    /// Session credentials the emulator issued are always checked, whatever this holds.
    pub credentials: HashMap<String, String>,
    /// Role ARN → the role, for STS `AssumeRole`. Every other role is refused.
    pub roles: HashMap<String, SimRole>,
    /// Faults in force from the start.
    pub faults: Faults,
    /// Seeds the fault dice and the pagination-token key.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            other_regions: Vec::new(),
            credentials: HashMap::new(),
            roles: HashMap::new(),
            faults: Faults::default(),
            seed: 0,
        }
    }
}

/// Calls the emulator received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calls {
    /// Requests per operation (every attempt, including refused and faulted ones).
    pub by_operation: BTreeMap<String, u64>,
    /// Requests per operation and attempt number (from the SDK's `amz-sdk-request` header).
    pub by_attempt: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Requests refused for their credentials or signature.
    pub refused: u64,
}

impl Calls {
    /// Requests for `operation`.
    pub fn count(&self, operation: &str) -> u64 {
        self.by_operation.get(operation).copied().unwrap_or(0)
    }

    /// Requests for `operation` that were retries (attempt 2 or later).
    pub fn retries(&self, operation: &str) -> u64 {
        self.by_attempt.get(operation).map_or(0, |m| {
            m.iter().filter(|(a, _)| **a > 1).map(|(_, n)| n).sum()
        })
    }

    /// Requests of every operation.
    pub fn total(&self) -> u64 {
        self.by_operation.values().sum()
    }
}

/// The emulator: cheap to clone, shared by its server and by tests.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    region: String,
    /// The region first, then the other regions answered for.
    regions: Vec<String>,
    credentials: HashMap<String, String>,
    roles: Mutex<HashMap<String, SimRole>>,
    sessions: Mutex<sts::Sessions>,
    page_key: [u8; 32],
    world: Mutex<World>,
    faults: Mutex<Faults>,
    buckets: Mutex<HashMap<String, faults::Bucket>>,
    rng: Mutex<ChaCha8Rng>,
    calls: Mutex<Calls>,
    deleted: Mutex<Vec<Deleted>>,
    skew_secs: Mutex<i64>,
    request_seq: AtomicU64,
    triggers: Mutex<Vec<(String, u64, Mutation)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the emulator for the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running emulator server.
pub struct SimServer {
    /// The emulator, for introspection and mutation.
    pub sim: Sim,
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimServer {
    /// The endpoint URL to give an SDK client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Sim {
    /// An emulator holding `world`.
    pub fn new(world: World, config: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed_cafe);
        let mut page_key = [0u8; 32];
        rng.fill(&mut page_key);
        Self {
            inner: Arc::new(Inner {
                regions: std::iter::once(config.region.clone())
                    .chain(config.other_regions)
                    .collect(),
                region: config.region,
                credentials: config.credentials,
                roles: Mutex::new(config.roles),
                sessions: Mutex::new(sts::Sessions::new(config.seed)),
                page_key,
                world: Mutex::new(world),
                faults: Mutex::new(config.faults),
                buckets: Mutex::new(HashMap::new()),
                rng: Mutex::new(rng),
                calls: Mutex::new(Calls::default()),
                deleted: Mutex::new(Vec::new()),
                skew_secs: Mutex::new(0),
                request_seq: AtomicU64::new(0),
                triggers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Serves on `addr` (port 0 picks a free one) until the returned server is stopped.
    pub async fn start(self, addr: SocketAddr) -> std::io::Result<SimServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let sim = self.clone();
        let token = shutdown.clone();
        let opts = httpd::ServeOptions {
            max_connections: 512,
            drain_timeout: Duration::from_secs(1),
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            httpd::serve(listener, opts, token, move |req| {
                let sim = sim.clone();
                async move { sim.handle(req).await }
            })
            .await;
        });
        Ok(SimServer {
            sim: self,
            addr,
            shutdown,
            task: Some(task),
        })
    }

    /// The region requests must be signed for.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// A copy of the current world.
    pub fn world(&self) -> World {
        lock(&self.inner.world).clone()
    }

    /// Runs `f` on the world (for changes no [`Mutation`] covers).
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut lock(&self.inner.world))
    }

    /// The calls received so far.
    pub fn calls(&self) -> Calls {
        lock(&self.inner.calls).clone()
    }

    /// Forgets the calls received so far.
    pub fn reset_calls(&self) {
        *lock(&self.inner.calls) = Calls::default();
    }

    /// The tokens deleted through the API, in order.
    pub fn deleted(&self) -> Vec<Deleted> {
        lock(&self.inner.deleted).clone()
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.inner.faults) = faults;
        lock(&self.inner.buckets).clear();
    }

    /// Replaces one operation's faults (`"*"` for the default).
    pub fn set_op_faults(&self, operation: &str, op: OpFaults) {
        let mut f = lock(&self.inner.faults);
        if operation == "*" {
            f.default = op;
        } else {
            f.operations.insert(operation.to_owned(), op);
        }
        lock(&self.inner.buckets).remove(operation);
    }

    /// The roles `AssumeRole` grants.
    pub fn roles(&self) -> HashMap<String, SimRole> {
        lock(&self.inner.roles).clone()
    }

    /// Grants (or, with `None`, revokes) a role from now on. Credentials already issued
    /// for it keep working until they expire, as with IAM.
    pub fn set_role(&self, arn: &str, role: Option<SimRole>) {
        let mut roles = lock(&self.inner.roles);
        match role {
            Some(r) => roles.insert(arn.to_owned(), r),
            None => roles.remove(arn),
        };
    }

    /// Revokes the active sessions of a role, as IAM's "Revoke active sessions" does: calls
    /// with credentials issued before now are denied (`AccessDeniedException`). Combine with
    /// [`Sim::set_role`] to refuse new ones too. Returns how many sessions were revoked.
    pub fn revoke_sessions(&self, role_arn: &str) -> usize {
        lock(&self.inner.sessions).revoke(role_arn)
    }

    /// The session credentials issued by `AssumeRole` that are still remembered.
    pub fn sessions_issued(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// The emulator's clock: the real one plus the configured skew.
    pub fn now(&self) -> DateTime<Utc> {
        let skew = chrono::Duration::try_seconds(*lock(&self.inner.skew_secs)).unwrap_or_default();
        Utc::now().checked_add_signed(skew).unwrap_or_else(Utc::now)
    }

    async fn handle(&self, req: Request<Incoming>) -> Resp {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return self.error(&ErrorAnswer::client(
                    "SerializationException",
                    "request body too large or unreadable",
                ));
            }
        };
        if parts.uri.path().starts_with("/_sim/") {
            return self.introspect(&parts.method, parts.uri.path(), &body);
        }
        self.api(&parts, &body).await
    }

    async fn api(&self, parts: &http::request::Parts, body: &Bytes) -> Resp {
        if parts.method != http::Method::POST || parts.uri.path() != "/" {
            return self.error(&ErrorAnswer {
                status: 404,
                code: "UnknownOperationException",
                message: "The AWS JSON 1.1 protocol uses POST /".into(),
            });
        }
        let now = self.now();
        let signed = sigv4::Signed {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            body,
        };
        // The query protocol (STS) sends a form; the JSON protocol (WorkMail) sends JSON.
        let form = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let service = if form { "sts" } else { "workmail" };
        let checked = self.authenticate(&signed, service, now);
        let (signed_for, caller) = match checked {
            Ok(ok) => ok,
            Err(refusal) => {
                lock(&self.inner.calls).refused += 1;
                if form {
                    return self.sts_error(&sts::StsError::refused(&refusal));
                }
                return self.error(&ErrorAnswer {
                    status: refusal.kind.status(),
                    code: refusal.kind.code(),
                    message: refusal.message,
                });
            }
        };
        if form {
            return self.sts(&parts.headers, body, &caller, now);
        }
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let op = match target.strip_prefix("WorkMailService.") {
            Some(op) if OPERATIONS.contains(&op) => op,
            _ => {
                return self.error(&ErrorAnswer::client(
                    "UnknownOperationException",
                    format!("Unknown operation {target:?}"),
                ));
            }
        };
        self.record_call(op, &parts.headers);
        if caller.revoked {
            return self.error(&ErrorAnswer {
                status: 400,
                code: "AccessDeniedException",
                message: format!(
                    "User: {} is not authorized to perform: workmail:{op} with an explicit deny in an identity-based policy",
                    caller.arn
                ),
            });
        }

        let request: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return self.error(&ErrorAnswer::client(
                        "SerializationException",
                        format!("request body is not valid JSON: {e}"),
                    ));
                }
            }
        };
        // Faults may be scoped to organizations, so they apply once the body is read.
        let faults = self.faults().for_op(op).clone();
        let scoped_out = request["OrganizationId"]
            .as_str()
            .is_some_and(|org| !faults.applies_to(org));
        let faults = if scoped_out {
            OpFaults::default()
        } else {
            faults
        };
        if let Some(resp) = self.inject(op, &faults).await {
            return resp;
        }
        if let Err(invalid) = model::validate(op, &request) {
            let code = match invalid {
                model::Invalid::Serialization(_) => "SerializationException",
                model::Invalid::Constraints(_) => "InvalidParameterException",
            };
            return self.error(&ErrorAnswer::client(code, invalid.message()));
        }
        let result = {
            let mut world = lock(&self.inner.world);
            let mut deleted = lock(&self.inner.deleted);
            let ctx = ops::Ctx {
                region: &signed_for,
                page_key: &self.inner.page_key,
                faults: &faults,
                now,
                account: &caller.account,
            };
            if signed_for == self.inner.region {
                ops::handle(&mut world, op, &request, &ctx, &mut deleted)
            } else {
                // Another region's endpoint: the organizations live elsewhere.
                ops::handle(&mut World::default(), op, &request, &ctx, &mut deleted)
            }
        };
        self.fire_triggers(op);
        if let Some(ms) = faults.late_answer_ms {
            // Done, but the answer is late: the client cannot tell whether it happened.
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match result {
            Ok(mut v) => {
                if !faults.omit_members.is_empty() {
                    omit(&mut v, &faults.omit_members);
                }
                let text = v.to_string();
                let (truncate, garble) = {
                    let mut rng = lock(&self.inner.rng);
                    (
                        roll(&mut rng, faults.truncated_rate),
                        roll(&mut rng, faults.malformed_rate),
                    )
                };
                let body = if truncate {
                    let mut cut = text.len() / 2;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text[..cut].to_owned()
                } else if garble {
                    "<html><body>502 Bad Gateway</body></html>".to_owned()
                } else {
                    text
                };
                self.finish(httpd::respond(200, "application/x-amz-json-1.1", body))
            }
            Err(e) => self.error(&e),
        }
    }

    /// The signature checks, then the session checks of issued credentials: the region the
    /// request was signed for, and who made it.
    fn authenticate(
        &self,
        signed: &sigv4::Signed<'_>,
        service: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, sts::Caller), sigv4::Refusal> {
        let key = |access_key: &str| {
            // An issued key is always known, so its signature is always checked.
            if let Some(s) = lock(&self.inner.sessions).get(access_key) {
                return sigv4::Key::Secret(s.secret.clone());
            }
            if self.inner.credentials.is_empty() {
                return sigv4::Key::Unchecked;
            }
            match self.inner.credentials.get(access_key) {
                Some(secret) => sigv4::Key::Secret(secret.clone()),
                None => sigv4::Key::Unknown,
            }
        };
        let verified = sigv4::verify(signed, service, &self.inner.regions, key, now)?;
        let token = signed
            .headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok());
        let caller = sts::caller(
            &lock(&self.inner.sessions),
            &verified.access_key,
            token,
            now,
        )?;
        Ok((verified.region, caller))
    }

    /// One STS query-protocol request, authenticated as `caller`.
    fn sts(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        caller: &sts::Caller,
        now: DateTime<Utc>,
    ) -> Resp {
        let params = match sts::Params::parse(body) {
            Ok(p) => p,
            Err(e) => return self.sts_error(&e),
        };
        let op = match sts::action(&params) {
            Ok(op) => op,
            Err(e) => return self.sts_error(&e),
        };
        self.record_call(op, headers);
        let request_id = self.request_id();
        let roles = lock(&self.inner.roles).clone();
        let ctx = sts::Ctx {
            roles: &roles,
            caller,
            now,
            request_id: &request_id,
        };
        let answer = sts::assume_role(&params, &mut lock(&self.inner.sessions), &ctx);
        match answer {
            Ok(xml) => self.finish_as(httpd::respond(200, "text/xml", xml), &request_id),
            Err(e) => self.sts_error(&e),
        }
    }

    fn sts_error(&self, e: &sts::StsError) -> Resp {
        let id = self.request_id();
        let resp = httpd::respond(e.status, "text/xml", e.xml(&id));
        self.finish_as(resp, &id)
    }

    fn record_call(&self, op: &str, headers: &http::HeaderMap) {
        let attempt = headers
            .get("amz-sdk-request")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';')
                    .find_map(|kv| kv.trim().strip_prefix("attempt="))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(1);
        let mut calls = lock(&self.inner.calls);
        *calls.by_operation.entry(op.to_owned()).or_default() += 1;
        *calls
            .by_attempt
            .entry(op.to_owned())
            .or_default()
            .entry(attempt)
            .or_default() += 1;
    }

    pub(crate) fn error(&self, e: &ErrorAnswer) -> Resp {
        let body = json!({ "__type": e.code, "Message": e.message }).to_string();
        let mut resp = httpd::respond(e.status, "application/x-amz-json-1.1", body);
        if let Ok(v) = http::HeaderValue::from_str(e.code) {
            resp.headers_mut().insert("x-amzn-errortype", v);
        }
        self.finish(resp)
    }

    /// Adds the headers every AWS response carries.
    fn finish(&self, resp: Resp) -> Resp {
        let id = self.request_id();
        self.finish_as(resp, &id)
    }

    /// A fresh request id.
    fn request_id(&self) -> String {
        let seq = self.inner.request_seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            seq as u32,
            (seq >> 32) as u16,
            seq & 0xfff,
            (seq >> 12) & 0xfff,
            seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
        )
    }

    /// [`Self::finish`] with a request id the body already names.
    fn finish_as(&self, mut resp: Resp, id: &str) -> Resp {
        let h = resp.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(id) {
            h.insert("x-amzn-requestid", v);
        }
        let date = self.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(v) = http::HeaderValue::from_str(&date) {
            h.insert(http::header::DATE, v);
        }
        resp
    }

    fn introspect(&self, method: &http::Method, path: &str, body: &[u8]) -> Resp {
        let ok = |v: Value| httpd::respond(200, "application/json", v.to_string());
        let bad = |msg: String| {
            httpd::respond(400, "application/json", json!({ "error": msg }).to_string())
        };
        match (method.as_str(), path) {
            ("GET", "/_sim/calls") => ok(serde_json::to_value(self.calls()).unwrap_or_default()),
            ("DELETE", "/_sim/calls") => {
                self.reset_calls();
                ok(json!({}))
            }
            ("GET", "/_sim/deleted") => {
                ok(serde_json::to_value(self.deleted()).unwrap_or_default())
            }
            ("GET", "/_sim/faults") => ok(serde_json::to_value(self.faults()).unwrap_or_default()),
            ("PUT", "/_sim/faults") => match serde_json::from_slice::<Faults>(body) {
                Ok(f) => {
                    self.set_faults(f);
                    ok(json!({}))
                }
                Err(e) => bad(format!("invalid faults: {e}")),
            },
            ("POST", "/_sim/mutate") => match serde_json::from_slice::<Mutation>(body) {
                Ok(m) => match self.mutate(m) {
                    Ok(()) => ok(json!({})),
                    Err(e) => bad(e),
                },
                Err(e) => bad(format!("invalid mutation: {e}")),
            },
            ("GET", "/_sim/world") => {
                let world = self.world();
                let orgs: Vec<Value> = world
                    .orgs
                    .values()
                    .map(|o| {
                        json!({
                            "id": o.id,
                            "account": o.account_id,
                            "alias": o.alias,
                            "state": o.state,
                            "users": o.users.len(),
                            "tokens": o.tokens.len(),
                            "pat_status": o.identity_provider.as_ref().map(|p| p.pat_status.clone()),
                        })
                    })
                    .collect();
                ok(json!({ "region": self.inner.region, "organizations": orgs }))
            }
            (
                _,
                "/_sim/calls" | "/_sim/deleted" | "/_sim/faults" | "/_sim/mutate" | "/_sim/world",
            ) => httpd::respond(405, "text/plain", "method not allowed\n"),
            _ => httpd::respond(404, "text/plain", "not found\n"),
        }
    }
}
