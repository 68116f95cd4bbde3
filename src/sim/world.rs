//! The emulator's directory: organizations, users and personal access tokens, how they are
//! written in a scenario file, and the seeded generator that makes realistic ones.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::sts::SimRole;

/// The AWS account the emulator pretends to be: where organizations live unless told
/// otherwise, and the account of every caller that does not use assumed-role credentials.
pub const ACCOUNT_ID: &str = "123456789012";

/// Whether `s` is an AWS account id: twelve ASCII digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Every organization, keyed by organization id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    /// Organizations by id.
    pub orgs: BTreeMap<String, Org>,
}

/// One WorkMail organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    /// `m-` and 32 hex digits.
    pub id: String,
    /// The AWS account the organization belongs to ([`ACCOUNT_ID`] unless told otherwise):
    /// only callers with that account's credentials see it.
    pub account_id: String,
    /// The organization alias.
    pub alias: String,
    /// `Active`, or any other state (which makes most operations fail).
    pub state: String,
    /// The default mail domain, used for generated email addresses.
    pub default_mail_domain: String,
    /// When the organization became usable.
    pub completed: DateTime<Utc>,
    /// The identity-provider configuration; `None` answers `ResourceNotFoundException`.
    pub identity_provider: Option<IdentityProvider>,
    /// Users by user id.
    pub users: BTreeMap<String, User>,
    /// Tokens by token id.
    pub tokens: BTreeMap<String, Token>,
}

/// What `DescribeIdentityProviderConfiguration` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// `IDENTITY_PROVIDER_ONLY` or `IDENTITY_PROVIDER_AND_DIRECTORY`.
    #[serde(default = "default_auth_mode")]
    pub authentication_mode: String,
    /// `ACTIVE` or `INACTIVE`.
    pub pat_status: String,
    /// Token lifetime in days (1..=3653).
    #[serde(default)]
    pub pat_lifetime_days: Option<u32>,
}

fn default_auth_mode() -> String {
    "IDENTITY_PROVIDER_AND_DIRECTORY".to_owned()
}

/// One directory user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The WorkMail user id.
    pub id: String,
    /// The user name.
    pub name: String,
    /// The primary email, when the user has a mailbox.
    pub email: Option<String>,
    /// The display name (anything, including markup).
    pub display_name: Option<String>,
    /// `ENABLED`, `DISABLED` or `DELETED`.
    pub state: String,
    /// When the user was enabled.
    pub enabled_date: Option<DateTime<Utc>>,
    /// When the user was disabled.
    pub disabled_date: Option<DateTime<Utc>>,
    /// The IAM Identity Center user id, when linked.
    pub identity_provider_user_id: Option<String>,
}

/// One personal access token.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token id.
    pub id: String,
    /// The owner's user id (which may no longer be in the directory).
    pub user_id: String,
    /// The token name.
    pub name: String,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When it was last used, if ever.
    pub last_used: Option<DateTime<Utc>>,
    /// When it expires.
    pub expires: DateTime<Utc>,
    /// Its scopes (1..=10).
    pub scopes: Vec<String>,
}

impl Org {
    /// Finds a user by id, user name or email, as `DescribeUser` does.
    pub fn find_user(&self, key: &str) -> Option<&User> {
        self.users.get(key).or_else(|| {
            self.users.values().find(|u| {
                u.name.eq_ignore_ascii_case(key)
                    || u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(key))
            })
        })
    }

    /// The organization's ARN.
    pub fn arn(&self, region: &str) -> String {
        format!(
            "arn:aws:workmail:{region}:{}:organization/{}",
            self.account_id, self.id
        )
    }
}

impl World {
    /// Spreads the organizations over `accounts`, round-robin in id order (the first
    /// organization to the first account). Nothing changes when `accounts` is empty.
    pub fn spread_over_accounts(&mut self, accounts: &[&str]) {
        if accounts.is_empty() {
            return;
        }
        for (i, org) in self.orgs.values_mut().enumerate() {
            org.account_id = accounts[i % accounts.len()].to_owned();
        }
    }
}

