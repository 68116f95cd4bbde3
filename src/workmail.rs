//! The WorkMail API: building SDK clients (credentials, AssumeRole, retries, timeouts, a retry
//! partition per organization) and the calls the daemon makes, translated into inventory
//! types. Only this module knows SDK types.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
/// The shared SDK configuration `app::Source::Sdk` carries without looking inside (tests, `demo`).
pub use aws_config::SdkConfig;
use aws_sdk_workmail::Client;
use aws_sdk_workmail::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_workmail::config::timeout::TimeoutConfig;
use aws_sdk_workmail::config::{Intercept, Region, RuntimeComponents, SharedCredentialsProvider};
use aws_sdk_workmail::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_types::config_bag::ConfigBag;
use chrono::{DateTime, Utc};

use crate::config::{RetryMode, ScanConfig};
use crate::inventory::{Owner, OwnerState, PatSettings, Token};

/// Counts API requests and errors per attempt; implemented by the metrics registry.
pub trait ApiObserver: Send + Sync + std::fmt::Debug {
    /// One attempt of `operation` was made; `error` is its bounded error kind, if it failed.
    fn attempt(&self, operation: &str, error: Option<&'static str>);
}

/// Error codes that may become metric labels; any other code is reported as `other`.
const KNOWN_CODES: &[&str] = &[
    "AccessDeniedException",
    "DirectoryServiceAuthenticationFailedException",
    "DirectoryUnavailableException",
    "EntityNotFoundException",
    "EntityStateException",
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "InternalFailure",
    "InternalServerError",
    "InvalidClientTokenId",
    "InvalidParameterException",
    "InvalidSignatureException",
    "LimitExceededException",
    "OrganizationNotFoundException",
    "OrganizationStateException",
    "RequestExpired",
    "ResourceNotFoundException",
    "SerializationException",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "ThrottlingException",
    "TooManyRequestsException",
    "UnknownOperationException",
    "UnrecognizedClientException",
    "UnsupportedOperationException",
    "ValidationException",
];

/// Maps a service error code to a bounded label value.
pub fn bounded_code(code: &str) -> &'static str {
    KNOWN_CODES
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("other")
}

/// An API call that failed after the SDK's retries.
///
/// Its `Display` is one readable line (the error's chain of messages, de-duplicated); the
/// hint, when there is one, is a sentence that says what to do. Neither ever contains the
/// SDK's `Debug` form, which [`ApiError::detail`] keeps for DEBUG logs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct ApiError {
    /// The operation.
    pub operation: &'static str,
    /// A bounded kind: an AWS error code, or `timeout`, `dispatch`, `response`,
    /// `credentials`, `construction`, `repeated_next_token`, `other`.
    pub kind: &'static str,
    /// What happened, on one line, for logs and people (never a label).
    pub message: String,
    /// What to do about it, when the failure is a common one.
    pub hint: Option<String>,
    /// Whether the request may have been carried out although the call failed: a timeout,
    /// a lost connection or an unreadable answer after the request was sent, or a server
    /// error. `false` when the service refused it (a 4xx) or it was never sent.
    pub outcome_unknown: bool,
    /// The SDK's full error, for those who ask for it at DEBUG level.
    pub detail: String,
}

/// What a client knows about where its calls go, for the hints of its errors.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The region calls are signed for and sent to.
    pub region: Option<String>,
    /// The endpoint, when one is configured, and the variable (or setting) that set it.
    pub endpoint: Option<(String, &'static str)>,
    /// The role the client assumes, and whether an external id goes with it.
    pub role: Option<(String, bool)>,
}

impl Target {
    fn endpoint_text(&self) -> String {
        match (&self.endpoint, &self.region) {
            (Some((url, from)), _) => format!("{url} (set by {from})"),
            (None, Some(r)) => format!("https://workmail.{r}.amazonaws.com"),
            (None, None) => "the WorkMail endpoint".to_owned(),
        }
    }
}

/// The IAM policy file (shipped in `config/`) that grants an operation.
pub fn policy_file_for(operation: &str) -> &'static str {
    if operation == "DeletePersonalAccessToken" {
        "config/iam-policy-cleanup.json"
    } else {
        "config/iam-policy-readonly.json"
    }
}

/// The messages of an error and its sources, on one line: each once (a source whose
/// message its parent already shows is left out), newlines folded.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        // The SDK shows an unmodelled error's metadata in a Debug-like form
        // (`Error { code: "X", message: "Y", aws_request_id: "Z" }`): said in words instead.
        let text = match err.downcast_ref::<aws_smithy_types::error::ErrorMetadata>() {
            Some(meta) => metadata_text(meta),
            None => err.to_string(),
        };
        let text = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// `CODE: message (request id ID)`, from what the service said.
