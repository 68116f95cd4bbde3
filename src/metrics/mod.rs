//! The metrics. Counters are updated as things happen (API attempts, cleanup actions,
//! internal errors), live with the process metrics: that part is rendered at every scrape
//! and is small. The gauges derived from the published state, which only changes when a
//! scan or cleanup run publishes, are written by [`write_state`] once per snapshot and kept
//! compressed ([`exposition`]); scrapes send that kept part followed by the live one.

pub mod exposition;
pub mod text;

use std::io::{self, Write};
use std::sync::Arc;

use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

use crate::config::{Config, RuleId};
use crate::inventory::{OrgInventory, OwnerState, Token};
use crate::ledger::Action;
use crate::reload::LiveConfig;
use crate::state::{DiscoveryStatus, OrgStatus, Shared};
use crate::webconfig::ReloadStatus;
use crate::workmail::ApiObserver;
use text::TextWriter;

const REFRESH: &str = "Refreshed every scan interval, not at scrape time.";

/// Counts log lines dropped because nobody read them in time.
pub type LogDrops = tracing_appender::non_blocking::ErrorCounter;

/// The daemon's metrics: an owned registry plus typed handles.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    api_requests: IntCounterVec,
    api_errors: IntCounterVec,
    cleanup_actions: IntCounterVec,
    internal_errors: IntCounter,
    log_drops: Option<LogDrops>,
    config: LiveConfig,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"))
}