// === Scenario files ===

/// A scenario file: exact organizations, users and tokens, for tests that need precise cases.
///
/// Times are RFC 3339 (`2026-01-02T03:04:05Z`) or relative to the scenario's `now`
/// (`now`, `now-3d`, `now+12h`, with humantime durations).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The organizations.
    #[serde(default, rename = "organizations")]
    pub orgs: Vec<ScenarioOrg>,
    /// The IAM roles `AssumeRole` grants (see [`Scenario::roles`]).
    #[serde(default)]
    pub roles: Vec<ScenarioRole>,
}

/// A role in a scenario file: `[[roles]] arn = "arn:aws:iam::210987654321:role/pat-monitor"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRole {
    /// The role's ARN, `arn:aws:iam::ACCOUNT:role/NAME`.
    pub arn: String,
    /// The external id its trust policy requires, if any.
    pub external_id: Option<String>,
}

/// An organization in a scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioOrg {
    /// Organization id; generated from the alias when absent.
    pub id: Option<String>,
    /// The AWS account (12 digits), [`ACCOUNT_ID`] when absent.
    pub account: Option<String>,
    /// Alias.
    pub alias: String,
    /// State, `Active` by default.
    #[serde(default = "active")]
    pub state: String,
    /// Default mail domain, `<alias>.example.com` by default.
    pub default_mail_domain: Option<String>,
    /// Identity-provider configuration; absent means none.
    pub identity_provider: Option<IdentityProvider>,
    /// Users.
    #[serde(default)]
    pub users: Vec<ScenarioUser>,
    /// Tokens.
    #[serde(default)]
    pub tokens: Vec<ScenarioToken>,
}

fn active() -> String {
    "Active".to_owned()
}

/// A user in a scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioUser {
    /// User id.
    pub id: String,
    /// User name.
    pub name: String,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// `ENABLED` (default), `DISABLED` or `DELETED`.
    #[serde(default = "enabled")]
    pub state: String,
    /// When enabled.
    pub enabled_date: Option<String>,
    /// When disabled.
    pub disabled_date: Option<String>,
    /// IAM Identity Center user id.
    pub identity_provider_user_id: Option<String>,
}

fn enabled() -> String {
    "ENABLED".to_owned()
}

/// A token in a scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioToken {
    /// Token id.
    pub id: String,
    /// Owner's user id.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Created.
    pub created: String,
    /// Last used.
    pub last_used: Option<String>,
    /// Expires.
    pub expires: String,
    /// Scopes.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["IMAP".to_owned()]
}

/// A scenario file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file did not parse.
    #[error("invalid scenario: {0}")]
    Parse(String),
    /// A time was neither RFC 3339 nor `now[+-]DURATION`.
    #[error("invalid time {value:?} in {place}: expected RFC 3339 or now[+-]DURATION")]
    Time {
        /// Where.
        place: String,
        /// What.
        value: String,
    },
    /// An organization's `account` is not an account id.
    #[error("invalid account {value:?} of organization {org}: expected 12 digits")]
    Account {
        /// The organization's alias.
        org: String,
        /// What.
        value: String,
    },
    /// A role's ARN is not an IAM role ARN.
    #[error("invalid role ARN {arn:?}: expected arn:aws:iam::ACCOUNT:role/NAME")]
    Role {
        /// What.
        arn: String,
    },
}

