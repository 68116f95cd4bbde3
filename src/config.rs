//! Configuration in two stages: a raw serde shape mirroring the TOML file (unknown keys are
//! errors), then a validated [`Config`] of typed values. Every error names the key.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize, Serializer};

use crate::inventory::OwnerState;

/// A configuration file (the main TOML or the web YAML) that cannot be used: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML did not parse, or had unknown keys or wrong types.
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or `<config>`).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// The file (or `<config>`).
        origin: String,
        /// The dotted key, e.g. `scan.page_size` or `cleanup.rules[2].unused_for`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

// === The raw shape ===

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    scan: RawScan,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    organizations: Vec<RawOrg>,
    discovery: Option<RawDiscovery>,
    #[serde(default)]
    cleanup: RawCleanup,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    probe_listen: Option<String>,
    enable_lifecycle: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScan {
    interval: Option<String>,
    page_size: Option<i64>,
    max_concurrency: Option<i64>,
    user_cache_ttl: Option<String>,
    call_timeout: Option<String>,
    max_attempts: Option<i64>,
    retry_mode: Option<String>,
    owner_lookup: Option<String>,
    shard: Option<i64>,
    total_shards: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    expiry_windows: Option<Vec<String>>,
    unused_thresholds: Option<Vec<String>>,
    per_token: Option<bool>,
    user_labels: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    id: String,
    region: Option<String>,
    alias: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
    cleanup: Option<RawOrgCleanup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrgCleanup {
    mode: Option<String>,
    max_deletions_per_run: Option<i64>,
    max_deletions_percent: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    #[serde(default)]
    regions: Vec<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
    #[serde(default)]
    accounts: Vec<RawAccount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    role_arn: String,
    external_id: Option<String>,
    regions: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCleanup {
    mode: Option<String>,
    interval: Option<String>,
    max_deletions_per_run: Option<i64>,
    max_deletions_per_day: Option<i64>,
    max_deletions_percent: Option<f64>,
    warn_before: Option<String>,
    #[serde(default)]
    exclude_users: Vec<String>,
    #[serde(default)]
    exclude_tokens: Vec<String>,
    audit_log: Option<PathBuf>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    expired_for: Option<String>,
    unused_for: Option<String>,
    owner_states: Option<Vec<String>>,
    owner_disabled_for: Option<String>,
    organizations: Option<Vec<String>>,
}

// === The validated configuration ===

/// The validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[scan]`.
    pub scan: ScanConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[[organizations]]`.
    pub organizations: Vec<OrgConfig>,
    /// `[discovery]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryConfig>,
    /// `[cleanup]`.
    pub cleanup: CleanupConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    /// Where `/metrics` and the status page are served.
    pub listen: SocketAddr,
    /// An optional plain-HTTP port serving only `/healthz` and `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_listen: Option<SocketAddr>,
    /// Whether `POST /-/reload` is served (as Prometheus's `--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
}

/// How owners are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerLookup {
    /// Per organization, whichever of `DescribeUser` or `ListUsers` costs fewer calls.
    Auto,
    /// Always `DescribeUser`, through the cache.
    Describe,
    /// Always page `ListUsers`.
    List,
}

/// SDK retry mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryMode {
    /// Exponential backoff with jitter.
    Standard,
    /// Standard plus a client-side rate limiter that slows down when throttled.
    Adaptive,
}

/// `[scan]`.
#[derive(Debug, Clone, Serialize)]
pub struct ScanConfig {
    /// Time between scans of an organization.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// `MaxResults` sent to list operations (1..=100).
    pub page_size: i32,
    /// In-flight API calls per organization.
    pub max_concurrency: usize,
    /// How long a resolved owner is trusted.
    #[serde(serialize_with = "ser_duration")]
    pub user_cache_ttl: Duration,
    /// Timeout of one API call attempt.
    #[serde(serialize_with = "ser_duration")]
    pub call_timeout: Duration,
    /// Attempts per API call, the first included.
    pub max_attempts: u32,
    /// SDK retry mode.
    pub retry_mode: RetryMode,
    /// How owners are resolved.
    pub owner_lookup: OwnerLookup,
    /// This process's shard, `0..total_shards`: it scans, exports and cleans only the
    /// organizations of this shard.
    pub shard: u32,
    /// How many shards the organizations are split into (1: no sharding).
    pub total_shards: u32,
}

impl ScanConfig {
    /// Whether the organization `org_id` belongs to this process's shard.
    pub fn owns(&self, org_id: &str) -> bool {
        shard_of(org_id, self.total_shards) == self.shard
    }

    /// Sets the shard (from the command line), checked as the configuration's keys are.
    pub fn set_shard(&mut self, shard: u32, total_shards: u32) -> Result<(), String> {
        check_shard(shard, total_shards)?;
        self.shard = shard;
        self.total_shards = total_shards;
        Ok(())
    }
}

/// The shard of an organization: the first 8 bytes of the SHA-256 of its id, modulo
/// `total_shards`. Stable across processes, versions and platforms.
pub fn shard_of(org_id: &str, total_shards: u32) -> u32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(org_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(total_shards.max(1))) as u32
}

