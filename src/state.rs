//! The published state: per organization, the last complete inventory and what was derived
//! from it at that scan, scan health, and the latest cleanup run. Metrics, the status page
//! and the tokens API read it; only scans and cleanup runs write it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::config::Config;
use crate::inventory::{OrgInventory, OrgRef, OwnerState};
use crate::policy::{self, OrgPlan};

/// Aggregates of one organization, computed when its scan completed.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OrgStats {
    /// Tokens not expired.
    pub active: u64,
    /// Tokens expired.
    pub expired: u64,
    /// Active tokens expiring within each window (label, count).
    pub expiring: Vec<(String, u64)>,
    /// Tokens unused for at least each threshold (label, count).
    pub unused: Vec<(String, u64)>,
    /// Tokens never used.
    pub never_used: u64,
    /// Tokens by owner state, in [`OwnerState::ALL`] order.
    pub by_owner_state: [u64; 4],
    /// Distinct owners.
    pub owners: u64,
}

impl OrgStats {
    /// Tokens whose owner is in `state`.
    pub fn with_owner_state(&self, state: OwnerState) -> u64 {
        OwnerState::ALL
            .iter()
            .position(|s| *s == state)
            .map_or(0, |i| self.by_owner_state[i])
    }

    /// Tokens whose owner is not enabled: disabled, deleted, or not in the directory.
    pub fn inactive_owner_tokens(&self) -> u64 {
        self.tokens() - self.with_owner_state(OwnerState::Enabled)
    }

    /// Every token.
    pub fn tokens(&self) -> u64 {
        self.active + self.expired
    }
}

/// Computes the aggregates of an inventory at `now`.
pub fn stats(config: &Config, inv: &OrgInventory, now: DateTime<Utc>) -> OrgStats {
    let mut s = OrgStats {
        expiring: config
            .metrics
            .expiry_windows
            .iter()
            .map(|w| (w.label.clone(), 0))
            .collect(),
        unused: config
            .metrics
            .unused_thresholds
            .iter()
            .map(|w| (w.label.clone(), 0))
            .collect(),
        ..Default::default()
    };
    let mut owners = std::collections::HashSet::new();
    for t in &inv.tokens {
        owners.insert(t.user_id.as_str());
        if t.is_expired(now) {
            s.expired += 1;
        } else {
            s.active += 1;
            if let Some(exp) = t.expires {
                for (w, (_, n)) in config.metrics.expiry_windows.iter().zip(&mut s.expiring) {
                    if exp - now <= chrono::Duration::from_std(w.duration).unwrap_or_default() {
                        *n += 1;
                    }
                }
            }
        }
        if t.last_used.is_none() {
            s.never_used += 1;
        }
        if let Some(last) = t.last_activity() {
            for (w, (_, n)) in config.metrics.unused_thresholds.iter().zip(&mut s.unused) {
                if now - last >= chrono::Duration::from_std(w.duration).unwrap_or_default() {
                    *n += 1;
                }
            }
        }
        let state = inv.owner_state(t);
        let i = OwnerState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or(3);
        s.by_owner_state[i] += 1;
    }
    s.owners = owners.len() as u64;
    s
}

/// Why the last scan of an organization failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanFailure {
    /// Bounded kind.
    pub kind: &'static str,
    /// Details, on one line, for logs and the status page.
    pub message: String,
    /// What to do about it, when the failure is a common one.
    pub hint: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// One decision of a cleanup run, as published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// Token id.
    pub token_id: String,
    /// Token name.
    pub token_name: Option<String>,
    /// Owner user id.
    pub user_id: String,
    /// Rule name.
    pub rule: String,
    /// The action.
    pub action: crate::ledger::Action,
    /// Reason in words.
    pub reason: String,
}

/// The latest cleanup run of one organization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanupRun {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Mode in force.
    pub mode: crate::config::CleanupMode,
    /// Candidates per rule at the run.
    pub candidates: BTreeMap<String, u64>,
    /// The decisions of the run: every one that acted or tried to (deleted, would_delete,
    /// failed, unconfirmed, skipped_changed, already_gone), and the first
    /// [`ROUTINE_DECISIONS_KEPT`] of the routine ones (excluded, skipped_limit); the ledger
    /// has them all.
    pub actions: Vec<ActionRecord>,
    /// How many decisions of each kind the run made.
    pub counts: BTreeMap<crate::ledger::Action, u64>,
}