fn metadata_text(meta: &aws_smithy_types::error::ErrorMetadata) -> String {
    let mut text = match (meta.code(), meta.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => "an error without a code or message".to_owned(),
    };
    if let Some(id) = meta.extra("aws_request_id") {
        text.push_str(&format!(" (request id {id})"));
    }
    text
}

impl ApiError {
    /// The bounded kind, for metric labels.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether a failed mutating call may still have been carried out (see
    /// [`ApiError::outcome_unknown`]).
    pub fn outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// A listing whose server sent back the token it was given.
    pub fn repeated_token(operation: &'static str) -> Self {
        Self::plain(
            operation,
            "repeated_next_token",
            "the service returned a NextToken it had returned before; the listing is incomplete",
        )
    }

    fn plain(operation: &'static str, kind: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            operation,
            kind,
            detail: message.clone(),
            message,
            hint: None,
            outcome_unknown: false,
        }
    }

    fn from_sdk<E>(operation: &'static str, e: SdkError<E, HttpResponse>, target: &Target) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let outcome_unknown = match &e {
            SdkError::ConstructionFailure(_) => false,
            SdkError::ServiceError(s) => s.raw().status().is_server_error(),
            // Timeouts, dispatch failures (the request may have left before the
            // connection broke), unreadable answers.
            _ => true,
        };
        let detail = format!("{e:?}");
        let (kind, message) = match e.as_service_error() {
            Some(s) => {
                let code = s.code().unwrap_or("an unnamed error");
                let text = s.message().unwrap_or("no message");
                (
                    s.code().map_or("response", bounded_code),
                    format!("{code}: {text}"),
                )
            }
            None => {
                let chain = error_chain(&e);
                let kind = match &e {
                    SdkError::TimeoutError(_) => "timeout",
                    SdkError::DispatchFailure(d) if d.is_timeout() => "timeout",
                    SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
                        if mentions_credentials(&chain) =>
                    {
                        "credentials"
                    }
                    SdkError::DispatchFailure(_) => "dispatch",
                    SdkError::ResponseError(_) => "response",
                    SdkError::ConstructionFailure(_) => "construction",
                    _ => "other",
                };
                let message = if kind == "credentials" {
                    credentials_summary(&chain).unwrap_or(chain)
                } else {
                    chain
                };
                (kind, message)
            }
        };
        let mut err = Self {
            operation,
            kind,
            message,
            hint: None,
            outcome_unknown,
            detail,
        };
        err.hint = err.first_contact_hint(target);
        err
    }

    /// One actionable sentence for the failures people meet first: credentials, region,
    /// endpoint, IAM, signature, role.
    fn first_contact_hint(&self, t: &Target) -> Option<String> {
        let m = self.message.as_str();
        let lower = m.to_ascii_lowercase();
        let role = t.role.as_ref().map(|(arn, external)| {
            format!(
                "{arn}{}",
                if *external {
                    " with its external id"
                } else {
                    ""
                }
            )
        });
        if let Some(role) = &role
            && (lower.contains("assume") || lower.contains("sts"))
            && self.kind != "AccessDeniedException"
        {
            return Some(format!(
                "the role {role} could not be assumed: its trust policy must allow this identity sts:AssumeRole (and require the external id that is configured, if any); check role_arn and external_id"
            ));
        }
        match self.kind {
            "credentials" if lower.contains("expired") || lower.contains("sso") => Some(
                "the session or SSO token has expired: sign in again (`aws sso login --profile NAME`) or refresh the session credentials".to_owned(),
            ),
            "credentials" => Some(
                "no AWS credentials were found in the default chain (environment, profile, web identity, ECS, instance metadata): set AWS_PROFILE to a profile in ~/.aws/config, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with a role (IRSA, an ECS task role, an instance profile)".to_owned(),
            ),
            "ExpiredTokenException" | "RequestExpired" if lower.contains("token") => Some(
                "the session token has expired: refresh the credentials (for SSO, `aws sso login --profile NAME`)".to_owned(),
            ),
            "InvalidSignatureException" | "SignatureDoesNotMatch" | "IncompleteSignatureException"
                if lower.contains("scoped to a valid region") =>
            {
                Some(format!(
                    "the request was signed for {} but {} serves another region: set organizations[].region to the endpoint's region, or use that region's endpoint",
                    t.region.as_deref().unwrap_or("the configured region"),
                    t.endpoint_text()
                ))
            }
            "RequestExpired" | "InvalidSignatureException" | "SignatureDoesNotMatch"
                if lower.contains("expired") || lower.contains("time") || lower.contains("clock") =>
            {
                Some("the request's time is off: this machine's clock is more than 5 minutes away from AWS's; sync it (NTP)".to_owned())
            }
            "InvalidSignatureException" | "SignatureDoesNotMatch" | "IncompleteSignatureException" => Some(
                "the signature does not match: the secret access key does not belong to the access key id, or the system clock is off; check the credentials and NTP".to_owned(),
            ),
            "InvalidClientTokenId" | "UnrecognizedClientException" => Some(
                "the access key id is not known to AWS: check the credentials (and that they are for this AWS partition)".to_owned(),
            ),
            "AccessDeniedException" => Some(format!(
                "the identity is not allowed workmail:{}: attach {} (or a policy that grants that action){}",
                self.operation,
                policy_file_for(self.operation),
                role.as_ref()
                    .map(|r| format!(" to the role {r}"))
                    .unwrap_or_default()
            )),
            "OrganizationNotFoundException" => Some(format!(
                "WorkMail organizations are regional: it was not found in {}; set organizations[].region to the region it was created in",
                t.region.as_deref().unwrap_or("the configured region")
            )),
            "dispatch" if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") => {
                Some(format!(
                    "the name of {} does not resolve: check DNS and the endpoint",
                    t.endpoint_text()
                ))
            }
            "dispatch" | "timeout" if lower.contains("connect") => Some(format!(
                "cannot connect to {}: check the network, a proxy (HTTPS_PROXY) and the endpoint",
                t.endpoint_text()
            )),
            "construction" if lower.contains("region") => Some(
                "no region: set organizations[].region, or AWS_REGION (or a profile's region)".to_owned(),
            ),
            _ => None,
        }
    }
}

