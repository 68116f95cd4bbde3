//! Fault injection: latency, throttling, server errors, failed pages, broken bodies, stalls
//! and misbehaving pagination, per operation, settable at start and at run time: the
//! specification ([`Faults`], [`OpFaults`]) and how the emulator applies it.

use std::collections::HashMap;

use std::time::Duration;

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ErrorAnswer, Sim, lock};
use crate::httpd::Resp;

/// Faults for every operation (`default`) and per operation (`operations`, by operation
/// name such as `ListPersonalAccessTokens`); an operation's own entry replaces the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Faults of operations without an entry of their own.
    #[serde(default)]
    pub default: OpFaults,
    /// Faults by operation name.
    #[serde(default)]
    pub operations: HashMap<String, OpFaults>,
}

impl Faults {
    /// The faults that apply to `operation`.
    pub fn for_op(&self, operation: &str) -> &OpFaults {
        self.operations.get(operation).unwrap_or(&self.default)
    }
}

/// The faults of one operation. Every field defaults to "no fault".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpFaults {
    /// Fixed latency added to every call, in milliseconds.
    pub latency_ms: u64,
    /// Random extra latency, uniform in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Token-bucket throttling: sustained calls per second (none when absent).
    pub throttle_rate: Option<f64>,
    /// Token-bucket size (defaults to the rate, at least 1).
    pub throttle_burst: Option<f64>,
    /// Sent as `x-amz-retry-after` (milliseconds) with every throttling answer.
    pub retry_after_ms: Option<u64>,
    /// Probability (0..=1) of answering 500 `InternalFailure`.
    pub internal_error_rate: f64,
    /// Probability (0..=1) of answering 503 `ServiceUnavailable`.
    pub unavailable_rate: f64,
    /// 1-based page numbers of a listing that answer 500 `InternalFailure`.
    pub fail_pages: Vec<u32>,
    /// Probability (0..=1) of a 200 answer whose JSON body is cut short.
    pub truncated_rate: f64,
    /// Probability (0..=1) of a 200 answer whose body is not JSON at all.
    pub malformed_rate: f64,
    /// Probability (0..=1) of a response that stalls for `stall_ms` before answering 500.
    pub stall_rate: f64,
    /// How long a stalled response stalls (default 60 s).
    pub stall_ms: Option<u64>,
    /// Answer `AccessDeniedException` (as a missing IAM permission would).
    pub access_denied: bool,
    /// Listings answer with the `NextToken` they were sent (a server bug the SDK's
    /// paginators stop on silently).
    pub repeat_next_token: bool,
    /// Only requests for these organization ids are affected; all when empty.
    pub organization_ids: Vec<String>,
    /// Members removed from every object of a successful answer (optional output members
    /// the model allows to be absent, e.g. `DateCreated`, `ExpiresTime`, `Scopes`).
    pub omit_members: Vec<String>,
    /// Each page of a listing starts with the last item of the previous page again
    /// (duplicate ids across pages).
    pub overlap_pages: bool,
    /// The call is carried out, then answered only after this many milliseconds: a
    /// service that applied a change but whose answer arrives late, or (longer than the
    /// client's timeout) never.
    pub late_answer_ms: Option<u64>,
}

impl OpFaults {
    /// Whether these faults apply to a request for `org`.
    pub fn applies_to(&self, org: &str) -> bool {
        self.organization_ids.is_empty() || self.organization_ids.iter().any(|o| o == org)
    }
}

/// What the fault layer decided for one call before answering it (broken bodies are decided
/// after the answer is computed, on its text).
#[derive(Debug, Clone, PartialEq)]
pub enum Injected {
    /// Throttled, with an optional retry-after in milliseconds.
    Throttle(Option<u64>),
    /// 500 `InternalFailure`.
    InternalError,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// Stall this long, then 500.
    Stall(std::time::Duration),
    /// `AccessDeniedException`.
    AccessDenied,
}

/// A token bucket for throttling; time is passed in so it works under paused tokio time.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: tokio::time::Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(burst: f64, now: tokio::time::Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, rate: f64, burst: f64, now: tokio::time::Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

// === Applying faults ===

impl Sim {
    /// Applies latency, then decides whether this call fails by injection.
    pub(super) async fn inject(&self, op: &str, f: &OpFaults) -> Option<Resp> {
        let (delay, injected) = {
            let mut rng = lock(&self.inner.rng);
            let jitter = if f.jitter_ms > 0 {
                rng.random_range(0..=f.jitter_ms)
            } else {
                0
            };
            let delay = Duration::from_millis(f.latency_ms + jitter);
            let injected = if f.access_denied {
                Some(Injected::AccessDenied)
            } else if roll(&mut rng, f.stall_rate) {
                Some(Injected::Stall(Duration::from_millis(
                    f.stall_ms.unwrap_or(60_000),
                )))
            } else if roll(&mut rng, f.internal_error_rate) {
                Some(Injected::InternalError)
            } else if roll(&mut rng, f.unavailable_rate) {
                Some(Injected::Unavailable)
            } else {
                None
            };
            (delay, injected)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let injected = injected.or_else(|| {
            let rate = f.throttle_rate?;
            let burst = f.throttle_burst.unwrap_or(rate).max(1.0);
            let now = tokio::time::Instant::now();
            let mut buckets = lock(&self.inner.buckets);
            let bucket = buckets
                .entry(op.to_owned())
                .or_insert_with(|| Bucket::new(burst, now));
            (!bucket.try_take(rate, burst, now)).then_some(Injected::Throttle(f.retry_after_ms))
        })?;
        Some(match injected {
            Injected::Throttle(after) => {
                let mut resp =
                    self.error(&ErrorAnswer::client("ThrottlingException", "Rate exceeded"));
                if let Some(ms) = after
                    && let Ok(v) = http::HeaderValue::from_str(&ms.to_string())
                {
                    resp.headers_mut().insert("x-amz-retry-after", v);
                }
                resp
            }
            Injected::InternalError => self.error(&ErrorAnswer {
                status: 500,
                code: "InternalFailure",
                message: "injected internal failure".into(),
            }),
            Injected::Unavailable => self.error(&ErrorAnswer {
                status: 503,
                code: "ServiceUnavailable",
                message: "injected unavailability".into(),
            }),
            Injected::Stall(d) => {
                tokio::time::sleep(d).await;
                self.error(&ErrorAnswer {
                    status: 500,
                    code: "InternalFailure",
                    message: "stalled".into(),
                })
            }
            Injected::AccessDenied => self.error(&ErrorAnswer::client(
                "AccessDeniedException",
                format!("User is not authorized to perform: workmail:{op}"),
            )),
        })
    }
}

/// Removes the named members from every object in `v` (but never `NextToken`).
pub(super) fn omit(v: &mut Value, names: &[String]) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| k == "NextToken" || !names.contains(k));
            map.values_mut().for_each(|x| omit(x, names));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| omit(x, names)),
        _ => {}
    }
}

pub(super) fn roll(rng: &mut ChaCha8Rng, p: f64) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}