impl Metrics {
    /// Registers every counter, and the process collector; `log_drops` counts the log lines
    /// the non-blocking writer dropped (none outside the binary).
    pub fn new(config: LiveConfig, log_drops: Option<LogDrops>) -> Self {
        let registry = Registry::new();
        let api_requests = counter_vec(
            "workmail_pat_api_requests_total",
            "WorkMail API requests, counted per attempt (retries included).",
            &["operation"],
        );
        let api_errors = counter_vec(
            "workmail_pat_api_request_errors_total",
            "WorkMail API request attempts that failed, by AWS error code or a bounded kind (timeout, dispatch, response).",
            &["operation", "error"],
        );
        let cleanup_actions = counter_vec(
            "workmail_pat_cleanup_actions_total",
            "Cleanup decisions by outcome: deleted, would_delete, failed, unconfirmed, skipped_limit, skipped_changed, already_gone, excluded, not_deleted (reconciled).",
            &["organization_id", "organization", "rule", "action"],
        );
        let internal_errors = IntCounter::new(
            "workmail_pat_internal_errors_total",
            "Internal errors (panics caught in scan and cleanup tasks). Should stay 0.",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        for c in [&api_requests, &api_errors, &cleanup_actions] {
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(internal_errors.clone()));
        #[cfg(target_os = "linux")]
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Self {
            registry,
            api_requests,
            api_errors,
            cleanup_actions,
            internal_errors,
            log_drops,
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

    /// The configuration in force, which the gauges are labelled by.
    pub fn config(&self) -> Arc<Config> {
        self.config.current()
    }

    /// The live part of the exposition: counters, process metrics, build information, the
    /// scan interval, dropped log lines, open connections and, with a web configuration, its
    /// reload status.
    pub fn live(&self, live: &Live) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        let mut w = TextWriter::new(buf);
        let _ = self.write_live(&mut w, live);
        w.into_inner()
    }

    fn write_live(&self, w: &mut TextWriter<Vec<u8>>, live: &Live) -> io::Result<()> {
        let web = live.web;
        let config = self.config.current();
        let reload = self.config.status();
        w.gauge_family(
            "workmail_pat_config_last_reload_successful",
            "1 when the last reload of the configuration file (SIGHUP, POST /-/reload) was applied, 0 when it was refused and the previous configuration stays in force.",
        );
        w.sample(
            "workmail_pat_config_last_reload_successful",
            &[],
            if reload.successful { 1.0 } else { 0.0 },
        )?;
        w.gauge_family(
            "workmail_pat_config_last_reload_success_timestamp_seconds",
            "When a configuration last took effect (Unix seconds; the start counts).",
        );
        w.sample(
            "workmail_pat_config_last_reload_success_timestamp_seconds",
            &[],
            ts(reload.last_success),
        )?;
        w.gauge_family(
            "workmail_pat_config_restart_required",
            "1 when the configuration file changes a setting that only a restart applies (server.listen, server.probe_listen, cleanup.audit_log); the old value stays in force until then.",
        );
        w.sample(
            "workmail_pat_config_restart_required",
            &[],
            if reload.restart_required.is_empty() {
                0.0
            } else {
                1.0
            },
        )?;
        if let Some(n) = live.connections {
            w.gauge_family(
                "workmail_pat_http_connections",
                "Connections open on the main listener (idle, slow and non-reading clients are cut off by the server's timeouts).",
            );
            w.sample("workmail_pat_http_connections", &[], n as f64)?;
        }
        w.gauge_family(
            "workmail_pat_scan_interval_seconds",
            "The configured scan interval, in seconds (for staleness alerts).",
        );
        w.sample(
            "workmail_pat_scan_interval_seconds",
            &[],
            config.scan.interval.as_secs_f64(),
        )?;
        w.gauge_family(
            "workmail_pat_shard_info",
            "This process's shard: it scans, exports and cleans only the organizations whose id hashes to it (shard 0 of 1 when not sharded).",
        );
        w.sample(
            "workmail_pat_shard_info",
            &[
                ("shard", &config.scan.shard.to_string()),
                ("total_shards", &config.scan.total_shards.to_string()),
            ],
            1.0,
        )?;
        w.gauge_family(
            "workmail_pat_monitor_build_info",
            "Build information of the running workmail-pat-monitor.",
        );
        w.sample(
            "workmail_pat_monitor_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("revision", env!("WORKMAIL_PAT_MONITOR_REVISION")),
                ("rustc", env!("WORKMAIL_PAT_MONITOR_RUSTC")),
            ],
            1.0,
        )?;
        if let Some(d) = &self.log_drops {
            w.counter_family(
                "workmail_pat_log_lines_dropped_total",
                "Log lines dropped because the reader of the process's output did not keep up (a stuck log shipper, a full pipe): logging never blocks the daemon.",
            );
            w.sample(
                "workmail_pat_log_lines_dropped_total",
                &[],
                d.dropped_lines() as f64,
            )?;
        }
        if let Some(r) = web {
            w.gauge_family(
                "workmail_pat_web_config_last_reload_successful",
                "1 when the last change of the web configuration (--web.config.file) loaded, 0 when it was refused and the previous one stays in force.",
            );
            w.sample(
                "workmail_pat_web_config_last_reload_successful",
                &[],
                if r.successful { 1.0 } else { 0.0 },
            )?;
            w.gauge_family(
                "workmail_pat_web_config_last_reload_success_timestamp_seconds",
                "When a web configuration last took effect (Unix seconds; the start counts).",
            );
            w.sample(
                "workmail_pat_web_config_last_reload_success_timestamp_seconds",
                &[],
                ts(r.last_success),
            )?;
        }
        Ok(())
    }

    /// Writes the gauges of the published state.
    pub fn write_state(
        &self,
        orgs: &[OrgStatus],
        discovery: &[DiscoveryStatus],
        out: impl Write,
    ) -> io::Result<()> {
        let mut w = TextWriter::new(out);
        write_state(&self.config.current(), orgs, &mut w)?;
        write_placement(orgs, discovery, &mut w)
    }

    /// Every metric, in the Prometheus text format 0.0.4, as one string (tests; the server
    /// keeps the state part compressed instead).
    pub fn render(&self, shared: &Shared) -> String {
        let mut out = Vec::new();
        if let Err(e) = self.write_state(&shared.snapshot(), &shared.discovery(), &mut out) {
            tracing::error!(error = %e, "cannot render metrics");
        }
        out.extend(self.live(&Live::default()));
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Writes `text` (an exposition) to `path` for node_exporter's textfile collector: without the
/// `process_*` families (node_exporter exports its own, and a collision fails its whole scrape),
/// atomically (a temporary file in the same directory, synced, then renamed over `path`), so
/// that the collector never reads half a file.
pub fn write_textfile(path: &std::path::Path, text: &str) -> io::Result<()> {
    let tmp = textfile_temp(path)?;
    let written = (|| {
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(batch_exposition(text).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Whether [`write_textfile`] could write `path`, found out without touching `path`: a
/// temporary file in its directory is created and removed.
pub fn check_textfile(path: &std::path::Path) -> io::Result<()> {
    if path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory, not a file",
        ));
    }
    let tmp = textfile_temp(path)?;
    std::fs::File::create_new(&tmp)?;
    std::fs::remove_file(&tmp)
}

/// The temporary file next to `path` that is renamed over it. node_exporter reads only
/// `*.prom`; this name is not one.
fn textfile_temp(path: &std::path::Path) -> io::Result<std::path::PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    Ok(dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// A batch run's exposition: `text` without the `process_*` families, which describe a process
/// that has exited by the time anyone reads them (and collide with node_exporter's own).
fn batch_exposition(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !is_process_metric(l)) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The Pushgateway URL of `once --push-gateway`: `http://host[:port][/path]`.
pub fn push_gateway_url(s: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{s}: https is not supported for the Pushgateway; use its in-cluster http:// address"
            ));
        }
        _ => return Err(format!("{s}: must start with http://")),
    }
    if uri.authority().is_none() || uri.query().is_some() {
        return Err(format!(
            "{s}: must be http://host[:port][/path], without a query"
        ));
    }
    Ok(uri)
}

/// Pushes a batch run's exposition to a Prometheus Pushgateway: `PUT
/// URL/metrics/job/JOB[/shard/N]` replaces that group's metrics with this run's.
pub async fn push(
    gateway: &http::Uri,
    job: &str,
    shard: Option<u32>,
    text: &str,
) -> Result<(), String> {
    use http_body_util::{BodyExt as _, Full};
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    let mut url = format!(
        "{}/metrics/job/{job}",
        gateway.to_string().trim_end_matches('/')
    );
    if let Some(n) = shard {
        url.push_str(&format!("/shard/{n}"));
    }
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::put(uri)
        .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(bytes::Bytes::from(batch_exposition(text))))
        .map_err(|e| format!("{url}: {e}"))?;
    let answer = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("{url}: no answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("{url}: {}", crate::workmail::error_chain(&e)))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let body: String = tokio::time::timeout(TIMEOUT, answer.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| {
            String::from_utf8_lossy(&b.to_bytes())
                .trim()
                .chars()
                .take(300)
                .collect()
        })
        .unwrap_or_default();
    Err(format!("{url}: {status}: {body}"))
}

