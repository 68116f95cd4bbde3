//! Changes to the emulator's world during a test or a demo: applied now, or after the n-th
//! call of an operation (for changes "in the middle" of a scan).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Sim, World, lock, world};

/// A change to the emulator's state during a test or a demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mutation {
    /// Records a use of a token (now, or at `at`).
    MarkUsed {
        /// Organization id.
        organization_id: String,
        /// Token id.
        token_id: String,
        /// When (RFC 3339); the emulator's clock when absent.
        at: Option<DateTime<Utc>>,
    },
    /// Moves a token's expiry (a renewal, or an expiry in the past).
    SetExpiry {
        /// Organization id.
        organization_id: String,
        /// Token id.
        token_id: String,
        /// The new expiry.
        expires: DateTime<Utc>,
    },
    /// Changes a user's state (setting or clearing its disabled date).
    SetUserState {
        /// Organization id.
        organization_id: String,
        /// User id.
        user_id: String,
        /// `ENABLED`, `DISABLED` or `DELETED`.
        state: String,
    },
    /// Adds a token.
    AddToken {
        /// Organization id.
        organization_id: String,
        /// The token.
        token_id: String,
        /// Owner.
        user_id: String,
        /// Name.
        name: String,
        /// Created.
        created: DateTime<Utc>,
        /// Last used.
        last_used: Option<DateTime<Utc>>,
        /// Expires.
        expires: DateTime<Utc>,
        /// Scopes.
        scopes: Vec<String>,
    },
    /// Removes a token behind the API's back (as the user deleting it would).
    RemoveToken {
        /// Organization id.
        organization_id: String,
        /// Token id.
        token_id: String,
    },
    /// Changes an organization's state (e.g. to `Deleted`, mid-scan).
    SetOrganizationState {
        /// Organization id.
        organization_id: String,
        /// The new state.
        state: String,
    },
    /// Skews the emulator's clock (signature dates are checked against it).
    SetClockSkew {
        /// Seconds added to the real clock; negative for a clock behind.
        seconds: i64,
    },
}

impl Sim {
    /// Applies `m` right after the `calls`-th call of `operation` (counted from now) has
    /// been answered: for changes "in the middle" of a scan, such as an organization deleted
    /// between two pages.
    pub fn mutate_after(&self, operation: &str, calls: u64, m: Mutation) {
        let done = self.calls().count(operation);
        lock(&self.inner.triggers).push((operation.to_owned(), done + calls, m));
    }

    pub(super) fn fire_triggers(&self, operation: &str) {
        let count = self.calls().count(operation);
        let due: Vec<Mutation> = {
            let mut triggers = lock(&self.inner.triggers);
            let (due, keep) = triggers
                .drain(..)
                .partition(|(op, n, _)| op == operation && *n <= count);
            *triggers = keep;
            due.into_iter().map(|(_, _, m)| m).collect()
        };
        for m in due {
            if let Err(e) = self.mutate(m) {
                tracing::warn!(error = %e, "emulator trigger failed");
            }
        }
    }

    /// Applies a mutation.
    pub fn mutate(&self, m: Mutation) -> Result<(), String> {
        if let Mutation::SetClockSkew { seconds } = m {
            *lock(&self.inner.skew_secs) = seconds;
            return Ok(());
        }
        let now = self.now();
        let mut world = lock(&self.inner.world);
        match m {
            Mutation::MarkUsed {
                organization_id,
                token_id,
                at,
            } => {
                let t = token_mut(&mut world, &organization_id, &token_id)?;
                t.last_used = Some(at.unwrap_or(now));
            }
            Mutation::SetExpiry {
                organization_id,
                token_id,
                expires,
            } => {
                token_mut(&mut world, &organization_id, &token_id)?.expires = expires;
            }
            Mutation::SetUserState {
                organization_id,
                user_id,
                state,
            } => {
                let o = org_mut(&mut world, &organization_id)?;
                let u = o
                    .users
                    .get_mut(&user_id)
                    .ok_or_else(|| format!("no user {user_id}"))?;
                u.disabled_date = (state != "ENABLED").then_some(now);
                u.state = state;
            }
            Mutation::AddToken {
                organization_id,
                token_id,
                user_id,
                name,
                created,
                last_used,
                expires,
                scopes,
            } => {
                let o = org_mut(&mut world, &organization_id)?;
                o.tokens.insert(
                    token_id.clone(),
                    world::Token {
                        id: token_id,
                        user_id,
                        name,
                        created,
                        last_used,
                        expires,
                        scopes,
                    },
                );
            }
            Mutation::RemoveToken {
                organization_id,
                token_id,
            } => {
                let o = org_mut(&mut world, &organization_id)?;
                o.tokens
                    .remove(&token_id)
                    .ok_or_else(|| format!("no token {token_id}"))?;
            }
            Mutation::SetOrganizationState {
                organization_id,
                state,
            } => {
                org_mut(&mut world, &organization_id)?.state = state;
            }
            Mutation::SetClockSkew { .. } => {}
        }
        Ok(())
    }
}

fn org_mut<'a>(world: &'a mut World, org: &str) -> Result<&'a mut world::Org, String> {
    world
        .orgs
        .get_mut(org)
        .ok_or_else(|| format!("no organization {org}"))
}

fn token_mut<'a>(
    world: &'a mut World,
    org: &str,
    token: &str,
) -> Result<&'a mut world::Token, String> {
    org_mut(world, org)?
        .tokens
        .get_mut(token)
        .ok_or_else(|| format!("no token {token}"))
}