/// Routine decisions (excluded, skipped_limit) a published run keeps per organization: a
/// percent guard that holds 40,000 candidates must not keep 40,000 records in memory.
pub const ROUTINE_DECISIONS_KEPT: usize = 100;

impl CleanupRun {
    /// Keeps one decision, as [`CleanupRun::actions`] says.
    pub fn keep(&mut self, record: ActionRecord) {
        use crate::ledger::Action;
        *self.counts.entry(record.action).or_default() += 1;
        let routine = matches!(record.action, Action::Excluded | Action::SkippedLimit);
        let kept = self
            .actions
            .iter()
            .filter(|a| matches!(a.action, Action::Excluded | Action::SkippedLimit))
            .count();
        if !routine || kept < ROUTINE_DECISIONS_KEPT {
            self.actions.push(record);
        }
    }

    /// Decisions made but not kept in [`CleanupRun::actions`].
    pub fn omitted(&self) -> u64 {
        self.counts.values().sum::<u64>() - self.actions.len() as u64
    }
}

/// Everything published about one organization.
#[derive(Debug, Clone)]
pub struct OrgStatus {
    /// The organization.
    pub org: OrgRef,
    /// The last complete inventory.
    pub inventory: Option<Arc<OrgInventory>>,
    /// Aggregates of that inventory at its scan.
    pub stats: Option<Arc<OrgStats>>,
    /// The policy's plan at that scan.
    pub plan: Option<Arc<OrgPlan>>,
    /// Whether the last scan completed.
    pub up: bool,
    /// When the last scan attempt ended.
    pub last_attempt: Option<DateTime<Utc>>,
    /// When the last complete scan ended.
    pub last_success: Option<DateTime<Utc>>,
    /// Duration of the last scan attempt, in seconds.
    pub last_duration: Option<f64>,
    /// Why the last scan failed, when it did.
    pub last_error: Option<ScanFailure>,
    /// The latest cleanup run.
    pub cleanup: Option<Arc<CleanupRun>>,
}

impl OrgStatus {
    fn new(org: OrgRef) -> Self {
        Self {
            org,
            inventory: None,
            stats: None,
            plan: None,
            up: false,
            last_attempt: None,
            last_success: None,
            last_duration: None,
            last_error: None,
            cleanup: None,
        }
    }
}

/// How the last listing of one discovery source went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryStatus {
    /// The account listed (empty when it is the process's own and no role names it).
    pub account_id: String,
    /// The region listed.
    pub region: String,
    /// Whether `ListOrganizations` answered completely.
    pub up: bool,
}

/// The published state, shared by every task.
#[derive(Debug)]
pub struct Shared {
    orgs: Mutex<BTreeMap<String, OrgStatus>>,
    discovery: Mutex<Vec<DiscoveryStatus>>,
    discovered: Mutex<bool>,
    shutting_down: Mutex<bool>,
    /// The generation at which every organization first had a scan attempt.
    scanned_once: Mutex<Option<u64>>,
    changed: watch::Sender<u64>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            orgs: Mutex::new(BTreeMap::new()),
            discovery: Mutex::new(Vec::new()),
            discovered: Mutex::new(false),
            shutting_down: Mutex::new(false),
            scanned_once: Mutex::new(None),
            changed: watch::channel(0).0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Declares the organizations to scan (after discovery); others are forgotten.
    pub fn set_orgs(&self, orgs: &[OrgRef]) {
        let mut map = lock(&self.orgs);
        map.retain(|id, _| orgs.iter().any(|o| &o.id == id));
        for o in orgs {
            // An organization that stays keeps its data, under its current name.
            map.entry(o.id.clone())
                .and_modify(|st| st.org = o.clone())
                .or_insert_with(|| OrgStatus::new(o.clone()));
        }
        drop(map);
        *lock(&self.discovered) = true;
        self.bump();
    }

