//! Fault injection: latency, throttling, server errors, failed pages, broken bodies, stalls
//! and misbehaving pagination, per operation, settable at start and at run time.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

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
