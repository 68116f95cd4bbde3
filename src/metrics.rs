//! The metrics registry: counters updated as things happen (API attempts, cleanup actions,
//! internal errors) and gauges rendered at scrape time from the published state, which only
//! changes when a scan or cleanup run completes.

use std::sync::Arc;

use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

use crate::config::{Config, RuleId};
use crate::inventory::{OrgInventory, OwnerState, Token};
use crate::ledger::Action;
use crate::state::{OrgStatus, Shared};
use crate::webconfig::ReloadStatus;
use crate::workmail::ApiObserver;

const REFRESH: &str = "Refreshed every scan interval, not at scrape time.";

/// The daemon's metrics: an owned registry plus typed handles.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    api_requests: IntCounterVec,
    api_errors: IntCounterVec,
    cleanup_actions: IntCounterVec,
    internal_errors: IntCounter,
    config: Arc<Config>,
}

impl Metrics {
    /// Registers every counter.
    pub fn new(config: Arc<Config>) -> Self {
        let registry = Registry::new();
        let api_requests = IntCounterVec::new(
            Opts::new(
                "workmail_pat_api_requests_total",
                "WorkMail API requests, counted per attempt (retries included).",
            ),
            &["operation"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let api_errors = IntCounterVec::new(
            Opts::new(
                "workmail_pat_api_request_errors_total",
                "WorkMail API request attempts that failed, by AWS error code or a bounded kind (timeout, dispatch, response).",
            ),
            &["operation", "error"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let cleanup_actions = IntCounterVec::new(
            Opts::new(
                "workmail_pat_cleanup_actions_total",
                "Cleanup decisions by outcome: deleted, would_delete, failed, unconfirmed, skipped_limit, skipped_changed, already_gone, excluded, not_deleted (reconciled).",
            ),
            &["organization_id", "organization", "rule", "action"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let internal_errors = IntCounter::new(
            "workmail_pat_internal_errors_total",
            "Internal errors (panics caught in scan and cleanup tasks). Should stay 0.",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        for c in [&api_requests, &api_errors, &cleanup_actions] {
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(internal_errors.clone()));
        Self {
            registry,
            api_requests,
            api_errors,
            cleanup_actions,
            internal_errors,
            config,
        }
    }

    /// Counts one cleanup decision.
    pub fn cleanup_action(&self, org_id: &str, org: &str, rule: &str, action: Action) {
        self.cleanup_actions
            .with_label_values(&[org_id, org, rule, action.as_str()])
            .inc();
    }

    /// Counts an internal error.
    pub fn internal_error(&self) {
        self.internal_errors.inc();
    }

    /// Renders every metric in the Prometheus text format 0.0.4.
    pub fn render(&self, shared: &Shared) -> String {
        self.render_with_web(shared, None)
    }

    /// [`Metrics::render`], with the reload status of the web configuration when there is one.
    pub fn render_with_web(&self, shared: &Shared, web: Option<ReloadStatus>) -> String {
        let mut families = self.registry.gather();
        families.extend(state_families(&self.config, &shared.snapshot()));
        if let Some(w) = web {
            let mut ok = Family::gauge(
                "workmail_pat_web_config_last_reload_successful",
                "1 when the last change of the web configuration (--web.config.file) loaded, 0 when it was refused and the previous one stays in force.",
            );
            ok.push(&[], if w.successful { 1.0 } else { 0.0 });
            let mut at = Family::gauge(
                "workmail_pat_web_config_last_reload_success_timestamp_seconds",
                "When a web configuration last took effect (Unix seconds; the start counts).",
            );
            at.push(
                &[],
                w.last_success
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            );
            families.push(ok.f);
            families.push(at.f);
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl ApiObserver for Metrics {
    fn attempt(&self, operation: &str, error: Option<&'static str>) {
        self.api_requests.with_label_values(&[operation]).inc();
        if let Some(e) = error {
            self.api_errors.with_label_values(&[operation, e]).inc();
        }
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Family {
    f: MetricFamily,
}

impl Family {
    fn gauge(name: &str, help: &str) -> Self {
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(help.to_owned());
        f.set_field_type(MetricType::GAUGE);
        Self { f }
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut m = Metric::default();
        m.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).to_owned());
                    l.set_value((*v).to_owned());
                    l
                })
                .collect(),
        );
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
        self.f.mut_metric().push(m);
    }
}

fn org_labels(st: &OrgStatus) -> [(&'static str, &str); 2] {
    [
        ("organization_id", st.org.id.as_str()),
        ("organization", st.org.label.as_str()),
    ]
}

fn token_labels<'a>(
    config: &Config,
    st: &'a OrgStatus,
    inv: &'a OrgInventory,
    t: &'a Token,
) -> Vec<(&'static str, &'a str)> {
    let mut l = org_labels(st).to_vec();
    l.push(("user_id", t.user_id.as_str()));
    l.push(("token_id", t.id.as_str()));
    l.push(("token_name", t.name.as_deref().unwrap_or_default()));
    let owner = inv.owner_of(t);
    for ul in &config.metrics.user_labels {
        let v = owner.and_then(|o| match ul {
            crate::config::UserLabel::UserName => o.name.as_deref(),
            crate::config::UserLabel::Email => o.email.as_deref(),
            crate::config::UserLabel::DisplayName => o.display_name.as_deref(),
        });
        l.push((ul.label(), v.unwrap_or_default()));
    }
    l
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn state_families(config: &Config, orgs: &[OrgStatus]) -> Vec<MetricFamily> {
    let mut expiry = Family::gauge(
        "workmail_pat_token_expiry_timestamp_seconds",
        &format!("When the token expires (Unix seconds). {REFRESH}"),
    );
    let mut created = Family::gauge(
        "workmail_pat_token_created_timestamp_seconds",
        &format!("When the token was created (Unix seconds). {REFRESH}"),
    );
    let mut last_used = Family::gauge(
        "workmail_pat_token_last_used_timestamp_seconds",
        &format!(
            "When the token was last used (Unix seconds); absent for never-used tokens. {REFRESH}"
        ),
    );
    let mut info = Family::gauge(
        "workmail_pat_token_info",
        &format!("One series per token, with its owner's state and its scopes. {REFRESH}"),
    );
    let mut tokens = Family::gauge(
        "workmail_pat_tokens",
        &format!("Tokens by status (active, expired) at the last complete scan. {REFRESH}"),
    );
    let mut expiring = Family::gauge(
        "workmail_pat_tokens_expiring",
        &format!("Active tokens expiring within each configured window. {REFRESH}"),
    );
    let mut unused = Family::gauge(
        "workmail_pat_tokens_unused",
        &format!(
            "Tokens not used for at least each configured threshold (never-used tokens count from creation). {REFRESH}"
        ),
    );
    let mut never = Family::gauge(
        "workmail_pat_tokens_never_used",
        &format!("Tokens never used. {REFRESH}"),
    );
    let mut by_state = Family::gauge(
        "workmail_pat_tokens_by_owner_state",
        &format!("Tokens by their owner's state (UNKNOWN: owner not in the directory). {REFRESH}"),
    );
    let mut owners = Family::gauge(
        "workmail_pat_token_owners",
        &format!("Distinct users holding at least one token. {REFRESH}"),
    );
    let mut pat_enabled = Family::gauge(
        "workmail_pat_organization_pat_enabled",
        &format!(
            "1 when personal access tokens are ACTIVE for the organization, 0 when INACTIVE; absent when not readable. {REFRESH}"
        ),
    );
    let mut lifetime = Family::gauge(
        "workmail_pat_organization_pat_lifetime_seconds",
        &format!("Configured token lifetime of the organization, in seconds. {REFRESH}"),
    );
    let mut up = Family::gauge(
        "workmail_pat_organization_up",
        "1 when the last scan of the organization completed, 0 when it failed or was partial (the last complete data stays published).",
    );
    let mut last_success = Family::gauge(
        "workmail_pat_scan_last_success_timestamp_seconds",
        "When the last complete scan of the organization ended (Unix seconds).",
    );
    let mut duration = Family::gauge(
        "workmail_pat_scan_duration_seconds",
        "Duration of the last scan attempt of the organization, in seconds.",
    );
    let mut candidates = Family::gauge(
        "workmail_pat_cleanup_candidates",
        "Tokens a cleanup rule named for deletion at the latest cleanup run.",
    );
    let mut pending = Family::gauge(
        "workmail_pat_cleanup_pending",
        &format!("Tokens that become eligible for deletion within cleanup.warn_before. {REFRESH}"),
    );
    let mut last_run = Family::gauge(
        "workmail_pat_cleanup_last_run_timestamp_seconds",
        "When the latest cleanup run of the organization started (Unix seconds).",
    );
    let mut eligible = Family::gauge(
        "workmail_pat_token_deletion_eligible_timestamp_seconds",
        &format!(
            "When the token becomes (or became) eligible for deletion under a rule; for tokens eligible now or within cleanup.warn_before. {REFRESH}"
        ),
    );

    for st in orgs {
        let ol = org_labels(st);
        up.push(&ol, if st.up { 1.0 } else { 0.0 });
        if let Some(t) = st.last_success {
            last_success.push(&ol, ts(t));
        }
        if let Some(d) = st.last_duration {
            duration.push(&ol, d);
        }
        if let (Some(inv), Some(s)) = (&st.inventory, &st.stats) {
            let with = |k: &'static str, v: &'static str| {
                let mut l = ol.to_vec();
                l.push((k, v));
                l
            };
            tokens.push(&with("status", "active"), s.active as f64);
            tokens.push(&with("status", "expired"), s.expired as f64);
            for (label, n) in &s.expiring {
                let mut l = ol.to_vec();
                l.push(("within", label));
                expiring.push(&l, *n as f64);
            }
            for (label, n) in &s.unused {
                let mut l = ol.to_vec();
                l.push(("unused_for", label));
                unused.push(&l, *n as f64);
            }
            never.push(&ol, s.never_used as f64);
            for (state, n) in OwnerState::ALL.iter().zip(s.by_owner_state) {
                by_state.push(&with("user_state", state.as_str()), n as f64);
            }
            owners.push(&ol, s.owners as f64);
            if let Some(p) = inv.pat {
                pat_enabled.push(&ol, if p.enabled { 1.0 } else { 0.0 });
                if let Some(days) = p.lifetime_days {
                    lifetime.push(&ol, f64::from(days) * 86_400.0);
                }
            }
            if config.metrics.per_token {
                for t in &inv.tokens {
                    let tl = token_labels(config, st, inv, t);
                    if let Some(e) = t.expires {
                        expiry.push(&tl, ts(e));
                    }
                    if let Some(c) = t.created {
                        created.push(&tl, ts(c));
                    }
                    if let Some(u) = t.last_used {
                        last_used.push(&tl, ts(u));
                    }
                    let scopes = t.scopes.join(",");
                    let mut il = tl.clone();
                    il.push(("user_state", inv.owner_state(t).as_str()));
                    il.push(("scopes", &scopes));
                    info.push(&il, 1.0);
                }
            }
            if let Some(plan) = &st.plan {
                let mut per_rule: std::collections::HashMap<RuleId, u64> = Default::default();
                for p in &plan.pending {
                    *per_rule.entry(p.rule).or_default() += 1;
                }
                for (id, rule) in config.cleanup.rules() {
                    if rule.applies_to(&st.org.id) {
                        let mut l = ol.to_vec();
                        l.push(("rule", &rule.name));
                        pending.push(&l, per_rule.get(&id).copied().unwrap_or(0) as f64);
                    }
                }
                if config.metrics.per_token {
                    let by_id: std::collections::HashMap<&str, &Token> =
                        inv.tokens.iter().map(|t| (t.id.as_str(), t)).collect();
                    let eligible_now = plan
                        .candidates
                        .iter()
                        .map(|c| (c.token.id.as_str(), c.rule, c.since));
                    let soon = plan
                        .pending
                        .iter()
                        .map(|p| (p.token_id.as_str(), p.rule, p.at));
                    let known = eligible_now
                        .chain(soon)
                        .filter(|(_, _, at)| *at != chrono::DateTime::<chrono::Utc>::MIN_UTC);
                    for (id, rule, at) in known {
                        if let Some(t) = by_id.get(id) {
                            let mut l = token_labels(config, st, inv, t);
                            l.push(("rule", &config.cleanup.rule(rule).name));
                            eligible.push(&l, ts(at));
                        }
                    }
                }
            }
        }
        if let Some(run) = &st.cleanup {
            last_run.push(&ol, ts(run.at));
            for (rule, n) in &run.candidates {
                let mut l = ol.to_vec();
                l.push(("rule", rule));
                candidates.push(&l, *n as f64);
            }
        }
    }
    let mut interval = Family::gauge(
        "workmail_pat_scan_interval_seconds",
        "The configured scan interval, in seconds (for staleness alerts).",
    );
    interval.push(&[], config.scan.interval.as_secs_f64());
    let mut build = Family::gauge(
        "workmail_pat_monitor_build_info",
        "Build information of the running workmail-pat-monitor.",
    );
    build.push(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    [
        expiry,
        created,
        last_used,
        info,
        tokens,
        expiring,
        unused,
        never,
        by_state,
        owners,
        pat_enabled,
        lifetime,
        up,
        last_success,
        duration,
        candidates,
        pending,
        last_run,
        eligible,
        interval,
        build,
    ]
    .into_iter()
    .map(|f| f.f)
    .filter(|f| !f.get_metric().is_empty())
    .collect()
}