    /// Publishes how each discovery source's last listing went.
    pub fn set_discovery(&self, sources: Vec<DiscoveryStatus>) {
        let changed = {
            let mut d = lock(&self.discovery);
            let changed = *d != sources;
            *d = sources;
            changed
        };
        if changed {
            self.bump();
        }
    }

    /// How each discovery source's last listing went.
    pub fn discovery(&self) -> Vec<DiscoveryStatus> {
        lock(&self.discovery).clone()
    }

    /// A snapshot of every organization's status, by id.
    pub fn snapshot(&self) -> Vec<OrgStatus> {
        lock(&self.orgs).values().cloned().collect()
    }

    /// The status of one organization.
    pub fn org(&self, id: &str) -> Option<OrgStatus> {
        lock(&self.orgs).get(id).cloned()
    }

    /// Publishes a complete scan.
    pub fn scan_succeeded(
        &self,
        config: &Config,
        inv: OrgInventory,
        duration: f64,
        now: DateTime<Utc>,
    ) {
        let stats = stats(config, &inv, now);
        let plan = (!config.cleanup.rules.is_empty())
            .then(|| Arc::new(policy::plan(&config.cleanup, &inv, now)));
        let mut map = lock(&self.orgs);
        // An organization no longer scanned (dropped by discovery while its scan ran) is not
        // brought back.
        let Some(st) = map.get_mut(&inv.org.id) else {
            return;
        };
        st.inventory = Some(Arc::new(inv));
        st.stats = Some(Arc::new(stats));
        st.plan = plan;
        st.up = true;
        st.last_attempt = Some(now);
        st.last_success = Some(now);
        st.last_duration = Some(duration);
        st.last_error = None;
        drop(map);
        self.bump();
    }

    /// Measures and plans every kept inventory again under `config` (after a reload), each
    /// at the time of its scan, as [`Shared::scan_succeeded`] did.
    pub fn reconfigure(&self, config: &Config) {
        let mut map = lock(&self.orgs);
        for st in map.values_mut() {
            let Some(inv) = st.inventory.clone() else {
                continue;
            };
            st.stats = Some(Arc::new(stats(config, &inv, inv.scanned_at)));
            st.plan = (!config.cleanup.rules.is_empty())
                .then(|| Arc::new(policy::plan(&config.cleanup, &inv, inv.scanned_at)));
        }
        drop(map);
        self.bump();
    }

    /// Records a failed scan; the last complete data stays published.
    pub fn scan_failed(&self, org: &OrgRef, failure: ScanFailure, duration: f64) {
        let mut map = lock(&self.orgs);
        let Some(st) = map.get_mut(&org.id) else {
            return;
        };
        st.up = false;
        st.last_attempt = Some(failure.at);
        st.last_duration = Some(duration);
        st.last_error = Some(failure);
        drop(map);
        self.bump();
    }

    /// Publishes an organization's cleanup run.
    pub fn cleanup_ran(&self, org_id: &str, run: CleanupRun) {
        if let Some(st) = lock(&self.orgs).get_mut(org_id) {
            st.cleanup = Some(Arc::new(run));
        }
        self.bump();
    }

    /// Whether every organization has had a first scan attempt (and shutdown has not
    /// started).
    pub fn ready(&self) -> bool {
        !*lock(&self.shutting_down) && self.scanned_once()
    }

    fn scanned_once(&self) -> bool {
        *lock(&self.discovered) && lock(&self.orgs).values().all(|s| s.last_attempt.is_some())
    }

    /// The generation at which every organization first had a scan attempt: what the
    /// exported data must reflect before the daemon is ready.
    pub fn ready_generation(&self) -> Option<u64> {
        *lock(&self.scanned_once)
    }

    /// The generation of the published state: it grows with every change.
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
    }

    /// Marks the start of shutdown (readiness turns 503).
    pub fn shutting_down(&self) {
        *lock(&self.shutting_down) = true;
        self.bump();
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        let first_round = lock(&self.scanned_once).is_none() && self.scanned_once();
        self.changed.send_modify(|n| {
            *n += 1;
            if first_round {
                *lock(&self.scanned_once) = Some(*n);
            }
        });
    }
}