/// The default chain's "no credentials found in chain. Attempted: …" as one short line:
/// each provider tried, and why it gave none.
fn credentials_summary(chain: &str) -> Option<String> {
    const NOT_ENABLED: &str = "the credential provider was not enabled";
    let (_, attempts) = chain.split_once("no credentials found in chain")?;
    let tried: Vec<String> = attempts
        .trim_start_matches(['.', ' '])
        .trim_start_matches("Attempted:")
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let (name, why) = a.split_once(':').unwrap_or((a, ""));
            let why = why
                .trim()
                .trim_start_matches(NOT_ENABLED)
                .trim_start_matches(':')
                .trim();
            if why.is_empty() {
                format!("{name}: not enabled")
            } else {
                format!("{name}: {why}")
            }
        })
        .collect();
    Some(format!(
        "no AWS credentials in the default chain ({})",
        tried.join("; ")
    ))
}

fn mentions_credentials(chain: &str) -> bool {
    let lower = chain.to_ascii_lowercase();
    lower.contains("credential") || lower.contains("identity")
}

/// Counts every attempt of every call, so retries the SDK absorbs are still visible.
#[derive(Debug)]
struct AttemptCounter {
    observer: Arc<dyn ApiObserver>,
}

impl Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "workmail-pat-monitor.AttemptCounter"
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
        let error = match ctx.output_or_error() {
            None | Some(Ok(_)) => None,
            Some(Err(e)) => Some(attempt_error(e, ctx.response())),
        };
        self.observer.attempt(operation, error);
        Ok(())
    }
}

fn attempt_error<E>(
    e: &aws_smithy_runtime_api::client::orchestrator::OrchestratorError<E>,
    response: Option<&aws_smithy_runtime_api::http::Response>,
) -> &'static str {
    if e.is_timeout_error() {
        return "timeout";
    }
    if let Some(c) = e.as_connector_error() {
        return if c.is_timeout() {
            "timeout"
        } else {
            "dispatch"
        };
    }
    let Some(resp) = response else {
        return "dispatch";
    };
    if resp.status().is_success() {
        // A 2xx answer that could not be read: a truncated or malformed body.
        return "response";
    }
    let header = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.split(':').next().unwrap_or_default().to_owned());
    let code = header.or_else(|| {
        let body: serde_json::Value = serde_json::from_slice(resp.body().bytes()?).ok()?;
        let t = body.get("__type").or_else(|| body.get("code"))?.as_str()?;
        Some(t.rsplit('#').next().unwrap_or(t).to_owned())
    });
    code.map_or("response", |c| bounded_code(&c))
}

/// What the daemon needs to build clients, whatever the organization.
#[derive(Clone)]
pub struct ClientFactory {
    base: SdkConfig,
    retry: RetryConfig,
    timeouts: TimeoutConfig,
    observer: Arc<dyn ApiObserver>,
    generation: u64,
}

/// Knobs of the SDK clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Attempts per call.
    pub max_attempts: u32,
    /// Standard or adaptive retries.
    pub retry_mode: RetryMode,
    /// Timeout of one attempt.
    pub call_timeout: Duration,
    /// First retry backoff (the SDK default is 1 s; tests shorten it).
    pub initial_backoff: Duration,
}

