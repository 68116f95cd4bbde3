//! Scanning one organization: every token page, the PAT settings, and each owner through a
//! TTL cache shared across scans (with in-flight de-duplication), by whichever of
//! `DescribeUser` or `ListUsers` costs fewer calls. A scan either completes or fails whole.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::config::{OwnerLookup, ScanConfig};
use crate::inventory::{OrgInventory, OrgRef, Owner};
use crate::workmail::{ApiError, Pager, WorkMail};

/// A scan that did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScanError {
    /// An API call failed after retries.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The scan task panicked (a bug); counted and reported, the process goes on.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ScanError {
    /// A bounded kind for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ScanError::Api(e) => e.kind(),
            ScanError::Internal(_) => "internal",
        }
    }

    /// What to do about it, when the failure is a common one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ScanError::Api(e) => e.hint.as_deref(),
            ScanError::Internal(_) => None,
        }
    }
}

type CacheKey = (String, String);
type Cell = Arc<OnceCell<Option<Owner>>>;

/// Owners by (organization, user), each trusted for a TTL. Concurrent lookups of the same
/// user share one call; failures are not cached.
#[derive(Debug, Default)]
pub struct OwnerCache {
    ttl: Mutex<Duration>,
    entries: Mutex<HashMap<CacheKey, (Instant, Cell)>>,
    /// Users per organization seen by the last complete `ListUsers`, for choosing the
    /// cheaper lookup.
    directory_sizes: Mutex<HashMap<String, usize>>,
}

