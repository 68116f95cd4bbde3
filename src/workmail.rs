//! The WorkMail API: building SDK clients (credentials, AssumeRole, retries, timeouts, a retry
//! partition per organization) and the calls the daemon makes, translated into inventory
//! types. Only this module knows SDK types.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
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
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {kind}: {message}")]
pub struct ApiError {
    /// The operation.
    pub operation: &'static str,
    /// A bounded kind: an AWS error code, or `timeout`, `dispatch`, `response`,
    /// `credentials`, `construction`, `repeated_next_token`, `other`.
    pub kind: &'static str,
    /// What happened, for logs (never a label).
    pub message: String,
    /// Whether the request may have been carried out although the call failed: a timeout,
    /// a lost connection or an unreadable answer after the request was sent, or a server
    /// error. `false` when the service refused it (a 4xx) or it was never sent.
    pub outcome_unknown: bool,
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
        Self {
            operation,
            kind: "repeated_next_token",
            message: "the service returned the NextToken it was sent; the listing is incomplete"
                .to_owned(),
            outcome_unknown: false,
        }
    }

    fn from_sdk<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> Self
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
        let message = match e.as_service_error() {
            // The service's message; the full context would repeat the raw response.
            Some(s) => s.message().unwrap_or("no message").to_owned(),
            None => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        };
        let kind = match &e {
            SdkError::TimeoutError(_) => "timeout",
            SdkError::DispatchFailure(d) if d.is_timeout() => "timeout",
            SdkError::DispatchFailure(_) => {
                if message.contains("credentials") || message.contains("identity") {
                    "credentials"
                } else {
                    "dispatch"
                }
            }
            SdkError::ResponseError(_) => "response",
            SdkError::ConstructionFailure(_) => {
                if message.contains("credentials") || message.contains("identity") {
                    "credentials"
                } else {
                    "construction"
                }
            }
            SdkError::ServiceError(s) => match s.err().code() {
                Some(code) => bounded_code(code),
                None => "response",
            },
            _ => "other",
        };
        Self {
            operation,
            kind,
            message,
            outcome_unknown,
        }
    }
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
}

/// Knobs of the SDK clients.
#[derive(Debug, Clone)]
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
        Self {
            base,
            retry,
            timeouts,
            observer,
        }
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
        WorkMail {
            client: Client::from_conf(b.build()),
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
            .map_err(|e| ApiError::from_sdk("ListOrganizations", e))?;
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
            .map_err(|e| ApiError::from_sdk("ListPersonalAccessTokens", e))?;
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
                _ => Err(ApiError {
                    operation: "GetPersonalAccessTokenMetadata",
                    kind: "response",
                    message: format!(
                        "incomplete answer for token {token_id}: id {:?}, owner {:?}",
                        t.personal_access_token_id(),
                        t.user_id()
                    ),
                    outcome_unknown: false,
                }),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(ApiError::from_sdk("GetPersonalAccessTokenMetadata", e)),
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
            .map_err(|e| ApiError::from_sdk("DeletePersonalAccessToken", e))
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
            Err(e) => Err(ApiError::from_sdk("DescribeUser", e)),
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
            .map_err(|e| ApiError::from_sdk("ListUsers", e))?;
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