impl ClientOptions {
    /// The options a scan configuration asks for.
    pub fn from_scan(scan: &ScanConfig) -> Self {
        Self {
            max_attempts: scan.max_attempts,
            retry_mode: scan.retry_mode,
            call_timeout: scan.call_timeout,
            initial_backoff: Duration::from_secs(1),
        }
    }
}

impl ClientFactory {
    /// Loads the standard AWS chain (env, profiles, web identity, ECS, IMDS, and
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_WORKMAIL`).
    pub async fn from_env(opts: &ClientOptions, observer: Arc<dyn ApiObserver>) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(base, opts, observer)
    }

    /// Builds on an explicit SDK configuration (used by tests and the demo).
    pub fn from_sdk_config(
        base: SdkConfig,
        opts: &ClientOptions,
        observer: Arc<dyn ApiObserver>,
    ) -> Self {
        let (retry, timeouts) = Self::knobs(opts);
        Self {
            base,
            retry,
            timeouts,
            observer,
            generation: 0,
        }
    }

    /// The same factory with other retries and timeouts; clients built before keep theirs
    /// (so a holder tells them apart by [`ClientFactory::generation`]).
    pub fn with_options(&self, opts: &ClientOptions) -> Self {
        let (retry, timeouts) = Self::knobs(opts);
        Self {
            retry,
            timeouts,
            generation: self.generation + 1,
            ..self.clone()
        }
    }

    /// Counts the factories derived with [`ClientFactory::with_options`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn knobs(opts: &ClientOptions) -> (RetryConfig, TimeoutConfig) {
        let retry = match opts.retry_mode {
            RetryMode::Standard => RetryConfig::standard(),
            RetryMode::Adaptive => RetryConfig::adaptive(),
        }
        .with_max_attempts(opts.max_attempts)
        .with_initial_backoff(opts.initial_backoff)
        .with_max_backoff(Duration::from_secs(20));
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(opts.call_timeout)
            .connect_timeout(opts.call_timeout.min(Duration::from_secs(5)))
            .build();
        (retry, timeouts)
    }

    /// A configuration for static credentials against an endpoint (the emulator).
    pub fn static_sdk_config(endpoint: &str, region: &str) -> SdkConfig {
        let creds = aws_sdk_workmail::config::Credentials::new(
            "AKIDEMULATOR",
            "emulator-secret",
            None,
            None,
            "static",
        );
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .time_source(aws_smithy_async::time::SharedTimeSource::default())
            .sleep_impl(
                aws_smithy_async::rt::sleep::default_async_sleep().unwrap_or_else(|| {
                    aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
                        aws_smithy_async::rt::sleep::TokioSleep::new(),
                    )
                }),
            )
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .build()
    }

    /// The default region of the AWS chain.
    pub fn default_region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    /// A client for one organization (or, with `partition = "discovery-REGION"`, for
    /// discovery). Each partition has its own retry budget, so throttling of one
    /// organization cannot starve the others.
    pub async fn client(
        &self,
        region: Option<&str>,
        role: Option<(&str, Option<&str>)>,
        partition: &str,
    ) -> WorkMail {
        let mut b = aws_sdk_workmail::config::Builder::from(&self.base)
            .retry_config(self.retry.clone())
            .timeout_config(self.timeouts.clone())
            .retry_partition(RetryPartition::new(partition.to_owned()))
            .interceptor(AttemptCounter {
                observer: self.observer.clone(),
            });
        if let Some(r) = region {
            b = b.region(Region::new(r.to_owned()));
        }
        if let Some((arn, external_id)) = role {
            let mut conf = self.base.to_builder();
            if let Some(r) = region {
                conf = conf.region(Region::new(r.to_owned()));
            }
            let conf = conf.build();
            let mut p = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("workmail-pat-monitor")
                .configure(&conf);
            if let Some(id) = external_id {
                p = p.external_id(id);
            }
            b = b.credentials_provider(SharedCredentialsProvider::new(p.build().await));
        }
        let endpoint = match self.base.endpoint_url() {
            Some(url) => {
                let from = if std::env::var_os("AWS_ENDPOINT_URL_WORKMAIL").is_some() {
                    "AWS_ENDPOINT_URL_WORKMAIL"
                } else if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
                    "AWS_ENDPOINT_URL"
                } else {
                    "the AWS configuration"
                };
                Some((url.to_owned(), from))
            }
            None => std::env::var("AWS_ENDPOINT_URL_WORKMAIL")
                .ok()
                .map(|u| (u, "AWS_ENDPOINT_URL_WORKMAIL")),
        };
        WorkMail {
            client: Client::from_conf(b.build()),
            target: Arc::new(Target {
                region: region.map(str::to_owned).or_else(|| self.default_region()),
                endpoint,
                role: role.map(|(arn, external)| (arn.to_owned(), external.is_some())),
            }),
        }
    }
}

/// An organization as `ListOrganizations` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSummary {
    /// Organization id.
    pub id: String,
    /// Alias.
    pub alias: Option<String>,
    /// State (`Active`, ...).
    pub state: Option<String>,
}

/// A WorkMail client for one region and credential set.
#[derive(Clone, Debug)]
pub struct WorkMail {
    client: Client,
    target: Arc<Target>,
}

/// Converts an SDK timestamp, rounded to the millisecond: the service sends at most
/// milliseconds, and the SDK's float parsing leaves noise below that.
fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    let ms = t
        .secs()
        .checked_mul(1000)?
        .checked_add(i64::from((t.subsec_nanos() + 500_000) / 1_000_000))?;
    DateTime::from_timestamp_millis(ms)
}

/// The owner's state, and whether the service reported one this version knows.
fn owner_state(s: Option<&aws_sdk_workmail::types::EntityState>) -> (OwnerState, bool) {
    use aws_sdk_workmail::types::EntityState as S;
    match s {
        Some(S::Enabled) => (OwnerState::Enabled, true),
        Some(S::Disabled) => (OwnerState::Disabled, true),
        Some(S::Deleted) => (OwnerState::Deleted, true),
        _ => (OwnerState::Unknown, false),
    }
}

/// A page of a listing: items and the token of the next page.
pub type Page<T> = (Vec<T>, Option<String>);

/// Listings longer than this many pages are treated as a service fault.
pub const MAX_PAGES: usize = 1_000_000;

/// The `NextToken`s of one listing, and the one rule about them: a token the service sends
/// twice (or sends back) means the listing would never end or skip pages, so the listing is
/// incomplete. The SDK's paginators stop silently there; an incomplete listing must never
/// pass for a complete one. A listing past [`MAX_PAGES`] pages is incomplete too.
#[derive(Debug)]
pub struct Pager {
    operation: &'static str,
    next: Option<String>,
    seen: std::collections::HashSet<String>,
    pages: usize,
}

impl Pager {
    /// The pages of `operation`, from the first.
    pub fn new(operation: &'static str) -> Self {
        Self {
            operation,
            next: None,
            seen: Default::default(),
            pages: 0,
        }
    }

    /// The token to ask for the next page with (`None` for the first).
    pub fn token(&self) -> Option<String> {
        self.next.clone()
    }

    /// Takes the token a page answered with: `Ok(true)` when another page follows,
    /// `Ok(false)` when the listing is complete, an error when the token was seen before or
    /// the listing is too long.
    pub fn advance(&mut self, following: Option<String>) -> Result<bool, ApiError> {
        self.pages += 1;
        let Some(n) = following else {
            return Ok(false);
        };
        if self.pages >= MAX_PAGES || !self.seen.insert(n.clone()) {
            return Err(ApiError::repeated_token(self.operation));
        }
        self.next = Some(n);
        Ok(true)
    }
}

impl WorkMail {
    /// One page of `ListOrganizations`.
    pub async fn list_organizations_page(
        &self,
        next: Option<String>,
        page_size: i32,
    ) -> Result<Page<OrgSummary>, ApiError> {
        let out = self
            .client
            .list_organizations()
            .set_next_token(next)
            .max_results(page_size)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ListOrganizations", e, &self.target))?;
        let orgs = out
            .organization_summaries()
            .iter()
            .filter_map(|o| {
                Some(OrgSummary {
                    id: o.organization_id()?.to_owned(),
                    alias: o.alias().map(str::to_owned),
                    state: o.state().map(str::to_owned),
                })
            })
            .collect();
        Ok((orgs, out.next_token().map(str::to_owned)))
    }

    /// One page of the organization's tokens.
    pub async fn list_tokens_page(
        &self,
        org_id: &str,
        next: Option<String>,
        page_size: i32,
    ) -> Result<Page<Token>, ApiError> {
        let out = self
            .client
            .list_personal_access_tokens()
            .organization_id(org_id)
            .set_next_token(next)
            .max_results(page_size)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ListPersonalAccessTokens", e, &self.target))?;
        let summaries = out.personal_access_token_summaries();
        let tokens: Vec<Token> = summaries
            .iter()
            .filter_map(|t| {
                // A summary without an id or owner cannot be acted on or attributed.
                Some(token(
                    t.personal_access_token_id()?,
                    t.user_id()?,
                    t.name(),
                    t.date_created(),
                    t.date_last_used(),
                    t.expires_time(),
                    t.scopes(),
                ))
            })
            .collect();
        if tokens.len() < summaries.len() {
            tracing::warn!(
                organization_id = org_id,
                dropped = summaries.len() - tokens.len(),
                "token summaries without an id or owner were left out"
            );
        }
        Ok((tokens, out.next_token().map(str::to_owned)))
    }

    /// `GetPersonalAccessTokenMetadata`; `None` when the token no longer exists.
    pub async fn get_token(&self, org_id: &str, token_id: &str) -> Result<Option<Token>, ApiError> {
        match self
            .client
            .get_personal_access_token_metadata()
            .organization_id(org_id)
            .personal_access_token_id(token_id)
            .send()
            .await
        {
            // An answer about another token, or without an owner, cannot re-verify anything.
            Ok(t) => match (t.personal_access_token_id(), t.user_id()) {
                (Some(id), Some(user_id)) if id == token_id => Ok(Some(token(
                    id,
                    user_id,
                    t.name(),
                    t.date_created(),
                    t.date_last_used(),
                    t.expires_time(),
                    t.scopes(),
                ))),
                _ => Err(ApiError::plain(
                    "GetPersonalAccessTokenMetadata",
                    "response",
                    format!(
                        "incomplete answer for token {token_id}: id {:?}, owner {:?}",
                        t.personal_access_token_id(),
                        t.user_id()
                    ),
                )),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(ApiError::from_sdk(
                "GetPersonalAccessTokenMetadata",
                e,
                &self.target,
            )),
        }
    }

    /// `DeletePersonalAccessToken` of the token an approval names, and no other.
    pub async fn delete_approved(
        &self,
        approved: &crate::policy::Approved,
    ) -> Result<(), ApiError> {
        self.client
            .delete_personal_access_token()
            .organization_id(approved.org_id())
            .personal_access_token_id(&approved.token().id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ApiError::from_sdk("DeletePersonalAccessToken", e, &self.target))
    }

    /// `DescribeUser`; `None` when the user is not in the directory.
    pub async fn describe_user(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> Result<Option<Owner>, ApiError> {
        match self
            .client
            .describe_user()
            .organization_id(org_id)
            .user_id(user_id)
            .send()
            .await
        {
            Ok(u) => {
                let (state, state_known) = owner_state(u.state());
                Ok(Some(Owner {
                    user_id: u.user_id().unwrap_or(user_id).to_owned(),
                    name: u.name().map(str::to_owned),
                    email: u.email().map(str::to_owned),
                    display_name: u.display_name().map(str::to_owned),
                    state,
                    disabled_date: time(u.disabled_date()),
                    identity_provider_user_id: u.identity_provider_user_id().map(str::to_owned),
                    state_known,
                }))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(ApiError::from_sdk("DescribeUser", e, &self.target)),
        }
    }

    /// One page of `ListUsers`.
    pub async fn list_users_page(
        &self,
        org_id: &str,
        next: Option<String>,
        page_size: i32,
    ) -> Result<Page<Owner>, ApiError> {
        let out = self
            .client
            .list_users()
            .organization_id(org_id)
            .set_next_token(next)
            .max_results(page_size)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ListUsers", e, &self.target))?;
        let users = out
            .users()
            .iter()
            .filter_map(|u| {
                let (state, state_known) = owner_state(u.state());
                Some(Owner {
                    user_id: u.id()?.to_owned(),
                    name: u.name().map(str::to_owned),
                    email: u.email().map(str::to_owned),
                    display_name: u.display_name().map(str::to_owned),
                    state,
                    disabled_date: time(u.disabled_date()),
                    identity_provider_user_id: u.identity_provider_user_id().map(str::to_owned),
                    state_known,
                })
            })
            .collect();
        Ok((users, out.next_token().map(str::to_owned)))
    }

    /// The organization's PAT settings; `None` when there is no identity-provider
    /// configuration or the caller may not read it.
    pub async fn pat_settings(&self, org_id: &str) -> Result<Option<PatSettings>, ApiError> {
        match self
            .client
            .describe_identity_provider_configuration()
            .organization_id(org_id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .personal_access_token_configuration()
                .map(|p| PatSettings {
                    enabled: p.status().as_str() == "ACTIVE",
                    lifetime_days: p.lifetime_in_days(),
                })),
            Err(e) => {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                let denied = e
                    .as_service_error()
                    .and_then(|s| s.code())
                    .is_some_and(|c| c == "AccessDeniedException");
                if not_found || denied {
                    Ok(None)
                } else {
                    Err(ApiError::from_sdk(
                        "DescribeIdentityProviderConfiguration",
                        e,
                        &self.target,
                    ))
                }
            }
        }
    }
}

fn token(
    id: &str,
    user_id: &str,
    name: Option<&str>,
    created: Option<&aws_smithy_types::DateTime>,
    last_used: Option<&aws_smithy_types::DateTime>,
    expires: Option<&aws_smithy_types::DateTime>,
    scopes: &[String],
) -> Token {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    Token {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        name: name.map(str::to_owned),
        created: time(created),
        last_used: time(last_used),
        expires: time(expires),
        scopes,
    }
}

// === The pre-flight check ===

/// What a harmless call found of one permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The call was allowed.
    Allowed,
    /// The service refused it: the identity lacks the permission.
    Denied(String),
    /// It failed for another reason (the permission is unknown).
    Failed(String),
    /// Not called, and why.
    NotTried(String),
}

/// One permission a configuration needs, and what the pre-flight found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The IAM action, e.g. `workmail:ListPersonalAccessTokens`.
    pub action: String,
    /// What the daemon needs it for.
    pub purpose: &'static str,
    /// What was found.
    pub probe: Probe,
    /// Whether the daemon works without it (a feature is left out).
    pub optional: bool,
}

impl Permission {
    fn new(operation: &str, purpose: &'static str, probe: Probe) -> Self {
        Self {
            action: format!("workmail:{operation}"),
            purpose,
            probe,
            optional: false,
        }
    }

    /// Whether this permission stops the configuration from working.
    pub fn fails(&self) -> bool {
        !self.optional && matches!(self.probe, Probe::Denied(_) | Probe::Failed(_))
    }
}

/// What the pre-flight needs to know of a configuration, for one organization.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// `DescribeUser` (owner lookup `describe` or `auto`).
    pub describe_user: bool,
    /// `ListUsers` (owner lookup `list` or `auto`).
    pub list_users: bool,
    /// Cleanup runs for the organization (it re-reads tokens).
    pub cleanup: bool,
    /// Cleanup deletes there (`enforce`).
    pub delete: bool,
}

fn probe_of<T>(r: &Result<T, ApiError>) -> Probe {
    match r {
        Ok(_) => Probe::Allowed,
        Err(e) if e.kind == "AccessDeniedException" => Probe::Denied(match &e.hint {
            Some(h) => format!("{e} ({h})"),
            None => e.to_string(),
        }),
        Err(e) => Probe::Failed(match &e.hint {
            Some(h) => format!("{e} ({h})"),
            None => e.to_string(),
        }),
    }
}

impl WorkMail {
    /// Tries, with calls that change nothing, each permission an organization's
    /// configuration needs. The delete permission is never tried: it cannot be proven
    /// without deleting.
    pub async fn preflight(&self, org_id: &str, needs: Needs) -> Vec<Permission> {
        let mut out = Vec::new();
        let tokens = self.list_tokens_page(org_id, None, 1).await;
        out.push(Permission::new(
            "ListPersonalAccessTokens",
            "every scan lists the tokens",
            probe_of(&tokens),
        ));
        let first = tokens.ok().and_then(|(t, _)| t.into_iter().next());
        let idp = self
            .client
            .describe_identity_provider_configuration()
            .organization_id(org_id)
            .send()
            .await;
        let idp = match idp {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(ApiError::from_sdk(
                "DescribeIdentityProviderConfiguration",
                e,
                &self.target,
            )),
        };
        let mut p = Permission::new(
            "DescribeIdentityProviderConfiguration",
            "the PAT settings (workmail_pat_organization_pat_enabled, ..._lifetime_seconds); without it they are left out",
            probe_of(&idp),
        );
        p.optional = true;
        out.push(p);
        let mut some_user = first.as_ref().map(|t| t.user_id.clone());
        if needs.list_users {
            let users = self.list_users_page(org_id, None, 1).await;
            out.push(Permission::new(
                "ListUsers",
                "owners are resolved by listing the directory",
                probe_of(&users),
            ));
            if some_user.is_none() {
                some_user = users
                    .ok()
                    .and_then(|(u, _)| u.into_iter().next().map(|u| u.user_id));
            }
        }
        if needs.describe_user {
            let probe = match &some_user {
                Some(u) => probe_of(&self.describe_user(org_id, u).await),
                None => {
                    Probe::NotTried("the organization has no token or user to describe".to_owned())
                }
            };
            out.push(Permission::new(
                "DescribeUser",
                "owners are resolved one by one",
                probe,
            ));
        }
        if needs.cleanup {
            let probe = match &first {
                Some(t) => probe_of(&self.get_token(org_id, &t.id).await),
                None => Probe::NotTried("the organization has no token to read".to_owned()),
            };
            out.push(Permission::new(
                "GetPersonalAccessTokenMetadata",
                "cleanup re-reads every token before it decides",
                probe,
            ));
        }
        if needs.delete {
            let region = self.target.region.as_deref().unwrap_or("REGION");
            out.push(Permission::new(
                "DeletePersonalAccessToken",
                "cleanup in enforce deletes tokens",
                Probe::NotTried(format!(
                    "it cannot be proven without deleting a token; ask IAM's policy simulator instead: aws iam simulate-principal-policy --policy-source-arn ARN-OF-THIS-ROLE-OR-USER --action-names workmail:DeletePersonalAccessToken --resource-arns arn:aws:workmail:{region}:ACCOUNT:organization/{org_id}"
                )),
            ));
        }
        out
    }

    /// Whether `ListOrganizations` is allowed (discovery).
    pub async fn preflight_discovery(&self) -> Permission {
        Permission::new(
            "ListOrganizations",
            "discovery lists the organizations",
            probe_of(&self.list_organizations_page(None, 1).await),
        )
    }
}

/// Where the credentials came from, as far as it can be told without the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsSource {
    /// The provider in the chain that supplied them (`Environment`, `ProfileFile`,
    /// `WebIdentityToken`, ...), or `unknown`.
    pub provider: String,
    /// The access key id, all but its last four characters masked.
    pub access_key: String,
    /// The profile selected by `AWS_PROFILE`, if any.
    pub profile: Option<String>,
}

impl ClientFactory {
    /// The credentials of the default chain, without their secret: where they came from.
    pub async fn credentials_source(&self) -> Result<CredentialsSource, String> {
        use aws_credential_types::provider::ProvideCredentials as _;
        let Some(provider) = self.base.credentials_provider() else {
            return Err("no credentials provider is configured".to_owned());
        };
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| error_chain(&e))?;
        // The provider's name is only in the credentials' (redacted) Debug form.
        let debug = format!("{creds:?}");
        let name = debug
            .split_once("provider_name: \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("unknown", |(name, _)| name)
            .to_owned();
        let key: Vec<char> = creds.access_key_id().chars().collect();
        let shown = key.len().saturating_sub(4);
        Ok(CredentialsSource {
            provider: name,
            access_key: format!(
                "{}{}",
                "*".repeat(shown.min(16)),
                key[shown..].iter().collect::<String>()
            ),
            profile: std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_ends_once_and_a_token_seen_before_makes_it_incomplete() {
        let t = |s: &str| Some(s.to_owned());
        // (case, what each page answers, pages until complete or Err when incomplete)
        type Case = (&'static str, Vec<Option<String>>, Result<usize, ()>);
        let cases: &[Case] = &[
            ("one page", vec![None], Ok(1)),
            ("three pages", vec![t("a"), t("b"), None], Ok(3)),
            ("the token sent comes back", vec![t("a"), t("a")], Err(())),
            (
                "an older token comes back",
                vec![t("a"), t("b"), t("a")],
                Err(()),
            ),
        ];
        for (case, answers, want) in cases {
            let mut pager = Pager::new("ListUsers");
            let mut asked = vec![pager.token()];
            let mut got = Ok(0);
            for (i, a) in answers.iter().enumerate() {
                match pager.advance(a.clone()) {
                    Ok(true) => asked.push(pager.token()),
                    Ok(false) => {
                        got = Ok(i + 1);
                        break;
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), "repeated_next_token", "case: {case}");
                        assert_eq!(e.operation, "ListUsers", "case: {case}");
                        got = Err(());
                        break;
                    }
                }
            }
            assert_eq!(&got, want, "case: {case}");
            // Each page asks with the token the page before it answered with.
            assert_eq!(asked[0], None, "case: {case}");
            for (a, next) in answers.iter().zip(asked.iter().skip(1)) {
                assert_eq!(a, next, "case: {case}");
            }
        }
    }

    #[test]
    fn errors_read_as_one_line_of_messages() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer failure")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("middle: inner detail")]
        struct Inner(#[source] std::io::Error);
        let e = Outer(Inner(std::io::Error::other("inner detail")));
        // The inner message is already in the middle one: said once.
        assert_eq!(error_chain(&e), "outer failure: middle: inner detail");
        let multi = std::io::Error::other("first line\n  second line\n");
        assert_eq!(error_chain(&multi), "first line; second line");
    }

    #[test]
    fn an_unmodelled_service_error_reads_as_code_and_message() {
        #[derive(Debug, thiserror::Error)]
        #[error("unhandled error (AccessDenied)")]
        struct Unhandled(#[source] aws_smithy_types::error::ErrorMetadata);
        let meta = aws_smithy_types::error::ErrorMetadata::builder()
            .code("AccessDenied")
            .message("User: x is not authorized to perform: sts:AssumeRole")
            .custom("aws_request_id", "req-1")
            .build();
        let text = error_chain(&Unhandled(meta));
        assert_eq!(
            text,
            "unhandled error (AccessDenied): AccessDenied: User: x is not authorized to perform: sts:AssumeRole (request id req-1)"
        );
        assert!(!text.contains("Error {"), "{text}");
    }
}