/// Whether a line of the text format belongs to a `process_*` family.
fn is_process_metric(line: &str) -> bool {
    let name = match line.strip_prefix('#') {
        Some(comment) => comment.split_whitespace().nth(1).unwrap_or(""),
        None => line,
    };
    name.starts_with("process_")
}

impl ApiObserver for Metrics {
    fn attempt(&self, operation: &str, error: Option<&'static str>) {
        self.api_requests.with_label_values(&[operation]).inc();
        if let Some(e) = error {
            self.api_errors.with_label_values(&[operation, e]).inc();
        }
    }
}

/// What the live part of the exposition reads from outside the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// The web configuration's reload status, when there is one.
    pub web: Option<ReloadStatus>,
    /// Connections open on the main listener.
    pub connections: Option<usize>,
}

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn org_labels(st: &OrgStatus) -> [(&'static str, &str); 2] {
    [
        ("organization_id", st.org.id.as_str()),
        ("organization", st.org.label.as_str()),
    ]
}

/// The labels of a token's series, into `out` (cleared first).
fn token_labels<'a>(
    config: &'a Config,
    st: &'a OrgStatus,
    inv: &'a OrgInventory,
    t: &'a Token,
    out: &mut Vec<(&'static str, &'a str)>,
) {
    out.clear();
    out.extend(org_labels(st));
    // The owner's labels next to each other, before the token's: consecutive series of one
    // owner then share a long run of text, which the compressed exposition pays for once.
    out.push(("user_id", t.user_id.as_str()));
    let owner = inv.owner_of(t);
    for ul in &config.metrics.user_labels {
        let v = owner.and_then(|o| match ul {
            crate::config::UserLabel::UserName => o.name.as_deref(),
            crate::config::UserLabel::Email => o.email.as_deref(),
            crate::config::UserLabel::DisplayName => o.display_name.as_deref(),
        });
        out.push((ul.label(), v.unwrap_or_default()));
    }
    out.push(("token_id", t.id.as_str()));
    out.push(("token_name", t.name.as_deref().unwrap_or_default()));
}