const MAX_SHARDS: u32 = 1024;

fn check_shard(shard: u32, total_shards: u32) -> Result<(), String> {
    if !(1..=MAX_SHARDS).contains(&total_shards) {
        return Err(format!(
            "total_shards {total_shards} is out of range (allowed 1..={MAX_SHARDS})"
        ));
    }
    if shard >= total_shards {
        return Err(format!(
            "shard {shard} must be below total_shards ({total_shards}; shards count from 0)"
        ));
    }
    Ok(())
}

/// A duration as written in the config (`"7d"`), which is also its metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// As written, e.g. `7d`.
    pub label: String,
    /// Its length.
    pub duration: Duration,
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label)
    }
}

/// A user attribute that may become a label of per-token series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserLabel {
    /// `user_name`.
    UserName,
    /// `email`.
    Email,
    /// `display_name`.
    DisplayName,
}

impl UserLabel {
    /// Every label, in the order the errors list them.
    pub const ALL: [UserLabel; 3] = [
        UserLabel::UserName,
        UserLabel::Email,
        UserLabel::DisplayName,
    ];

    /// The label name (its wire name).
    pub fn label(self) -> &'static str {
        match self {
            UserLabel::UserName => "user_name",
            UserLabel::Email => "email",
            UserLabel::DisplayName => "display_name",
        }
    }
}

impl OwnerLookup {
    /// Every value, in the order the errors list them.
    pub const ALL: [OwnerLookup; 3] = [OwnerLookup::Auto, OwnerLookup::Describe, OwnerLookup::List];
}

impl RetryMode {
    /// Every value, in the order the errors list them.
    pub const ALL: [RetryMode; 2] = [RetryMode::Standard, RetryMode::Adaptive];
}

/// `[metrics]`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    /// Windows of `workmail_pat_tokens_expiring`.
    pub expiry_windows: Vec<Window>,
    /// Thresholds of `workmail_pat_tokens_unused`.
    pub unused_thresholds: Vec<Window>,
    /// Whether per-token series are published.
    pub per_token: bool,
    /// User attributes added as labels of per-token series.
    pub user_labels: Vec<UserLabel>,
}

/// One configured organization.
#[derive(Debug, Clone, Serialize)]
pub struct OrgConfig {
    /// The organization id.
    pub id: String,
    /// Its region; the default region of the AWS chain when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The `organization` label; the id when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// A role to assume for this organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id of that role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Cleanup overrides.
    pub cleanup: OrgCleanup,
}

/// Per-organization overrides of the cleanup mode and limits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrgCleanup {
    /// Overrides `cleanup.mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<CleanupMode>,
    /// Overrides `cleanup.max_deletions_per_run` for this organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deletions_per_run: Option<u32>,
    /// Overrides `cleanup.max_deletions_percent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deletions_percent: Option<f64>,
}

/// `[discovery]`.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryConfig {
    /// Regions to call `ListOrganizations` in.
    pub regions: Vec<String>,
    /// A role to assume for discovery and for the organizations found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Its external id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// `[[discovery.accounts]]`: more accounts, each discovered and scanned with its role.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<DiscoveryAccount>,
}

/// `[[discovery.accounts]]`: an AWS account whose organizations are found (and scanned) with
/// its own role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryAccount {
    /// The role to assume in that account.
    pub role_arn: String,
    /// Its external id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Regions to call `ListOrganizations` in (default: `discovery.regions`).
    pub regions: Vec<String>,
}

impl DiscoveryAccount {
    /// The account id, from the role's ARN.
    pub fn account_id(&self) -> &str {
        account_of(&self.role_arn).unwrap_or_default()
    }
}

/// Where discovery looks: a role (or the process's own credentials), its account when
/// known, and the regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverySource<'a> {
    /// The role to assume and its external id; `None`: the process's own credentials.
    pub role: Option<(&'a str, Option<&'a str>)>,
    /// The account id (from the role's ARN; unknown for the process's own credentials).
    pub account_id: Option<&'a str>,
    /// The regions.
    pub regions: &'a [String],
}

impl DiscoveryConfig {
    /// Every place discovery looks: `discovery.regions` with `discovery.role_arn` (when
    /// regions are listed), then each `[[discovery.accounts]]` entry.
    pub fn sources(&self) -> Vec<DiscoverySource<'_>> {
        let mut out = Vec::new();
        if !self.regions.is_empty() {
            let role = self.role_arn.as_deref();
            out.push(DiscoverySource {
                role: role.map(|r| (r, self.external_id.as_deref())),
                account_id: role.and_then(account_of),
                regions: &self.regions,
            });
        }
        for a in &self.accounts {
            out.push(DiscoverySource {
                role: Some((a.role_arn.as_str(), a.external_id.as_deref())),
                account_id: account_of(&a.role_arn),
                regions: &a.regions,
            });
        }
        out
    }
}

/// The account id in a role ARN (`arn:aws:iam::123456789012:role/NAME`).
pub fn account_of(role_arn: &str) -> Option<&str> {
    let mut parts = role_arn.split(':');
    let account = parts.nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// Whether cleanup runs, and whether it deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CleanupMode {
    /// No cleanup.
    Off,
    /// Decide and report, delete nothing.
    DryRun,
    /// Delete.
    Enforce,
}