impl Scenario {
    /// Parses a scenario from TOML or JSON text (JSON when it starts with `{`).
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))
        } else {
            toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))
        }
    }

    /// Builds the world this scenario describes, with relative times resolved against `now`.
    pub fn build(&self, now: DateTime<Utc>) -> Result<World, ScenarioError> {
        let mut world = World::default();
        for (i, so) in self.orgs.iter().enumerate() {
            let id = so.id.clone().unwrap_or_else(|| org_id_for(&so.alias, i));
            let account_id = match &so.account {
                Some(a) if is_account_id(a) => a.clone(),
                Some(a) => {
                    return Err(ScenarioError::Account {
                        org: so.alias.clone(),
                        value: a.clone(),
                    });
                }
                None => ACCOUNT_ID.to_owned(),
            };
            let mut org = Org {
                id: id.clone(),
                account_id,
                alias: so.alias.clone(),
                state: so.state.clone(),
                default_mail_domain: so
                    .default_mail_domain
                    .clone()
                    .unwrap_or_else(|| format!("{}.example.com", so.alias)),
                completed: now - Duration::days(800),
                identity_provider: so.identity_provider.clone(),
                users: BTreeMap::new(),
                tokens: BTreeMap::new(),
            };
            for u in &so.users {
                let place = |k: &str| format!("organization {} user {} {k}", so.alias, u.id);
                let user = User {
                    id: u.id.clone(),
                    name: u.name.clone(),
                    email: u.email.clone(),
                    display_name: u.display_name.clone(),
                    state: u.state.clone(),
                    enabled_date: opt_time(u.enabled_date.as_deref(), now, &place("enabled_date"))?,
                    disabled_date: opt_time(
                        u.disabled_date.as_deref(),
                        now,
                        &place("disabled_date"),
                    )?,
                    identity_provider_user_id: u.identity_provider_user_id.clone(),
                };
                org.users.insert(user.id.clone(), user);
            }
            for t in &so.tokens {
                let place = |k: &str| format!("organization {} token {} {k}", so.alias, t.id);
                let token = Token {
                    id: t.id.clone(),
                    user_id: t.user_id.clone(),
                    name: t.name.clone(),
                    created: parse_time(&t.created, now, &place("created"))?,
                    last_used: opt_time(t.last_used.as_deref(), now, &place("last_used"))?,
                    expires: parse_time(&t.expires, now, &place("expires"))?,
                    scopes: t.scopes.clone(),
                };
                org.tokens.insert(token.id.clone(), token);
            }
            world.orgs.insert(id, org);
        }
        Ok(world)
    }

    /// The roles this scenario grants, for [`SimConfig::roles`](super::SimConfig::roles).
    pub fn roles(&self) -> Result<HashMap<String, SimRole>, ScenarioError> {
        self.roles
            .iter()
            .map(|r| {
                if super::sts::role_account(&r.arn).is_none() {
                    return Err(ScenarioError::Role { arn: r.arn.clone() });
                }
                let role = SimRole {
                    external_id: r.external_id.clone(),
                };
                Ok((r.arn.clone(), role))
            })
            .collect()
    }
}

fn opt_time(
    value: Option<&str>,
    now: DateTime<Utc>,
    place: &str,
) -> Result<Option<DateTime<Utc>>, ScenarioError> {
    value.map(|v| parse_time(v, now, place)).transpose()
}

/// Parses an RFC 3339 time or `now`, `now-3d`, `now+12h`.
pub fn parse_time(
    value: &str,
    now: DateTime<Utc>,
    place: &str,
) -> Result<DateTime<Utc>, ScenarioError> {
    let err = || ScenarioError::Time {
        place: place.to_owned(),
        value: value.to_owned(),
    };
    let v = value.trim();
    if let Some(rest) = v.strip_prefix("now") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, dur) = match rest.split_at(1) {
            ("+", d) => (1, d),
            ("-", d) => (-1, d),
            _ => return Err(err()),
        };
        let d = humantime::parse_duration(dur.trim()).map_err(|_| err())?;
        let d = Duration::from_std(d).map_err(|_| err())?;
        return Ok(if sign > 0 { now + d } else { now - d });
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| err())
}

/// A deterministic organization id derived from an alias.
pub fn org_id_for(alias: &str, index: usize) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{index}:{alias}").as_bytes());
    format!("m-{}", &hex::encode(digest)[..32])
}

// === The generator ===

/// What the seeded generator makes.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// The seed: the same seed and sizes always give the same world.
    pub seed: u64,
    /// Active organizations to generate.
    pub organizations: usize,
    /// Users per organization.
    pub users_per_org: usize,
    /// Tokens per organization; by default one and a half per user.
    pub tokens_per_org: Option<usize>,
    /// Adds one more organization that is not in the `Active` state.
    pub inactive_organization: bool,
    /// The instant all generated times are relative to.
    pub now: DateTime<Utc>,
}