/// An organization's tokens by owner, then id: the order of the per-token series.
fn by_owner(inv: &OrgInventory) -> Vec<&Token> {
    let mut v: Vec<&Token> = inv.tokens.iter().collect();
    v.sort_by(|a, b| a.user_id.cmp(&b.user_id).then_with(|| a.id.cmp(&b.id)));
    v
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The gauges of the published state, family after family.
/// Where each organization lives, and how discovery went in each account and region.
fn write_placement<W: Write>(
    orgs: &[OrgStatus],
    discovery: &[DiscoveryStatus],
    w: &mut TextWriter<W>,
) -> io::Result<()> {
    let name = "workmail_pat_organization_info";
    w.gauge_family(
        name,
        "1 for each organization scanned here, labelled with its AWS account (empty when no role names it) and region, to join other series on.",
    );
    for st in orgs {
        let account = st.org.account_id.as_deref().unwrap_or_default();
        let mut l = org_labels(st).to_vec();
        l.extend([("account_id", account), ("region", st.org.region.as_str())]);
        w.sample(name, &l, 1.0)?;
    }
    if !discovery.is_empty() {
        let name = "workmail_pat_discovery_up";
        w.gauge_family(
            name,
            "1 when the last ListOrganizations of the discovery source (account, region) answered, 0 when it failed (a role that cannot be assumed, a denied call): the organizations it found before stay scanned.",
        );
        for d in discovery {
            let l = [
                ("account_id", d.account_id.as_str()),
                ("region", d.region.as_str()),
            ];
            w.sample(name, &l, if d.up { 1.0 } else { 0.0 })?;
        }
    }
    Ok(())
}

fn write_state<W: Write>(
    config: &Config,
    orgs: &[OrgStatus],
    w: &mut TextWriter<W>,
) -> io::Result<()> {
    // Per-token families: one series per token.
    if config.metrics.per_token {
        type Value = fn(&Token) -> Option<f64>;
        let per_token: [(&str, String, Value); 3] = [
            (
                "workmail_pat_token_expiry_timestamp_seconds",
                format!("When the token expires (Unix seconds). {REFRESH}"),
                |t| t.expires.map(ts),
            ),
            (
                "workmail_pat_token_created_timestamp_seconds",
                format!("When the token was created (Unix seconds). {REFRESH}"),
                |t| t.created.map(ts),
            ),
            (
                "workmail_pat_token_last_used_timestamp_seconds",
                format!(
                    "When the token was last used (Unix seconds); absent for never-used tokens. {REFRESH}"
                ),
                |t| t.last_used.map(ts),
            ),
        ];
        let ordered: Vec<(&OrgStatus, &OrgInventory, Vec<&Token>)> = inventories(orgs)
            .map(|(st, inv)| (st, inv, by_owner(inv)))
            .collect();
        let mut labels = Vec::new();
        for (name, help, value) in &per_token {
            w.gauge_family(name, help);
            for (st, inv, tokens) in &ordered {
                for t in tokens {
                    if let Some(v) = value(t) {
                        token_labels(config, st, inv, t, &mut labels);
                        w.sample(name, &labels, v)?;
                    }
                }
            }
        }
        let name = "workmail_pat_token_info";
        w.gauge_family(
            name,
            &format!("One series per token, with its owner's state and its scopes. {REFRESH}"),
        );
        for (st, inv, tokens) in &ordered {
            for t in tokens {
                token_labels(config, st, inv, t, &mut labels);
                let scopes = t.scopes.join(",");
                let mut l = labels.clone();
                l.push(("user_state", inv.owner_state(t).as_str()));
                l.push(("scopes", &scopes));
                w.sample(name, &l, 1.0)?;
            }
        }
    }

    // Per-organization families.
    type OrgValues = fn(&OrgStatus, &mut dyn FnMut(Option<(&'static str, &str)>, f64));
    let per_org: [(&str, String, OrgValues); 14] = [
        (
            "workmail_pat_tokens",
            format!("Tokens by status (active, expired) at the last complete scan. {REFRESH}"),
            |st, emit| {
                if let Some(s) = &st.stats {
                    emit(Some(("status", "active")), s.active as f64);
                    emit(Some(("status", "expired")), s.expired as f64);
                }
            },
        ),
        (
            "workmail_pat_tokens_expiring",
            format!("Active tokens expiring within each configured window. {REFRESH}"),
            |st, emit| {
                for (label, n) in st.stats.iter().flat_map(|s| &s.expiring) {
                    emit(Some(("within", label)), *n as f64);
                }
            },
        ),
        (
            "workmail_pat_tokens_unused",
            format!(
                "Tokens not used for at least each configured threshold (never-used tokens count from creation). {REFRESH}"
            ),
            |st, emit| {
                for (label, n) in st.stats.iter().flat_map(|s| &s.unused) {
                    emit(Some(("unused_for", label)), *n as f64);
                }
            },
        ),
        (
            "workmail_pat_tokens_never_used",
            format!("Tokens never used. {REFRESH}"),
            |st, emit| {
                if let Some(s) = &st.stats {
                    emit(None, s.never_used as f64);
                }
            },
        ),
        (
            "workmail_pat_tokens_by_owner_state",
            format!(
                "Tokens by their owner's state (UNKNOWN: owner not in the directory). {REFRESH}"
            ),
            |st, emit| {
                if let Some(s) = &st.stats {
                    for state in OwnerState::ALL {
                        emit(
                            Some(("user_state", state.as_str())),
                            s.with_owner_state(state) as f64,
                        );
                    }
                }
            },
        ),
        (
            "workmail_pat_token_owners",
            format!("Distinct users holding at least one token. {REFRESH}"),
            |st, emit| {
                if let Some(s) = &st.stats {
                    emit(None, s.owners as f64);
                }
            },
        ),
        (
            "workmail_pat_organization_pat_enabled",
            format!(
                "1 when personal access tokens are ACTIVE for the organization, 0 when INACTIVE; absent when not readable. {REFRESH}"
            ),
            |st, emit| {
                if let Some(p) = st.inventory.as_ref().and_then(|i| i.pat) {
                    emit(None, if p.enabled { 1.0 } else { 0.0 });
                }
            },
        ),
        (
            "workmail_pat_organization_pat_lifetime_seconds",
            format!("Configured token lifetime of the organization, in seconds. {REFRESH}"),
            |st, emit| {
                if let Some(days) = st
                    .inventory
                    .as_ref()
                    .and_then(|i| i.pat)
                    .and_then(|p| p.lifetime_days)
                {
                    emit(None, f64::from(days) * 86_400.0);
                }
            },
        ),
        (
            "workmail_pat_organization_up",
            "1 when the last scan of the organization completed, 0 when it failed or was partial (the last complete data stays published).".to_owned(),
            |st, emit| emit(None, if st.up { 1.0 } else { 0.0 }),
        ),
        (
            "workmail_pat_scan_last_success_timestamp_seconds",
            "When the last complete scan of the organization ended (Unix seconds).".to_owned(),
            |st, emit| {
                if let Some(t) = st.last_success {
                    emit(None, ts(t));
                }
            },
        ),
        (
            "workmail_pat_scan_duration_seconds",
            "Duration of the last scan attempt of the organization, in seconds.".to_owned(),
            |st, emit| {
                if let Some(d) = st.last_duration {
                    emit(None, d);
                }
            },
        ),
        (
            "workmail_pat_cleanup_candidates",
            "Tokens a cleanup rule named for deletion at the latest cleanup run.".to_owned(),
            |st, emit| {
                for (rule, n) in st.cleanup.iter().flat_map(|r| &r.candidates) {
                    emit(Some(("rule", rule)), *n as f64);
                }
            },
        ),
        (
            "workmail_pat_cleanup_last_run_timestamp_seconds",
            "When the latest cleanup run of the organization started (Unix seconds).".to_owned(),
            |st, emit| {
                if let Some(run) = &st.cleanup {
                    emit(None, ts(run.at));
                }
            },
        ),
        (
            "workmail_pat_cleanup_pending",
            format!(
                "Tokens that become eligible for deletion within cleanup.warn_before. {REFRESH}"
            ),
            |_, _| {},
        ),
    ];
    for (name, help, values) in &per_org {
        w.gauge_family(name, help);
        if *name == "workmail_pat_cleanup_pending" {
            write_pending(config, orgs, w)?;
            continue;
        }
        for st in orgs {
            let ol = org_labels(st);
            let mut result = Ok(());
            values(st, &mut |extra, v| {
                if result.is_err() {
                    return;
                }
                let mut l = ol.to_vec();
                l.extend(extra);
                result = w.sample(name, &l, v);
            });
            result?;
        }
    }

    if config.metrics.per_token {
        let name = "workmail_pat_token_deletion_eligible_timestamp_seconds";
        w.gauge_family(
            name,
            &format!(
                "When the token becomes (or became) eligible for deletion under a rule; for tokens eligible now or within cleanup.warn_before. {REFRESH}"
            ),
        );
        let mut labels = Vec::new();
        for (st, inv) in inventories(orgs) {
            let Some(plan) = &st.plan else { continue };
            let eligible_now = plan.candidates.iter().map(|c| (c.index, c.rule, c.since));
            let soon = plan.pending.iter().map(|p| (p.index, p.rule, p.at));
            let known = eligible_now
                .chain(soon)
                .filter(|(_, _, at)| *at != chrono::DateTime::<chrono::Utc>::MIN_UTC);
            for (index, rule, at) in known {
                if let Some(t) = inv.tokens.get(index) {
                    token_labels(config, st, inv, t, &mut labels);
                    labels.push(("rule", &config.cleanup.rule(rule).name));
                    w.sample(name, &labels, ts(at))?;
                }
            }
        }
    }
    Ok(())
}

/// `workmail_pat_cleanup_pending`: per organization and rule, zeros included.
fn write_pending<W: Write>(
    config: &Config,
    orgs: &[OrgStatus],
    w: &mut TextWriter<W>,
) -> io::Result<()> {
    for st in orgs {
        let Some(plan) = &st.plan else { continue };
        let mut per_rule: std::collections::HashMap<RuleId, u64> = Default::default();
        for p in &plan.pending {
            *per_rule.entry(p.rule).or_default() += 1;
        }
        for (id, rule) in config.cleanup.rules() {
            if rule.applies_to(&st.org.id) {
                let mut l = org_labels(st).to_vec();
                l.push(("rule", &rule.name));
                w.sample(
                    "workmail_pat_cleanup_pending",
                    &l,
                    per_rule.get(&id).copied().unwrap_or(0) as f64,
                )?;
            }
        }
    }
    Ok(())
}

/// The organizations that have a complete inventory, with it.
fn inventories(orgs: &[OrgStatus]) -> impl Iterator<Item = (&OrgStatus, &OrgInventory)> {
    orgs.iter()
        .filter_map(|st| st.inventory.as_deref().map(|inv| (st, inv)))
}