impl OwnerCache {
    /// A cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl: Mutex::new(ttl),
            ..Default::default()
        }
    }

    /// Changes how long entries live (a reload), the ones cached included.
    pub fn set_ttl(&self, ttl: Duration) {
        *self.ttl.lock().unwrap_or_else(|e| e.into_inner()) = ttl;
    }

    fn ttl(&self) -> Duration {
        *self.ttl.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, (Instant, Cell)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh cached answer: `Some(Some(owner))`, `Some(None)` (not in the directory), or
    /// `None` when not cached.
    pub fn get(&self, org: &str, user: &str) -> Option<Option<Owner>> {
        let ttl = self.ttl();
        let entries = self.lock();
        let (at, cell) = entries.get(&(org.to_owned(), user.to_owned()))?;
        if at.elapsed() >= ttl {
            return None;
        }
        cell.get().cloned()
    }

    /// Stores an answer.
    pub fn put(&self, org: &str, user: &str, owner: Option<Owner>) {
        let cell = Arc::new(OnceCell::new_with(Some(owner)));
        self.lock()
            .insert((org.to_owned(), user.to_owned()), (Instant::now(), cell));
    }

    /// The cached answer, or the one `fetch` gives (shared by concurrent callers).
    pub async fn get_or_fetch<F, Fut>(
        &self,
        org: &str,
        user: &str,
        fetch: F,
    ) -> Result<Option<Owner>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Owner>, ApiError>>,
    {
        let ttl = self.ttl();
        let cell = {
            let mut entries = self.lock();
            let key = (org.to_owned(), user.to_owned());
            match entries.get(&key) {
                Some((at, cell)) if at.elapsed() < ttl || !cell.initialized() => cell.clone(),
                _ => {
                    let cell: Cell = Arc::new(OnceCell::new());
                    entries.insert(key, (Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        let owner = cell.get_or_try_init(fetch).await?.clone();
        Ok(owner)
    }

    /// Forgets everything about one organization.
    pub fn forget_org(&self, org: &str) {
        self.lock().retain(|(o, _), _| o != org);
    }

    fn directory_size(&self, org: &str) -> Option<usize> {
        self.directory_sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(org)
            .copied()
    }

    fn set_directory_size(&self, org: &str, n: usize) {
        self.directory_sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(org.to_owned(), n);
    }
}

/// Progress of a scan, for the `report` command's progress line.
pub type Progress = Arc<dyn Fn(&OrgRef, usize) + Send + Sync>;

/// Scans one organization completely, or fails.
pub async fn scan_org(
    client: &WorkMail,
    org: &OrgRef,
    cfg: &ScanConfig,
    cache: &OwnerCache,
    now: DateTime<Utc>,
    progress: Option<&Progress>,
) -> Result<OrgInventory, ScanError> {
    let (tokens, pat) = tokio::join!(
        list_all_tokens(client, org, cfg.page_size, progress),
        client.pat_settings(&org.id)
    );
    let tokens = tokens?;
    let pat = pat?;
    let owners = resolve_owners(client, org, cfg, cache, &tokens).await?;
    Ok(OrgInventory {
        org: org.clone(),
        scanned_at: now,
        tokens,
        owners,
        pat,
    })
}

async fn list_all_tokens(
    client: &WorkMail,
    org: &OrgRef,
    page_size: i32,
    progress: Option<&Progress>,
) -> Result<Vec<crate::inventory::Token>, ScanError> {
    let mut tokens = Vec::new();
    let mut seen_ids = HashSet::new();
    let mut pager = Pager::new("ListPersonalAccessTokens");
    loop {
        let (page, following) = client
            .list_tokens_page(&org.id, pager.token(), page_size)
            .await?;
        for t in page {
            // The same id on two pages is one token; counting it twice would skew every
            // aggregate, and acting on it twice is pointless.
            if seen_ids.insert(t.id.clone()) {
                tokens.push(t);
            } else {
                tracing::warn!(token_id = %t.id, "token listed twice");
            }
        }
        if let Some(p) = progress {
            p(org, tokens.len());
        }
        if !pager.advance(following)? {
            return Ok(tokens);
        }
    }
}

async fn resolve_owners(
    client: &WorkMail,
    org: &OrgRef,
    cfg: &ScanConfig,
    cache: &OwnerCache,
    tokens: &[crate::inventory::Token],
) -> Result<HashMap<String, Owner>, ScanError> {
    let mut owners = HashMap::new();
    let mut need: Vec<String> = Vec::new();
    let mut distinct = HashSet::new();
    for t in tokens {
        if !distinct.insert(t.user_id.as_str()) {
            continue;
        }
        match cache.get(&org.id, &t.user_id) {
            Some(Some(o)) => {
                owners.insert(t.user_id.clone(), o);
            }
            Some(None) => {
                owners.insert(t.user_id.clone(), Owner::unknown(&t.user_id));
            }
            None => need.push(t.user_id.clone()),
        }
    }
    if need.is_empty() {
        return Ok(owners);
    }
    let page = cfg.page_size.max(1) as usize;
    let use_list = match cfg.owner_lookup {
        OwnerLookup::Describe => false,
        OwnerLookup::List => true,
        OwnerLookup::Auto => match cache.directory_size(&org.id) {
            Some(users) => users.div_ceil(page) < need.len(),
            // Unknown directory size: listing can only pay off with more owners to
            // resolve than one page holds; the loop below stops as soon as it does not.
            None => need.len() > page,
        },
    };
    if use_list {
        let wanted: HashSet<String> = need.iter().cloned().collect();
        let mut pager = Pager::new("ListUsers");
        let mut pages = 0usize;
        let mut found = 0usize;
        let mut listed = 0usize;
        let complete = loop {
            let (users, following) = client
                .list_users_page(&org.id, pager.token(), cfg.page_size)
                .await?;
            pages += 1;
            for u in users {
                listed += 1;
                if wanted.contains(&u.user_id) && !owners.contains_key(&u.user_id) {
                    found += 1;
                }
                cache.put(&org.id, &u.user_id, Some(u.clone()));
                if wanted.contains(&u.user_id) {
                    owners.insert(u.user_id.clone(), u);
                }
            }
            if !pager.advance(following)? {
                break true;
            }
            if found == wanted.len() {
                break false;
            }
            // Keep listing only while a page resolves more owners than a page costs.
            if cfg.owner_lookup == OwnerLookup::Auto && pages >= 2 && found <= pages {
                break false;
            }
        };
        if complete {
            cache.set_directory_size(&org.id, listed);
            // Whoever a complete directory listing lacks is not in the directory.
            for id in &need {
                if !owners.contains_key(id) {
                    cache.put(&org.id, id, None);
                    owners.insert(id.clone(), Owner::unknown(id));
                }
            }
        }
        need.retain(|id| !owners.contains_key(id));
    }
    let results: Vec<Result<(String, Option<Owner>), ApiError>> =
        futures_util::stream::iter(need.into_iter().map(|id| async move {
            let owner = cache
                .get_or_fetch(&org.id, &id, || client.describe_user(&org.id, &id))
                .await?;
            Ok((id, owner))
        }))
        .buffer_unordered(cfg.max_concurrency.max(1))
        .collect()
        .await;
    for r in results {
        let (id, owner) = r?;
        let owner = owner.unwrap_or_else(|| Owner::unknown(&id));
        owners.insert(id, owner);
    }
    Ok(owners)
}