impl GenSpec {
    /// A spec with the defaults for the given seed and `now`.
    pub fn new(seed: u64, now: DateTime<Utc>) -> Self {
        Self {
            seed,
            organizations: 3,
            users_per_org: 50,
            tokens_per_org: None,
            inactive_organization: true,
            now,
        }
    }
}

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe",
];
const LAST: &[&str] = &[
    "smith", "jones", "garcia", "müller", "dubois", "rossi", "tanaka", "kowalski", "o'brien",
    "nguyen", "silva", "kim", "andersen", "novak", "haddad",
];
const CLIENTS: &[&str] = &[
    "Thunderbird on laptop",
    "iPhone Mail 📱",
    "Outlook – Büro",
    "mutt",
    "Android K-9",
    "printer scan-to-mail",
    "CI notifier",
    "Évolution (maison)",
    "backup sync",
    "メール クライアント",
];
const SCOPES: &[&str] = &[
    "IMAP",
    "SMTP",
    "EWS",
    "EWS.Mail.Read",
    "EWS.Mail.Send",
    "EWS.Calendar",
    "EWS.Contacts",
    "EWS.Tasks",
    "POP3",
    "ActiveSync",
];

/// Generates a realistic world: users in every state, some token owners missing from the
/// directory, tokens expired and expiring within a day, a week, a month or much later, never
/// used or idle for 30, 90, 180+ days or used today, organizations with PATs active, inactive
/// and unconfigured, and (optionally) one organization not in the `Active` state.
///
/// Categories are assigned round-robin, so even a small world shows every one of them; the
/// seed varies everything else.
pub fn generate(spec: &GenSpec) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let now = spec.now;
    let mut world = World::default();
    let total = spec.organizations + usize::from(spec.inactive_organization);
    for o in 0..total {
        let inactive_org = o >= spec.organizations;
        let alias = match o {
            _ if inactive_org => "retired".to_owned(),
            0 => "corp".to_owned(),
            1 => "labs".to_owned(),
            2 => "sales".to_owned(),
            n => format!("branch{n}"),
        };
        let id = format!("m-{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>());
        let identity_provider = match o % 4 {
            _ if inactive_org => None,
            0 => Some(IdentityProvider {
                authentication_mode: "IDENTITY_PROVIDER_AND_DIRECTORY".into(),
                pat_status: "ACTIVE".into(),
                pat_lifetime_days: Some(365),
            }),
            1 => Some(IdentityProvider {
                authentication_mode: "IDENTITY_PROVIDER_ONLY".into(),
                pat_status: "INACTIVE".into(),
                pat_lifetime_days: Some(90),
            }),
            2 => None,
            _ => Some(IdentityProvider {
                authentication_mode: "IDENTITY_PROVIDER_AND_DIRECTORY".into(),
                pat_status: "ACTIVE".into(),
                pat_lifetime_days: Some(180),
            }),
        };
        let domain = format!("{alias}.example.com");
        let mut org = Org {
            id: id.clone(),
            account_id: ACCOUNT_ID.to_owned(),
            alias,
            state: if inactive_org { "Deleting" } else { "Active" }.to_owned(),
            default_mail_domain: domain.clone(),
            completed: now - Duration::days(rng.random_range(400..2000)),
            identity_provider,
            users: BTreeMap::new(),
            tokens: BTreeMap::new(),
        };
        let linked = org.identity_provider.is_some();
        let users_here = if inactive_org {
            spec.users_per_org.min(5)
        } else {
            spec.users_per_org
        };
        let mut user_ids = Vec::with_capacity(users_here);
        for u in 0..users_here {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let name = format!("{}.{}{u}", first, ascii_fold(last));
            let state = match u {
                _ if u % 13 == 5 => "DELETED",
                _ if u % 7 == 3 => "DISABLED",
                _ => "ENABLED",
            };
            let enabled_date = now - Duration::days(rng.random_range(200..1500));
            let disabled_date =
                (state != "ENABLED").then(|| now - Duration::days(rng.random_range(1..120)));
            let display = format!(
                "{} {}",
                capitalise(first),
                capitalise(last).replace("Muller", "Müller")
            );
            let user = User {
                id: uuid_like(&mut rng),
                email: (state != "DELETED").then(|| format!("{name}@{domain}")),
                name,
                display_name: Some(display),
                state: state.to_owned(),
                enabled_date: Some(enabled_date),
                disabled_date,
                identity_provider_user_id: (linked && u % 3 != 2).then(|| uuid_like(&mut rng)),
            };
            user_ids.push(user.id.clone());
            org.users.insert(user.id.clone(), user);
        }
        // Owners that left the directory altogether.
        let ghosts: Vec<String> = (0..users_here.div_ceil(25))
            .map(|_| uuid_like(&mut rng))
            .collect();
        let tokens = if inactive_org {
            users_here
        } else {
            spec.tokens_per_org.unwrap_or(users_here * 3 / 2)
        };
        let lifetime = org
            .identity_provider
            .as_ref()
            .and_then(|p| p.pat_lifetime_days)
            .unwrap_or(365) as i64;
        for t in 0..tokens {
            if user_ids.is_empty() {
                break;
            }
            let owner = if t % 29 == 11 && !ghosts.is_empty() {
                ghosts[t % ghosts.len()].clone()
            } else {
                // Skewed: a few users hold many tokens, most hold one or none.
                let r: f64 = rng.random();
                user_ids[((r * r) * user_ids.len() as f64) as usize % user_ids.len()].clone()
            };
            let secs = |rng: &mut ChaCha8Rng, lo: i64, hi: i64| {
                Duration::seconds(rng.random_range(lo..hi))
            };
            const DAY: i64 = 86_400;
            let expires = match t % 6 {
                0 => now - secs(&mut rng, DAY, 60 * DAY),     // expired
                1 => now + secs(&mut rng, 600, DAY),          // within a day
                2 => now + secs(&mut rng, DAY + 60, 7 * DAY), // within a week
                3 => now + secs(&mut rng, 7 * DAY + 60, 30 * DAY), // within a month
                _ => now + secs(&mut rng, 31 * DAY, lifetime.max(32) * DAY), // long-lived
            };
            let created = expires - Duration::days(lifetime);
            let created = created.min(now - Duration::hours(1));
            let last_used = match (t / 6) % 5 {
                0 => None,
                1 => Some(now - secs(&mut rng, 30 * DAY, 89 * DAY)),
                2 => Some(now - secs(&mut rng, 90 * DAY, 179 * DAY)),
                3 => Some(now - secs(&mut rng, 180 * DAY, 400 * DAY)),
                _ => Some(now - secs(&mut rng, 60, DAY / 2)),
            }
            .map(|u| u.max(created).min(expires).min(now));
            let n_scopes = rng.random_range(1..=SCOPES.len());
            let start = rng.random_range(0..SCOPES.len());
            let mut scopes: Vec<String> = (0..n_scopes)
                .map(|i| SCOPES[(start + i) % SCOPES.len()].to_owned())
                .collect();
            scopes.sort();
            let token = Token {
                id: format!("pat-{:016x}{:08x}", rng.random::<u64>(), t),
                user_id: owner,
                name: CLIENTS[rng.random_range(0..CLIENTS.len())].to_owned(),
                created,
                last_used,
                expires,
                scopes,
            };
            org.tokens.insert(token.id.clone(), token);
        }
        world.orgs.insert(id, org);
    }
    world
}

fn uuid_like(rng: &mut ChaCha8Rng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// User names allow only `[\w.-]`: fold the few non-ASCII letters the name lists use.
fn ascii_fold(s: &str) -> String {
    s.replace('ü', "u").replace('\'', "")
}

/// Midnight UTC of a fixed date: the default `now` of examples and golden tests.
pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}