impl std::fmt::Display for CleanupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CleanupMode {
    /// Every mode, in the order the errors list them.
    pub const ALL: [CleanupMode; 3] = [CleanupMode::Off, CleanupMode::DryRun, CleanupMode::Enforce];

    /// As written in the config and in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupMode::Off => "off",
            CleanupMode::DryRun => "dry-run",
            CleanupMode::Enforce => "enforce",
        }
    }
}

/// `[cleanup]`.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupConfig {
    /// The default mode.
    pub mode: CleanupMode,
    /// Time between cleanup runs.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Deletions per run across all organizations.
    pub max_deletions_per_run: u32,
    /// Deletions in any 24 hours across all organizations and runs, counted from the ledger.
    pub max_deletions_per_day: u32,
    /// Above this share of an organization's tokens, nothing is deleted there.
    pub max_deletions_percent: f64,
    /// How long before eligibility a token is reported as pending.
    #[serde(serialize_with = "ser_duration")]
    pub warn_before: Duration,
    /// User exclusions.
    pub exclude_users: Globs,
    /// Token-name exclusions.
    pub exclude_tokens: Globs,
    /// The JSON-lines audit log (the cleanup ledger); required when any organization's
    /// mode is `enforce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<PathBuf>,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// A rule of `cleanup.rules`, by position: what decisions carry instead of the rule itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(usize);

impl CleanupConfig {
    /// Every rule with its id, in configuration order.
    pub fn rules(&self) -> impl Iterator<Item = (RuleId, &Rule)> {
        self.rules.iter().enumerate().map(|(i, r)| (RuleId(i), r))
    }

    /// The rule an id names. Ids come from [`CleanupConfig::rules`] of the same
    /// configuration.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.0]
    }
}

/// A list of glob patterns and their compiled set.
#[derive(Debug, Clone)]
pub struct Globs {
    /// As written.
    pub patterns: Vec<String>,
    set: GlobSet,
}

impl Globs {
    /// Whether no pattern is configured.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern matches `s`.
    pub fn is_match(&self, s: &str) -> bool {
        !self.patterns.is_empty() && self.set.is_match(s)
    }

    /// Compiles patterns; the error names the pattern.
    pub fn new(patterns: &[String]) -> Result<Self, (usize, String)> {
        let mut b = GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            let glob = globset::GlobBuilder::new(p)
                .case_insensitive(true)
                .literal_separator(false)
                .build()
                .map_err(|e| (i, e.to_string()))?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| (0, e.to_string()))?;
        Ok(Self {
            patterns: patterns.to_vec(),
            set,
        })
    }
}

impl Default for Globs {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            set: GlobSet::empty(),
        }
    }
}

impl Serialize for Globs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.patterns.serialize(s)
    }
}

/// One cleanup rule: a token matches when every condition it sets holds.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// The rule name (a metric and audit label).
    pub name: String,
    /// `ExpiresTime` at least this long in the past.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub expired_for: Option<Duration>,
    /// Last used (or, never used, created) at least this long ago.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub unused_for: Option<Duration>,
    /// The owner is in one of these states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_states: Option<Vec<OwnerState>>,
    /// The owner's `DisabledDate` is at least this long ago.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub owner_disabled_for: Option<Duration>,
    /// Organization ids the rule applies to (configured aliases are resolved to ids when
    /// the config is read, so a discovered organization with the same alias is never
    /// armed by mistake); all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizations: Option<Vec<String>>,
}

impl Rule {
    /// Whether the rule applies to an organization.
    pub fn applies_to(&self, org_id: &str) -> bool {
        self.organizations
            .as_ref()
            .is_none_or(|orgs| orgs.iter().any(|o| o == org_id))
    }
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// A duration the way people write them in the config (`180d`, `6h`, `90s`), in a form that
/// can't be misread: minutes are always `min`, never `m` (which reads like months), and a
/// duration that is no whole number of one unit is spelled out (`1d 12h 30min`). Whatever it
/// prints parses back to the same duration.
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)];
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        if secs == 0 {
            return "0s".to_owned();
        }
        if let Some((unit, n)) = UNITS.iter().find(|(_, n)| secs.is_multiple_of(*n)) {
            return format!("{}{unit}", secs / n);
        }
    }
    let mut parts = Vec::new();
    let mut rest = secs;
    for (unit, n) in UNITS {
        if rest >= n {
            parts.push(format!("{}{unit}", rest / n));
            rest %= n;
        }
    }
    for (unit, n) in [("ms", 1_000_000), ("us", 1_000), ("ns", 1)] {
        let v = nanos / n % 1_000;
        if v > 0 {
            parts.push(format!("{v}{unit}"));
        }
    }
    parts.join(" ")
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        Validator { origin }.config(raw)
    }

    /// The effective configuration, as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The cleanup mode of an organization.
    pub fn cleanup_mode(&self, org_id: &str) -> CleanupMode {
        self.org(org_id)
            .and_then(|o| o.cleanup.mode)
            .unwrap_or(self.cleanup.mode)
    }

    /// Whether any organization can have cleanup runs.
    pub fn cleanup_enabled(&self) -> bool {
        self.cleanup.mode != CleanupMode::Off
            || self
                .organizations
                .iter()
                .any(|o| o.cleanup.mode.is_some_and(|m| m != CleanupMode::Off))
    }

    /// The configured entry of an organization, if any.
    pub fn org(&self, org_id: &str) -> Option<&OrgConfig> {
        self.organizations.iter().find(|o| o.id == org_id)
    }
}

