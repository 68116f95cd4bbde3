//! The inventory: what a complete scan of an organization found, in the crate's own types
//! (no SDK types), shared by metrics, policy, cleanup, the report and the status page.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The state of a token's owner; `Unknown` when the owner is no longer in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OwnerState {
    /// Registered to WorkMail.
    Enabled,
    /// Deregistered.
    Disabled,
    /// Deleted.
    Deleted,
    /// Not in the directory (`EntityNotFoundException`), or a state this version does not know.
    Unknown,
}

impl OwnerState {
    /// Every state, in label order.
    pub const ALL: [OwnerState; 4] = [
        OwnerState::Enabled,
        OwnerState::Disabled,
        OwnerState::Deleted,
        OwnerState::Unknown,
    ];

    /// As the API and the metric label write it.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerState::Enabled => "ENABLED",
            OwnerState::Disabled => "DISABLED",
            OwnerState::Deleted => "DELETED",
            OwnerState::Unknown => "UNKNOWN",
        }
    }

    /// Parses a state name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for OwnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's owner as `DescribeUser` (or `ListUsers`) describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// The WorkMail user id.
    pub user_id: String,
    /// The user name.
    pub name: Option<String>,
    /// The primary email.
    pub email: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The state.
    pub state: OwnerState,
    /// When the user was disabled.
    pub disabled_date: Option<DateTime<Utc>>,
    /// The IAM Identity Center user id, when linked.
    pub identity_provider_user_id: Option<String>,
    /// Whether `state` is known: reported by the service, or `Unknown` because the user is
    /// confirmed absent from the directory. `false` when the service sent no state or one
    /// this version does not know (then `state` is `Unknown` too, and no owner rule acts).
    #[serde(default = "known")]
    pub state_known: bool,
}

fn known() -> bool {
    true
}

impl Owner {
    /// The owner of a token whose user is no longer in the directory.
    pub fn unknown(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            name: None,
            email: None,
            display_name: None,
            state: OwnerState::Unknown,
            disabled_date: None,
            identity_provider_user_id: None,
            state_known: true,
        }
    }
}

/// One personal access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// The token id.
    pub id: String,
    /// The owner's user id.
    pub user_id: String,
    /// The name; `None` when the service sent none (the model marks it optional).
    pub name: Option<String>,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
    /// When it was last used; `None` if never.
    pub last_used: Option<DateTime<Utc>>,
    /// When it expires.
    pub expires: Option<DateTime<Utc>>,
    /// Its scopes, sorted.
    pub scopes: Vec<String>,
}

impl Token {
    /// The last sign of life: the last use, or the creation of a never-used token.
    pub fn last_activity(&self) -> Option<DateTime<Utc>> {
        self.last_used.or(self.created)
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// The PAT settings of an organization (`DescribeIdentityProviderConfiguration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatSettings {
    /// `ACTIVE`.
    pub enabled: bool,
    /// Token lifetime in days.
    pub lifetime_days: Option<i32>,
}

/// An organization as the daemon names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrgRef {
    /// The organization id.
    pub id: String,
    /// The `organization` label: the configured alias, or the id.
    pub label: String,
    /// The region its API is called in.
    pub region: String,
    /// The AWS account it belongs to, when known (from the role it is scanned with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// What one complete scan of an organization found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgInventory {
    /// The organization.
    pub org: OrgRef,
    /// When the scan completed.
    pub scanned_at: DateTime<Utc>,
    /// Every token, in listing order.
    pub tokens: Vec<Token>,
    /// Owners by user id (every token's owner is here; `Unknown` when not in the directory).
    pub owners: HashMap<String, Owner>,
    /// PAT settings; `None` when not configured or not readable.
    pub pat: Option<PatSettings>,
}

impl OrgInventory {
    /// The owner of a token.
    pub fn owner_of(&self, token: &Token) -> Option<&Owner> {
        self.owners.get(&token.user_id)
    }

    /// The owner's state of a token (`Unknown` when not resolved).
    pub fn owner_state(&self, token: &Token) -> OwnerState {
        self.owner_of(token)
            .map_or(OwnerState::Unknown, |o| o.state)
    }
}