struct Validator<'a> {
    origin: &'a str,
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn duration(&self, key: &str, value: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(value.trim()).map_err(|e| {
            self.err(
                key,
                format!("invalid duration {value:?}: {e} (use e.g. \"90s\", \"10min\", \"7d\")"),
            )
        })?;
        // Far beyond any token's life, and small enough that date arithmetic never overflows.
        if d > MAX_DURATION {
            return Err(self.err(key, format!("{value:?} is longer than 100 years")));
        }
        Ok(d)
    }

    /// A duration of a cleanup rule or of `cleanup.warn_before`: at least one day, and never
    /// in minutes, which read like months (`6m`).
    fn rule_duration(&self, key: &str, value: &str) -> Result<Duration, ConfigError> {
        let units = regex::Regex::new(r"[0-9]\s*([A-Za-z]+)").ok();
        let minutes = units
            .iter()
            .flat_map(|re| re.captures_iter(value))
            .any(|c| {
                matches!(
                    c.get(1).map(|m| m.as_str()),
                    Some("m" | "min" | "mins" | "minute" | "minutes")
                )
            });
        if minutes {
            return Err(self.err(
                key,
                format!(
                    "{value:?} is in minutes (`m` and `min` mean minutes, not months); rule durations count days, e.g. \"180d\""
                ),
            ));
        }
        let d = self.duration(key, value)?;
        if d < Duration::from_secs(86_400) {
            return Err(self.err(
                key,
                format!("{value:?} is shorter than one day; rule durations count days, e.g. \"1d\" or \"90d\""),
            ));
        }
        Ok(d)
    }

    fn opt_duration(
        &self,
        key: &str,
        value: Option<&String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        value.map_or(Ok(default), |v| self.duration(key, v))
    }

    fn int<T: TryFrom<i64>>(
        &self,
        key: &str,
        value: Option<i64>,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<T, ConfigError> {
        let v = value.unwrap_or(default);
        if !range.contains(&v) {
            return Err(self.err(
                key,
                format!(
                    "{v} is out of range (allowed {}..={})",
                    range.start(),
                    range.end()
                ),
            ));
        }
        T::try_from(v).map_err(|_| self.err(key, format!("{v} is out of range")))
    }

    fn windows(
        &self,
        key: &str,
        values: Option<Vec<String>>,
        default: &[&str],
    ) -> Result<Vec<Window>, ConfigError> {
        let values = values.unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect());
        let mut out: Vec<Window> = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let duration = self.duration(&k, v)?;
            if duration.is_zero() {
                return Err(self.err(k, format!("{v:?} must be longer than zero")));
            }
            if out.iter().any(|w| w.label == v.trim()) {
                return Err(self.err(k, format!("{v:?} is listed twice")));
            }
            out.push(Window {
                label: v.trim().to_owned(),
                duration,
            });
        }
        Ok(out)
    }

    fn percent(&self, key: &str, v: f64) -> Result<f64, ConfigError> {
        if !(0.0..=100.0).contains(&v) || v.is_nan() {
            return Err(self.err(key, format!("{v} is not a percentage (0..=100)")));
        }
        Ok(v)
    }

    fn mode(&self, key: &str, v: &str) -> Result<CleanupMode, ConfigError> {
        self.variant(key, v, "mode", &CleanupMode::ALL)
    }

    /// A value of a closed set, by the wire names serde derives for it; the error lists
    /// them, e.g. `unknown mode "yolo" (expected "off", "dry-run" or "enforce")`.
    fn variant<T>(&self, key: &str, v: &str, what: &str, all: &[T]) -> Result<T, ConfigError>
    where
        T: serde::de::DeserializeOwned + Serialize,
    {
        use serde::de::IntoDeserializer as _;
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            v.into_deserializer();
        T::deserialize(de).map_err(|_| {
            let names: Vec<String> = all
                .iter()
                .filter_map(|x| serde_json::to_value(x).ok())
                .filter_map(|x| x.as_str().map(|s| format!("{s:?}")))
                .collect();
            let expected = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                Some((last, _)) => last.clone(),
                None => String::new(),
            };
            self.err(key, format!("unknown {what} {v:?} (expected {expected})"))
        })
    }

    fn addr(&self, key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
        v.parse().map_err(|_| {
            self.err(
                key,
                format!("{v:?} is not an address:port (e.g. \"0.0.0.0:9795\")"),
            )
        })
    }

    fn region(&self, key: &str, v: &str) -> Result<String, ConfigError> {
        let ok = !v.is_empty()
            && v.len() <= 32
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(v.to_owned())
        } else {
            Err(self.err(
                key,
                format!("{v:?} is not an AWS region (e.g. \"us-east-1\")"),
            ))
        }
    }

    fn config(&self, raw: Raw) -> Result<Config, ConfigError> {
        let server = self.server(&raw.server)?;
        let scan = self.scan(&raw.scan)?;
        let metrics = self.metrics(raw.metrics)?;
        let organizations = self.organizations(raw.organizations)?;
        let discovery = raw.discovery.map(|d| self.discovery(d)).transpose()?;
        if organizations.is_empty() && discovery.is_none() {
            return Err(self.err(
                "organizations",
                "no organizations: add [[organizations]] entries or a [discovery] section",
            ));
        }
        let cleanup = self.cleanup(raw.cleanup, &organizations)?;
        Ok(Config {
            server,
            scan,
            metrics,
            organizations,
            discovery,
            cleanup,
        })
    }

    fn server(&self, raw: &RawServer) -> Result<ServerConfig, ConfigError> {
        Ok(ServerConfig {
            listen: self.addr(
                "server.listen",
                raw.listen.as_deref().unwrap_or("0.0.0.0:9795"),
            )?,
            probe_listen: raw
                .probe_listen
                .as_deref()
                .map(|v| self.addr("server.probe_listen", v))
                .transpose()?,
            enable_lifecycle: raw.enable_lifecycle.unwrap_or(false),
        })
    }

    fn scan(&self, s: &RawScan) -> Result<ScanConfig, ConfigError> {
        let interval = self.opt_duration("scan.interval", s.interval.as_ref(), mins(10))?;
        if interval < Duration::from_secs(1) {
            return Err(self.err("scan.interval", "must be at least 1s"));
        }
        let call_timeout =
            self.opt_duration("scan.call_timeout", s.call_timeout.as_ref(), secs(20))?;
        if call_timeout < Duration::from_millis(10) || call_timeout > Duration::from_secs(600) {
            return Err(self.err("scan.call_timeout", "must be between 10ms and 10m"));
        }
        let max = i64::from(MAX_SHARDS);
        let total_shards = self.int("scan.total_shards", s.total_shards, 1, 1..=max)?;
        let shard = self.int("scan.shard", s.shard, 0, 0..=max)?;
        check_shard(shard, total_shards).map_err(|m| self.err("scan.shard", m))?;
        Ok(ScanConfig {
            interval,
            shard,
            total_shards,
            page_size: self.int("scan.page_size", s.page_size, 100, 1..=100)?,
            max_concurrency: self.int("scan.max_concurrency", s.max_concurrency, 8, 1..=256)?,
            user_cache_ttl: self.opt_duration(
                "scan.user_cache_ttl",
                s.user_cache_ttl.as_ref(),
                mins(360),
            )?,
            call_timeout,
            max_attempts: self.int("scan.max_attempts", s.max_attempts, 5, 1..=20)?,
            retry_mode: self.variant(
                "scan.retry_mode",
                s.retry_mode.as_deref().unwrap_or("adaptive"),
                "mode",
                &RetryMode::ALL,
            )?,
            owner_lookup: self.variant(
                "scan.owner_lookup",
                s.owner_lookup.as_deref().unwrap_or("auto"),
                "value",
                &OwnerLookup::ALL,
            )?,
        })
    }

    fn metrics(&self, m: RawMetrics) -> Result<MetricsConfig, ConfigError> {
        let mut user_labels = Vec::new();
        for (i, l) in m
            .user_labels
            .unwrap_or_else(|| vec!["user_name".to_owned()])
            .iter()
            .enumerate()
        {
            let key = format!("metrics.user_labels[{i}]");
            let label: UserLabel = self.variant(&key, l, "label", &UserLabel::ALL)?;
            if user_labels.contains(&label) {
                return Err(self.err(key, format!("{l:?} is listed twice")));
            }
            user_labels.push(label);
        }
        Ok(MetricsConfig {
            expiry_windows: self.windows(
                "metrics.expiry_windows",
                m.expiry_windows,
                &["1d", "7d", "30d"],
            )?,
            unused_thresholds: self.windows(
                "metrics.unused_thresholds",
                m.unused_thresholds,
                &["30d", "90d"],
            )?,
            per_token: m.per_token.unwrap_or(true),
            user_labels,
        })
    }

    fn organizations(&self, raw: Vec<RawOrg>) -> Result<Vec<OrgConfig>, ConfigError> {
        let mut organizations = Vec::new();
        let mut seen_ids = BTreeSet::new();
        let mut seen_aliases = BTreeSet::new();
        for (i, o) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("organizations[{i}].{k}");
            if !full_match("^m-[0-9a-f]{32}$", &o.id) {
                return Err(self.err(
                    key("id"),
                    format!(
                        "{:?} is not a WorkMail organization id (m- and 32 lower-case hex digits)",
                        o.id
                    ),
                ));
            }
            if !seen_ids.insert(o.id.clone()) {
                return Err(self.err(key("id"), format!("{:?} is configured twice", o.id)));
            }
            if let Some(alias) = &o.alias {
                if alias.is_empty() || alias.chars().count() > 128 {
                    return Err(self.err(key("alias"), "must be 1 to 128 characters"));
                }
                if !seen_aliases.insert(alias.clone()) {
                    return Err(self.err(key("alias"), format!("{alias:?} is used twice")));
                }
            }
            let region = o
                .region
                .as_deref()
                .map(|r| self.region(&key("region"), r))
                .transpose()?;
            if let Some(arn) = &o.role_arn {
                self.role_arn(&key("role_arn"), arn)?;
            }
            if o.external_id.is_some() && o.role_arn.is_none() {
                return Err(self.err(key("external_id"), "is set but role_arn is not"));
            }
            let c = o.cleanup.unwrap_or_default();
            let cleanup = OrgCleanup {
                mode: c
                    .mode
                    .as_deref()
                    .map(|m| self.mode(&key("cleanup.mode"), m))
                    .transpose()?,
                max_deletions_per_run: c
                    .max_deletions_per_run
                    .map(|v| {
                        self.int(
                            &key("cleanup.max_deletions_per_run"),
                            Some(v),
                            0,
                            0..=100_000,
                        )
                    })
                    .transpose()?,
                max_deletions_percent: c
                    .max_deletions_percent
                    .map(|v| self.percent(&key("cleanup.max_deletions_percent"), v))
                    .transpose()?,
            };
            organizations.push(OrgConfig {
                id: o.id,
                region,
                alias: o.alias,
                role_arn: o.role_arn,
                external_id: o.external_id,
                cleanup,
            });
        }
        Ok(organizations)
    }

    fn discovery(&self, d: RawDiscovery) -> Result<DiscoveryConfig, ConfigError> {
        if d.regions.is_empty() && d.accounts.is_empty() {
            return Err(self.err(
                "discovery.regions",
                "must list at least one region (or add [[discovery.accounts]])",
            ));
        }
        let regions = self.regions("discovery.regions", &d.regions)?;
        if let Some(arn) = &d.role_arn {
            self.role_arn("discovery.role_arn", arn)?;
        }
        if d.external_id.is_some() && d.role_arn.is_none() {
            return Err(self.err("discovery.external_id", "is set but role_arn is not"));
        }
        if d.regions.is_empty() && d.role_arn.is_some() {
            return Err(self.err(
                "discovery.role_arn",
                "is set but discovery.regions is empty, so it is never used",
            ));
        }
        let mut accounts: Vec<DiscoveryAccount> = Vec::new();
        for (i, a) in d.accounts.into_iter().enumerate() {
            let key = format!("discovery.accounts[{i}]");
            self.role_arn(&format!("{key}.role_arn"), &a.role_arn)?;
            let twice = accounts.iter().any(|b| b.role_arn == a.role_arn)
                || d.role_arn.as_deref() == Some(a.role_arn.as_str());
            if twice {
                return Err(self.err(
                    format!("{key}.role_arn"),
                    format!("{:?} is listed twice", a.role_arn),
                ));
            }
            let own = match &a.regions {
                Some(r) if r.is_empty() => {
                    return Err(self.err(
                        format!("{key}.regions"),
                        "must list at least one region (or leave it out for discovery.regions)",
                    ));
                }
                Some(r) => self.regions(&format!("{key}.regions"), r)?,
                None if regions.is_empty() => {
                    return Err(self.err(
                        format!("{key}.regions"),
                        "is missing, and there are no discovery.regions to take",
                    ));
                }
                None => regions.clone(),
            };
            accounts.push(DiscoveryAccount {
                role_arn: a.role_arn,
                external_id: a.external_id,
                regions: own,
            });
        }
        Ok(DiscoveryConfig {
            regions,
            role_arn: d.role_arn,
            external_id: d.external_id,
            accounts,
        })
    }

    fn regions(&self, key: &str, raw: &[String]) -> Result<Vec<String>, ConfigError> {
        let mut regions = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let r = self.region(&format!("{key}[{i}]"), r)?;
            if regions.contains(&r) {
                return Err(self.err(format!("{key}[{i}]"), format!("{r:?} is listed twice")));
            }
            regions.push(r);
        }
        Ok(regions)
    }

    fn role_arn(&self, key: &str, arn: &str) -> Result<(), ConfigError> {
        if full_match(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn) {
            Ok(())
        } else {
            Err(self.err(
                key,
                format!("{arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"),
            ))
        }
    }

    fn cleanup(&self, c: RawCleanup, orgs: &[OrgConfig]) -> Result<CleanupConfig, ConfigError> {
        let mode = self.mode("cleanup.mode", c.mode.as_deref().unwrap_or("off"))?;
        let interval = self.opt_duration("cleanup.interval", c.interval.as_ref(), mins(24 * 60))?;
        if interval < Duration::from_secs(1) {
            return Err(self.err("cleanup.interval", "must be at least 1s"));
        }
        let globs = |key: &str, patterns: &[String]| {
            Globs::new(patterns).map_err(|(i, e)| {
                self.err(
                    format!("{key}[{i}]"),
                    format!(
                        "invalid glob {:?}: {e}",
                        patterns.get(i).cloned().unwrap_or_default()
                    ),
                )
            })
        };
        let mut rules: Vec<Rule> = Vec::new();
        for (i, r) in c.rules.into_iter().enumerate() {
            let key = |k: &str| format!("cleanup.rules[{i}].{k}");
            let valid_name = !r.name.is_empty()
                && r.name.len() <= 64
                && r.name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !valid_name {
                return Err(self.err(
                    key("name"),
                    format!("{:?} must be 1 to 64 characters of [A-Za-z0-9_-]", r.name),
                ));
            }
            if rules.iter().any(|x| x.name == r.name) {
                return Err(self.err(key("name"), format!("{:?} is used twice", r.name)));
            }
            let dur = |k: &str, v: &Option<String>| {
                v.as_ref()
                    .map(|v| self.rule_duration(&key(k), v))
                    .transpose()
            };
            let owner_states = match r.owner_states {
                Some(states) => {
                    if states.is_empty() {
                        return Err(self.err(key("owner_states"), "must not be empty"));
                    }
                    let mut out = Vec::new();
                    for (j, s) in states.iter().enumerate() {
                        // States are matched whatever their case, as the API's are uppercase.
                        let st: OwnerState = self.variant(
                            &format!("cleanup.rules[{i}].owner_states[{j}]"),
                            &s.to_ascii_uppercase(),
                            "state",
                            &OwnerState::ALL,
                        )?;
                        out.push(st);
                    }
                    Some(out)
                }
                None => None,
            };
            let rule = Rule {
                name: r.name,
                expired_for: dur("expired_for", &r.expired_for)?,
                unused_for: dur("unused_for", &r.unused_for)?,
                owner_states,
                owner_disabled_for: dur("owner_disabled_for", &r.owner_disabled_for)?,
                organizations: r.organizations,
            };
            if rule.expired_for.is_none()
                && rule.unused_for.is_none()
                && rule.owner_states.is_none()
                && rule.owner_disabled_for.is_none()
            {
                return Err(self.err(
                    format!("cleanup.rules[{i}]"),
                    "has no condition: set expired_for, unused_for, owner_states or owner_disabled_for",
                ));
            }
            let mut rule = rule;
            if let Some(list) = &rule.organizations {
                let mut ids = Vec::new();
                for (j, o) in list.iter().enumerate() {
                    let id = match orgs.iter().find(|c| c.alias.as_deref() == Some(o.as_str())) {
                        Some(c) => c.id.clone(),
                        None if full_match("^m-[0-9a-f]{32}$", o) => o.clone(),
                        None => {
                            return Err(self.err(
                                format!("cleanup.rules[{i}].organizations[{j}]"),
                                format!(
                                    "{o:?} is neither a configured alias nor an organization id"
                                ),
                            ));
                        }
                    };
                    ids.push(id);
                }
                rule.organizations = Some(ids);
            }
            rules.push(rule);
        }
        if let Some(o) = orgs
            .iter()
            .find(|o| o.cleanup.mode.is_some_and(|m| m != CleanupMode::Off))
            && rules.is_empty()
        {
            return Err(self.err(
                "cleanup.rules",
                format!(
                    "organization {} sets cleanup.mode {:?} but no rules are configured",
                    o.alias.as_deref().unwrap_or(&o.id),
                    o.cleanup.mode.map_or("off", CleanupMode::as_str)
                ),
            ));
        }
        if mode != CleanupMode::Off && rules.is_empty() {
            return Err(self.err(
                "cleanup.rules",
                format!(
                    "cleanup.mode is {:?} but no rules are configured",
                    mode.as_str()
                ),
            ));
        }
        if c.audit_log.is_none() {
            let armed = orgs
                .iter()
                .find(|o| o.cleanup.mode == Some(CleanupMode::Enforce));
            let why = match armed {
                _ if mode == CleanupMode::Enforce => Some("cleanup.mode is \"enforce\"".to_owned()),
                Some(o) => Some(format!(
                    "organization {} sets cleanup.mode \"enforce\"",
                    o.alias.as_deref().unwrap_or(&o.id)
                )),
                None => None,
            };
            if let Some(why) = why {
                return Err(self.err(
                    "cleanup.audit_log",
                    format!(
                        "is required: {why}, and every deletion is recorded in the ledger before it is made (set e.g. audit_log = \"/var/lib/workmail-pat-monitor/ledger.jsonl\")"
                    ),
                ));
            }
        }
        Ok(CleanupConfig {
            mode,
            interval,
            max_deletions_per_run: self.int(
                "cleanup.max_deletions_per_run",
                c.max_deletions_per_run,
                25,
                0..=100_000,
            )?,
            max_deletions_per_day: self.int(
                "cleanup.max_deletions_per_day",
                c.max_deletions_per_day,
                100,
                0..=1_000_000,
            )?,
            max_deletions_percent: self.percent(
                "cleanup.max_deletions_percent",
                c.max_deletions_percent.unwrap_or(10.0),
            )?,
            warn_before: match &c.warn_before {
                Some(v) => self.rule_duration("cleanup.warn_before", v)?,
                None => mins(7 * 24 * 60),
            },
            exclude_users: globs("cleanup.exclude_users", &c.exclude_users)?,
            exclude_tokens: globs("cleanup.exclude_tokens", &c.exclude_tokens)?,
            audit_log: c.audit_log,
            rules,
        })
    }
}

/// The longest duration any key accepts.
const MAX_DURATION: Duration = Duration::from_secs(100 * 366 * 86_400);

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Whether `s` matches `pattern` as a whole (config validation only; not a hot path).
fn full_match(pattern: &str, s: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(s))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEYS: &[(&str, &str)] = &[
        ("server", "listen"),
        ("server", "probe_listen"),
        ("scan", "interval"),
        ("scan", "page_size"),
        ("scan", "max_concurrency"),
        ("scan", "user_cache_ttl"),
        ("scan", "call_timeout"),
        ("scan", "max_attempts"),
        ("scan", "retry_mode"),
        ("scan", "owner_lookup"),
        ("scan", "shard"),
        ("scan", "total_shards"),
        ("metrics", "expiry_windows"),
        ("metrics", "unused_thresholds"),
        ("metrics", "per_token"),
        ("metrics", "user_labels"),
        ("cleanup", "mode"),
        ("cleanup", "interval"),
        ("cleanup", "max_deletions_per_run"),
        ("cleanup", "max_deletions_percent"),
        ("cleanup", "warn_before"),
        ("cleanup", "exclude_users"),
        ("cleanup", "exclude_tokens"),
        ("discovery", "regions"),
        ("discovery", "role_arn"),
        ("scan", "bogus"),
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?[0-9]{1,12}",
            "-?[0-9]{1,4}\\.[0-9]{1,3}",
            Just("true".to_owned()),
            "\"[0-9]{0,4}(ms|s|m|h|d|x|)\"",
            "\"[a-z_:.*\\[\\]0-9-]{0,12}\"",
            "\\[(\"[0-9]{1,3}[smhd]\", ){0,3}\\]",
            "\\[(\"[a-z_*\\[]{0,6}\", ){0,3}\\]",
        ]
    }

    proptest! {
        /// Whatever the values, loading never panics, and every error names its origin.
        #[test]
        fn the_loader_never_panics_and_errors_name_the_file(
            entries in proptest::collection::vec((0..KEYS.len(), value()), 0..12),
            with_org in any::<bool>(),
            rules in proptest::collection::vec(("[a-z -]{0,8}", "(expired_for|unused_for|owner_disabled_for)", "\"[0-9]{0,3}[dhx]\""), 0..3),
        ) {
            let mut by_section: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
            for (i, v) in &entries {
                let (section, key) = KEYS[*i];
                by_section.entry(section).or_default().push(format!("{key} = {v}"));
            }
            let mut text = String::new();
            for (section, lines) in &by_section {
                let mut seen = std::collections::HashSet::new();
                text.push_str(&format!("[{section}]\n"));
                for l in lines {
                    // Duplicate keys are a TOML error of their own; keep the first.
                    if seen.insert(l.split(' ').next().unwrap_or_default().to_owned()) {
                        text.push_str(l);
                        text.push('\n');
                    }
                }
            }
            if with_org {
                text.push_str("[[organizations]]\nid = \"m-00000000000000000000000000000001\"\n");
            }
            for (name, cond, v) in rules {
                text.push_str(&format!("[[cleanup.rules]]\nname = {name:?}\n{cond} = {v}\n"));
            }
            match Config::parse(&text, "t.toml") {
                Ok(c) => {
                    prop_assert!(c.scan.page_size >= 1 && c.scan.page_size <= 100);
                    prop_assert!(c.scan.interval >= Duration::from_secs(1));
                    let _ = c.to_toml();
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.starts_with("t.toml: "), "{}", msg);
                    prop_assert!(msg.len() > "t.toml: ".len());
                }
            }
        }

        /// Arbitrary text never panics the loader.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = Config::parse(&text, "t.toml");
        }
    }

    #[test]
    fn the_effective_config_round_trips() {
        let text = std::fs::read_to_string("config/example.toml").unwrap();
        let c = Config::parse(&text, "example").unwrap();
        let again = Config::parse(&c.to_toml(), "effective").unwrap();
        assert_eq!(c.to_toml(), again.to_toml());
    }

    #[test]
    fn an_organization_keeps_its_shard_across_versions() {
        // Moving an organization to another shard would have two processes scan (and
        // clean) it during a rollout: these values are part of the contract. Computed
        // independently: Python's hashlib.sha256, first 8 bytes big-endian, modulo M.
        for (id, in_5, in_7) in [
            ("m-00000000000000000000000000000001", 2, 4),
            ("m-00000000000000000000000000000002", 0, 5),
            ("m-33bc8184caf195be3639606b23d517ca", 4, 1),
            ("m-30ee1f4413c8fc4750f1df3cd836f9ff", 1, 1),
        ] {
            assert_eq!(shard_of(id, 5), in_5, "{id}");
            assert_eq!(shard_of(id, 7), in_7, "{id}");
            assert_eq!(shard_of(id, 1), 0, "{id}");
        }
    }
}
