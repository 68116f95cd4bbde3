//! The daemon: resolves the organizations (configured and discovered), runs one scan loop
//! per organization and the cleanup loop, serves HTTP, and drains on shutdown. Every
//! long-lived task is spawned here.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::workmail::SdkConfig;
use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::cleanup::{Cleaner, RunSummary};
use crate::clock::Clock;
use crate::config::Config;
use crate::httpd::{self, ServeOptions};
use crate::inventory::OrgRef;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::reload::{Applied, LiveConfig};
use crate::render::Renders;
use crate::scan::{self, OwnerCache, Progress, ScanError};
use crate::server::{self, AdminState, Routes};
use crate::state::{DiscoveryStatus, ScanFailure, Shared};
use crate::webconfig::LiveWebConfig;
use crate::workmail::{ClientFactory, ClientOptions, WorkMail};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long shutdown waits for in-flight work: long enough for the token in hand (a
/// re-read, an owner check and a delete, each with every retry), and at least 20 s.
fn drain_timeout(config: &Config) -> Duration {
    let call = config
        .scan
        .call_timeout
        .saturating_mul(config.scan.max_attempts);
    call.saturating_mul(3)
        .saturating_add(Duration::from_secs(60))
        .max(Duration::from_secs(20))
}

/// Where the AWS configuration comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The standard AWS chain.
    Env,
    /// An explicit SDK configuration (tests, the demo).
    Sdk(Box<SdkConfig>),
}

/// Knobs tests and the demo set; defaults are the production ones.
#[derive(Clone)]
pub struct Options {
    /// The clock.
    pub clock: Clock,
    /// First retry backoff of SDK clients.
    pub initial_backoff: Duration,
    /// Cancelled to stop a `once` cleanup run between tokens (SIGTERM from a CronJob).
    pub stop: CancellationToken,
    /// The web configuration (TLS, basic auth, headers) of the main listener.
    pub web: Option<Arc<LiveWebConfig>>,
    /// The HTTP limits of both listeners.
    pub http: ServeOptions,
    /// Counts the log lines the binary's non-blocking log writer dropped.
    pub log_drops: Option<crate::metrics::LogDrops>,
    /// Reads the configuration again, for a reload (`SIGHUP`, `POST /-/reload`): the file
    /// the process started with, with the command line's overrides. Without one, a reload
    /// is refused.
    pub loader: Option<Loader>,
}

/// Reads the configuration again; an error names the file and key.
pub type Loader = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// A function run at the start of every scan task: the seam through which fault-injection
/// tests make a scan panic (see [`Context::with_scan_hook`]). Nothing else sets one.
#[derive(Clone)]
pub struct ScanHook(pub Arc<dyn Fn(&OrgRef) + Send + Sync>);

impl std::fmt::Debug for ScanHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScanHook")
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Clock::System,
            initial_backoff: Duration::from_secs(1),
            stop: CancellationToken::new(),
            web: None,
            http: ServeOptions::default(),
            log_drops: None,
            loader: None,
        }
    }
}

/// Where a client points and as whom: a client is kept across resolutions (and reloads)
/// only while this stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientSpec {
    region: String,
    role: Option<(String, Option<String>)>,
    /// The factory's generation (a reload that changes retries or timeouts bumps it).
    factory: u64,
}

/// Everything the daemon's tasks share.
#[derive(Clone)]
pub struct Context {
    /// The configuration in force (replaced by a reload).
    pub live: LiveConfig,
    /// Published state.
    pub shared: Arc<Shared>,
    /// Metrics.
    pub metrics: Metrics,
    /// The clock.
    pub clock: Clock,
    /// Builds clients (rebuilt by a reload that changes their retries or timeouts).
    factory: Arc<Mutex<ClientFactory>>,
    /// The first retry backoff clients are built with.
    initial_backoff: Duration,
    /// The owner cache.
    pub cache: Arc<OwnerCache>,
    /// Clients by organization id, with what they were built for.
    clients: Arc<Mutex<HashMap<String, (ClientSpec, WorkMail)>>>,
    /// Re-reads the configuration for a reload.
    loader: Option<Loader>,
    /// Held while a reload is applied: reloads happen one at a time.
    reloading: Arc<Mutex<()>>,
    /// Organizations each discovery region listed last.
    discovered: Arc<Mutex<HashMap<String, Vec<OrgRef>>>>,
    /// Regions whose discovery failed at the last resolution.
    discovery_failures: Arc<Mutex<Vec<String>>>,
    before_scan: Option<ScanHook>,
}

impl Context {
    /// Builds the shared context.
    pub async fn new(config: Config, source: Source, opts: &Options) -> Self {
        let cache = Arc::new(OwnerCache::new(config.scan.user_cache_ttl));
        let client_opts = ClientOptions {
            initial_backoff: opts.initial_backoff,
            ..ClientOptions::from_scan(&config.scan)
        };
        let live = LiveConfig::new(config, opts.clock.now());
        let metrics = Metrics::new(live.clone(), opts.log_drops.clone());
        let observer: Arc<dyn crate::workmail::ApiObserver> = Arc::new(metrics.clone());
        let factory = match source {
            Source::Env => ClientFactory::from_env(&client_opts, observer).await,
            Source::Sdk(sdk) => ClientFactory::from_sdk_config(*sdk, &client_opts, observer),
        };
        Self {
            cache,
            live,
            shared: Arc::new(Shared::default()),
            metrics,
            clock: opts.clock.clone(),
            factory: Arc::new(Mutex::new(factory)),
            initial_backoff: opts.initial_backoff,
            clients: Arc::new(Mutex::new(HashMap::new())),
            loader: opts.loader.clone(),
            reloading: Arc::new(Mutex::new(())),
            discovered: Arc::new(Mutex::new(HashMap::new())),
            discovery_failures: Arc::new(Mutex::new(Vec::new())),
            before_scan: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.live.current()
    }

    fn factory(&self) -> ClientFactory {
        lock(&self.factory).clone()
    }

    /// The client of each organization.
    pub fn clients(&self) -> HashMap<String, WorkMail> {
        lock(&self.clients)
            .iter()
            .map(|(id, (_, c))| (id.clone(), c.clone()))
            .collect()
    }

    /// This context, with `hook` run at the start of every scan task (fault injection).
    pub fn with_scan_hook(mut self, hook: ScanHook) -> Self {
        self.before_scan = Some(hook);
        self
    }

    /// Resolves the organizations to scan: configured ones, plus the Active ones that
    /// discovery finds. Builds a client per organization, or keeps the one it has while the
    /// organization's region and role stay the same.
    pub async fn resolve_orgs(&self) -> anyhow::Result<Vec<OrgRef>> {
        let config = self.config();
        let factory = self.factory();
        let default_region = factory.default_region();
        let mut orgs: Vec<OrgRef> = Vec::new();
        let mut specs = HashMap::new();
        for o in &config.organizations {
            let region = o
                .region
                .clone()
                .or_else(|| default_region.clone())
                .with_context(|| {
                    format!(
                        "organization {}: no region (set organizations[].region or AWS_REGION)",
                        o.id
                    )
                })?;
            let org = OrgRef {
                id: o.id.clone(),
                label: o.alias.clone().unwrap_or_else(|| o.id.clone()),
                region: region.clone(),
                account_id: o
                    .role_arn
                    .as_deref()
                    .and_then(crate::config::account_of)
                    .map(str::to_owned),
            };
            let role = o.role_arn.clone().map(|a| (a, o.external_id.clone()));
            let spec = ClientSpec {
                region,
                role,
                factory: factory.generation(),
            };
            specs.insert(org.id.clone(), spec);
            orgs.push(org);
        }
        let mut failures = Vec::new();
        let mut statuses = Vec::new();
        let sources = config
            .discovery
            .as_ref()
            .map(|d| d.sources())
            .unwrap_or_default();
        for source in &sources {
            let owned_role = source
                .role
                .map(|(a, e)| (a.to_owned(), e.map(str::to_owned)));
            let account = source.account_id.unwrap_or_default();
            for region in source.regions {
                // One entry per (role, region): two accounts may list the same region.
                let key = format!("{}|{region}", source.role.map_or("", |(a, _)| a));
                let listed = self
                    .discover(&factory, &config, region, source.role, account)
                    .await;
                statuses.push(DiscoveryStatus {
                    account_id: account.to_owned(),
                    region: region.clone(),
                    up: listed.is_ok(),
                });
                let found = match listed {
                    Ok(found) => {
                        lock(&self.discovered).insert(key, found.clone());
                        found
                    }
                    Err(e) => {
                        // One failing account or region must not take the others (or the
                        // configured organizations) down: keep what it last listed.
                        let place = match source.role {
                            Some((arn, _)) => format!("{region} with {arn}"),
                            None => region.clone(),
                        };
                        tracing::error!(region = %region, account, error = %e, hint = e.hint.as_deref().unwrap_or(""), "discovery failed; keeping the organizations it found last time");
                        failures.push(match &e.hint {
                            Some(h) => format!("discovery in {place}: {e}\n  hint: {h}"),
                            None => format!("discovery in {place}: {e}"),
                        });
                        lock(&self.discovered)
                            .get(&key)
                            .cloned()
                            .unwrap_or_default()
                    }
                };
                for org in found {
                    if orgs.iter().any(|o| o.id == org.id) {
                        continue;
                    }
                    let spec = ClientSpec {
                        region: region.clone(),
                        role: owned_role.clone(),
                        factory: factory.generation(),
                    };
                    specs.insert(org.id.clone(), spec);
                    orgs.push(org);
                }
            }
        }
        self.shared.set_discovery(statuses);
        *lock(&self.discovery_failures) = failures;
        // Another shard's organizations are not scanned, exported or cleaned here.
        orgs.retain(|o| config.scan.owns(&o.id));
        specs.retain(|id, _| config.scan.owns(id));
        let mut existing = std::mem::take(&mut *lock(&self.clients));
        let mut clients = HashMap::new();
        for (id, spec) in specs {
            let client = match existing.remove(&id) {
                Some((had, c)) if had == spec => c,
                _ => {
                    let role = spec.role.as_ref().map(|(a, e)| (a.as_str(), e.as_deref()));
                    factory.client(Some(&spec.region), role, &id).await
                }
            };
            clients.insert(id, (spec, client));
        }
        *lock(&self.clients) = clients;
        orgs.sort();
        self.shared.set_orgs(&orgs);
        Ok(orgs)
    }

    /// The Active organizations `ListOrganizations` lists in one region.
    async fn discover(
        &self,
        factory: &ClientFactory,
        config: &Config,
        region: &str,
        role: Option<(&str, Option<&str>)>,
        account: &str,
    ) -> Result<Vec<OrgRef>, crate::workmail::ApiError> {
        let client = factory
            .client(Some(region), role, &discovery_partition(account, region))
            .await;
        let mut found = Vec::new();
        let mut pager = crate::workmail::Pager::new("ListOrganizations");
        loop {
            let (page, following) = client
                .list_organizations_page(pager.token(), config.scan.page_size)
                .await?;
            found.extend(
                page.into_iter()
                    .filter(|s| s.state.as_deref() == Some("Active"))
                    .map(|s| OrgRef {
                        label: s.alias.clone().unwrap_or_else(|| s.id.clone()),
                        id: s.id,
                        region: region.to_owned(),
                        account_id: (!account.is_empty()).then(|| account.to_owned()),
                    }),
            );
            if !pager.advance(following)? {
                return Ok(found);
            }
        }
    }

    /// Why the last resolution could not discover every region (empty when it could).
    pub fn discovery_failures(&self) -> Vec<String> {
        lock(&self.discovery_failures).clone()
    }

    /// Re-reads the configuration and puts it in force (`SIGHUP`, `POST /-/reload`). The
    /// organizations that stay keep their published data, owner cache and clients; the
    /// scheduler adds and drops the others. A configuration that does not load is refused:
    /// the one in force stays, the error is logged and returned, and
    /// `workmail_pat_config_last_reload_successful` turns 0. Settings that cannot change
    /// while the process runs keep their values and are named in the result.
    pub fn reload(&self) -> Result<Applied, String> {
        let _one_at_a_time = lock(&self.reloading);
        match self.try_reload() {
            Ok(applied) => {
                tracing::info!("configuration reloaded");
                for key in &applied.restart_required {
                    tracing::warn!(
                        key,
                        "this setting changed but needs a restart; the old value stays in force"
                    );
                }
                Ok(applied)
            }
            Err(e) => {
                self.live.refused();
                tracing::error!(
                    error = %e,
                    "configuration reload refused; the previous configuration stays in force"
                );
                Err(e)
            }
        }
    }

    fn try_reload(&self) -> Result<Applied, String> {
        let loader = self
            .loader
            .as_ref()
            .ok_or("this process was not started from a configuration file: nothing to reload")?;
        let new = loader()?;
        let factory = self.factory();
        if factory.default_region().is_none()
            && let Some((i, o)) = new
                .organizations
                .iter()
                .enumerate()
                .find(|(_, o)| o.region.is_none())
        {
            return Err(format!(
                "organizations[{i}] ({}): no region (set organizations[].region or AWS_REGION)",
                o.id
            ));
        }
        let old = self.config();
        let opts = ClientOptions::from_scan(&new.scan);
        if opts != ClientOptions::from_scan(&old.scan) {
            // New retries or timeouts: every client is rebuilt at the next resolution.
            let opts = ClientOptions {
                initial_backoff: self.initial_backoff,
                ..opts
            };
            *lock(&self.factory) = factory.with_options(&opts);
        }
        self.cache.set_ttl(new.scan.user_cache_ttl);
        let applied = self.live.replace(new, self.clock.now());
        // The kept inventories are measured and planned again under the new settings.
        self.shared.reconfigure(&self.config());
        Ok(applied)
    }

    /// Scans one organization and publishes the result. A panic in the scan is caught,
    /// counted and reported as a failed scan.
    pub async fn scan_and_publish(
        &self,
        org: &OrgRef,
        progress: Option<Progress>,
    ) -> Result<(), ScanError> {
        let span = tracing::info_span!("scan", organization = %org.label);
        self.scan_in_span(org, progress, span.clone())
            .instrument(span)
            .await
    }

    async fn scan_in_span(
        &self,
        org: &OrgRef,
        progress: Option<Progress>,
        span: tracing::Span,
    ) -> Result<(), ScanError> {
        let client = lock(&self.clients).get(&org.id).map(|(_, c)| c.clone());
        let Some(client) = client else {
            return Err(ScanError::Internal(format!("no client for {}", org.id)));
        };
        let started = tokio::time::Instant::now();
        // The whole scan, and the publication of its result, use one configuration.
        let config = self.config();
        let task = {
            let org = org.clone();
            let scan_cfg = config.scan.clone();
            let cache = self.cache.clone();
            let clock = self.clock.clone();
            let hook = self.before_scan.clone();
            // Aborted when dropped: a scan whose loop was cancelled stops with it.
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                async move {
                    if let Some(h) = hook {
                        (h.0)(&org);
                    }
                    let inv = scan::scan_org(
                        &client,
                        &org,
                        &scan_cfg,
                        &cache,
                        clock.now(),
                        progress.as_ref(),
                    )
                    .await;
                    inv.map(|mut inv| {
                        inv.scanned_at = clock.now();
                        inv
                    })
                }
                .instrument(span),
            ))
        };
        let result = match task.await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.internal_error();
                Err(ScanError::Internal(if e.is_panic() {
                    "the scan task panicked".to_owned()
                } else {
                    "the scan task was cancelled".to_owned()
                }))
            }
        };
        let duration = started.elapsed().as_secs_f64();
        match result {
            Ok(inv) => {
                tracing::info!(
                    tokens = inv.tokens.len(),
                    owners = inv.owners.len(),
                    seconds = duration,
                    "scan complete"
                );
                let now = inv.scanned_at;
                self.shared.scan_succeeded(&config, inv, duration, now);
                Ok(())
            }
            Err(e) => {
                match e.hint() {
                    Some(hint) => tracing::warn!(
                        kind = e.kind(),
                        error = %e,
                        hint,
                        "scan failed; keeping the last complete data"
                    ),
                    None => tracing::warn!(
                        kind = e.kind(),
                        error = %e,
                        "scan failed; keeping the last complete data"
                    ),
                }
                if let ScanError::Api(api) = &e {
                    tracing::debug!(detail = %api.detail, "scan failure in full");
                }
                self.shared.scan_failed(
                    org,
                    ScanFailure {
                        kind: e.kind(),
                        message: e.to_string(),
                        hint: e.hint().map(str::to_owned),
                        at: self.clock.now(),
                    },
                    duration,
                );
                Err(e)
            }
        }
    }

    /// One cleanup run over the latest complete scans, recorded in `ledger` (without one,
    /// nothing can be deleted).
    /// One cleanup run over the latest complete scans, recorded in `ledger` (without one,
    /// nothing can be deleted). The run keeps the configuration in force at its start.
    pub async fn cleanup(
        &self,
        ledger: Option<&mut Ledger>,
        cancel: &CancellationToken,
    ) -> RunSummary {
        let config = self.config();
        self.cleaner(&config, cancel)
            .run(ledger, self.clock.now())
            .await
    }

    /// Reconciles the ledger's open intents only (no plan, no delete).
    pub async fn reconcile(&self, ledger: &mut Ledger, cancel: &CancellationToken) -> RunSummary {
        let config = self.config();
        self.cleaner(&config, cancel).reconcile_only(ledger).await
    }

    fn cleaner<'a>(&'a self, config: &'a Config, cancel: &'a CancellationToken) -> Cleaner<'a> {
        Cleaner {
            config,
            shared: &self.shared,
            clients: self.clients(),
            metrics: &self.metrics,
            cancel,
            clock: &self.clock,
        }
    }
}

/// The retry partition of discovery in one account and region.
fn discovery_partition(account: &str, region: &str) -> String {
    if account.is_empty() {
        format!("discovery-{region}")
    } else {
        format!("discovery-{account}-{region}")
    }
}

/// What `check-config --scan` found before scanning: the credentials, and each permission
/// the configuration needs.
pub struct Preflight {
    /// Where the credentials came from, or why there are none.
    pub credentials: Result<crate::workmail::CredentialsSource, String>,
    /// The default region of the AWS chain.
    pub default_region: Option<String>,
    /// `ListOrganizations` per discovery region.
    pub discovery: Vec<(String, crate::workmail::Permission)>,
    /// Each organization's permissions.
    pub orgs: Vec<(OrgRef, Vec<crate::workmail::Permission>)>,
}

impl Preflight {
    /// Whether everything the configuration needs is allowed.
    pub fn passed(&self) -> bool {
        self.credentials.is_ok()
            && self.discovery.iter().all(|(_, p)| !p.fails())
            && self.orgs.iter().flat_map(|(_, ps)| ps).all(|p| !p.fails())
    }
}

impl Context {
    /// Resolves the organizations and tries, with calls that change nothing, every
    /// permission the configuration needs.
    pub async fn preflight(&self) -> anyhow::Result<Preflight> {
        use crate::config::{CleanupMode, OwnerLookup};
        let config = self.config();
        let factory = self.factory();
        let credentials = factory.credentials_source().await;
        let mut discovery = Vec::new();
        for source in config.discovery.iter().flat_map(|d| d.sources()) {
            let account = source.account_id.unwrap_or_default();
            for region in source.regions {
                let client = factory
                    .client(
                        Some(region),
                        source.role,
                        &discovery_partition(account, region),
                    )
                    .await;
                let place = match source.role {
                    Some((arn, _)) => format!("{region} with {arn}"),
                    None => region.clone(),
                };
                discovery.push((place, client.preflight_discovery().await));
            }
        }
        let orgs = self.resolve_orgs().await?;
        let lookup = config.scan.owner_lookup;
        let mut out = Vec::new();
        for org in orgs {
            let Some(client) = self.clients().get(&org.id).cloned() else {
                continue;
            };
            let mode = config.cleanup_mode(&org.id);
            let needs = crate::workmail::Needs {
                describe_user: lookup != OwnerLookup::List,
                list_users: lookup != OwnerLookup::Describe,
                cleanup: mode != CleanupMode::Off && !config.cleanup.rules.is_empty(),
                delete: mode == CleanupMode::Enforce,
            };
            let permissions = client.preflight(&org.id, needs).await;
            out.push((org, permissions));
        }
        Ok(Preflight {
            credentials,
            default_region: factory.default_region(),
            discovery,
            orgs: out,
        })
    }
}

/// Opens the configured cleanup ledger (`cleanup.audit_log`), or none.
pub fn open_ledger(config: &Config) -> anyhow::Result<Option<Ledger>> {
    config
        .cleanup
        .audit_log
        .as_deref()
        .map(Ledger::open)
        .transpose()
        .map_err(Into::into)
}

/// A running daemon.
pub struct Daemon {
    /// The shared context.
    pub ctx: Context,
    /// Where the admin server listens.
    pub addr: SocketAddr,
    /// Where the probe server listens, when configured.
    pub probe_addr: Option<SocketAddr>,
    /// The kept bodies of the admin routes.
    pub renders: Arc<Renders>,
    /// The main listener's open connections.
    pub connections: httpd::Connections,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    http_shutdown: CancellationToken,
    http_tracker: TaskTracker,
}

impl Daemon {
    /// Starts every task; returns once the listeners are bound.
    pub async fn start(config: Config, source: Source, opts: Options) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("server.listen: cannot bind {}", config.server.listen))?;
        let probe = match config.server.probe_listen {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("server.probe_listen: cannot bind {a}"))?,
            ),
            None => None,
        };
        let ledger = open_ledger(&config)?;
        let ctx = Context::new(config, source, &opts).await;
        let addr = listener.local_addr()?;
        let probe_addr = probe.as_ref().map(|l| l.local_addr()).transpose()?;
        // Two phases: work (scans, cleanup) drains first while HTTP keeps answering, so
        // /readyz says 503 and /metrics stays scrapeable until the work is done.
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let http_shutdown = CancellationToken::new();
        let http_tracker = TaskTracker::new();
        // The bodies of /metrics and the pages: rendered on every change of the state, for
        // as long as HTTP is served (so /metrics stays current while work drains).
        let renders = Arc::new(Renders::new(
            ctx.shared.clone(),
            ctx.metrics.clone(),
            ctx.live.clone(),
            ctx.clock.clone(),
        ));
        http_tracker.spawn(renders.clone().run(http_shutdown.clone()));
        // Each listener counts its own connections.
        let main_http = ServeOptions {
            connections: Default::default(),
            ..opts.http.clone()
        };
        let probe_http = ServeOptions {
            connections: Default::default(),
            ..opts.http.clone()
        };
        let reload: crate::reload::Reload = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.reload())
        };
        let admin = AdminState {
            config: ctx.live.clone(),
            reload,
            shared: ctx.shared.clone(),
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            web: opts.web.clone(),
            renders: renders.clone(),
            connections: main_http.connections.clone(),
        };
        let connections = main_http.connections.clone();
        for (l, routes, http) in [
            (Some(listener), Routes::All, main_http),
            (probe, Routes::ProbesOnly, probe_http),
        ] {
            let Some(l) = l else { continue };
            let admin = admin.clone();
            let handler = move |req| server::handle(admin.clone(), routes, req);
            // TLS is decided here, once: a reload cannot turn it off (or on).
            let tls = match (&opts.web, routes) {
                (Some(w), Routes::All) if w.current().tls.is_some() => Some(w.clone()),
                _ => None,
            };
            match tls {
                Some(w) => {
                    http_tracker.spawn(httpd::serve_tls(l, http, http_shutdown.clone(), w, handler))
                }
                None => http_tracker.spawn(httpd::serve(l, http, http_shutdown.clone(), handler)),
            };
        }

        // The scheduler: discovery, one loop per organization, and the cleanup loop. It
        // resolves the organizations again at every discovery interval and at every reload.
        let sched_ctx = ctx.clone();
        let token = shutdown.clone();
        let sched_tracker = tracker.clone();
        tracker.spawn(async move {
            let mut loops: HashMap<String, (OrgRef, CancellationToken)> = HashMap::new();
            let mut reloads = sched_ctx.live.subscribe();
            {
                let ctx = sched_ctx.clone();
                let token = token.clone();
                sched_tracker.spawn(async move { cleanup_loop(ctx, ledger, token).await });
            }
            loop {
                match sched_ctx.resolve_orgs().await {
                    Ok(orgs) => {
                        loops.retain(|id, (had, t)| {
                            let now = orgs.iter().find(|o| &o.id == id);
                            if now.is_none() {
                                sched_ctx.cache.forget_org(id);
                            }
                            // A renamed or moved organization gets a new loop (same data).
                            let keep = now == Some(had);
                            if !keep {
                                t.cancel();
                            }
                            keep
                        });
                        for org in orgs {
                            if loops.contains_key(&org.id) {
                                continue;
                            }
                            let t = token.child_token();
                            loops.insert(org.id.clone(), (org.clone(), t.clone()));
                            let ctx = sched_ctx.clone();
                            sched_tracker.spawn(async move { org_loop(ctx, org, t).await });
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "cannot resolve organizations");
                    }
                }
                let config = sched_ctx.config();
                // Without discovery the set of organizations changes only with a reload.
                let rediscover = config.discovery.is_some() || loops.is_empty();
                tokio::select! {
                    _ = token.cancelled() => break,
                    r = reloads.changed() => if r.is_err() { break },
                    _ = tokio::time::sleep(config.scan.interval), if rediscover => {}
                }
            }
        });
        Ok(Self {
            ctx,
            addr,
            probe_addr,
            renders,
            connections,
            shutdown,
            tracker,
            http_shutdown,
            http_tracker,
        })
    }

    /// Starts a graceful shutdown and waits for it (bounded).
    pub async fn stop(self) {
        self.ctx.shared.shutting_down();
        self.shutdown.cancel();
        self.tracker.close();
        let drain = drain_timeout(&self.ctx.config());
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain timed out; exiting with work in flight");
        }
        // The servers drain their own connections (bounded by their options).
        self.http_shutdown.cancel();
        self.http_tracker.close();
        self.http_tracker.wait().await;
    }
}

/// How long the loop of an organization waits after a scan: the scan interval after a
/// complete one; after `failures` failed ones in a row, 30 s doubling with each (never more
/// often than every 30 s, unless the interval is shorter), and never longer than the interval.
pub fn next_scan_in(failures: u32, interval: Duration) -> Duration {
    const FIRST_RETRY: Duration = Duration::from_secs(30);
    if failures == 0 {
        return interval;
    }
    let doublings = (failures - 1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(interval)
}

async fn org_loop(ctx: Context, org: OrgRef, cancel: CancellationToken) {
    let mut failures = 0u32;
    let mut reloads = ctx.live.subscribe();
    loop {
        // Cancellation first: an organization that was dropped must not publish again.
        let scanned = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            r = ctx.scan_and_publish(&org, None) => r,
        };
        failures = if scanned.is_ok() {
            0
        } else {
            failures.saturating_add(1)
        };
        let ended = tokio::time::Instant::now();
        if !wait_after(&ctx, &mut reloads, &cancel, ended, |c| {
            next_scan_in(failures, c.scan.interval)
        })
        .await
        {
            return;
        }
    }
}

/// Waits until `wait(config)` after `since`, measured again under each configuration a
/// reload puts in force (a shorter interval takes effect at once). False when cancelled.
async fn wait_after(
    ctx: &Context,
    reloads: &mut tokio::sync::watch::Receiver<Arc<Config>>,
    cancel: &CancellationToken,
    since: tokio::time::Instant,
    wait: impl Fn(&Config) -> Duration,
) -> bool {
    loop {
        let until = since + wait(&ctx.config());
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep_until(until) => return true,
            r = reloads.changed() => if r.is_err() { return false },
        }
    }
}

/// Runs cleanup after the first complete scan round at or past each interval, while the
/// configuration in force enables it.
async fn cleanup_loop(ctx: Context, ledger: Option<Ledger>, cancel: CancellationToken) {
    let mut ledger = Some(ledger);
    let mut changes = ctx.shared.subscribe();
    let mut reloads = ctx.live.subscribe();
    loop {
        while !ctx.config().cleanup_enabled() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = reloads.changed() => if r.is_err() { return },
            }
        }
        let due = ctx.clock.now();
        // Wait until every organization has finished a scan attempt at or after `due`.
        loop {
            let fresh = {
                let snap = ctx.shared.snapshot();
                !snap.is_empty()
                    && snap
                        .iter()
                        .all(|s| s.last_attempt.is_some_and(|t| t >= due))
            };
            if fresh {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
            }
        }
        // The run itself is not raced against shutdown: it checks between tokens and
        // finishes the token in hand.
        // It runs as a task of its own so that a panic (a bug) is caught and counted; the
        // ledger is handed over and back, and reopened if the task died with it.
        let mut held = match ledger.take() {
            Some(l) => l,
            None => match open_ledger(&ctx.config()) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "cannot reopen the cleanup ledger; no cleanup run"
                    );
                    let since = tokio::time::Instant::now();
                    if !wait_after(&ctx, &mut reloads, &cancel, since, |c| c.cleanup.interval).await
                    {
                        return;
                    }
                    continue;
                }
            },
        };
        let run = {
            let ctx = ctx.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let summary = ctx.cleanup(held.as_mut(), &cancel).await;
                (held, summary)
            })
        };
        match run.await {
            Ok((held, _summary)) => ledger = Some(held),
            Err(e) => {
                ctx.metrics.internal_error();
                tracing::error!(
                    panic = e.is_panic(),
                    "the cleanup run died; the next one starts at the next interval"
                );
            }
        }
        let since = tokio::time::Instant::now();
        if !wait_after(&ctx, &mut reloads, &cancel, since, |c| c.cleanup.interval).await {
            return;
        }
    }
}

/// Runs the daemon until `shutdown` resolves, reloading the configuration at each message
/// on `reloads` (`SIGHUP`).
pub async fn run(
    config: Config,
    source: Source,
    opts: Options,
    shutdown: impl Future<Output = ()>,
    mut reloads: tokio::sync::mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let web = opts.web.as_ref().map(|w| w.current());
    let tls = web.as_ref().is_some_and(|w| w.tls.is_some());
    let basic_auth = web.as_ref().is_some_and(|w| w.config.basic_auth());
    if basic_auth && !tls {
        tracing::warn!("basic auth without TLS: passwords cross the network in clear text");
    }
    let daemon = Daemon::start(config, source, opts).await?;
    tracing::info!(addr = %daemon.addr, tls, basic_auth, "serving /metrics");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reloads.recv() => {
                // The outcome is logged and exported by the reload itself.
                let _ = daemon.ctx.reload();
            }
        }
    }
    tracing::info!("shutting down");
    daemon.stop().await;
    Ok(())
}

/// Result of `once`.
pub struct OnceOutcome {
    /// Organizations and whether each scan completed.
    pub scans: Vec<(OrgRef, Result<(), ScanError>)>,
    /// The cleanup run, when cleanup is configured (and no signal came first).
    pub cleanup: Option<RunSummary>,
    /// Discovery regions that could not be listed.
    pub discovery_errors: Vec<String>,
    /// Whether a signal cut the run short.
    pub interrupted: bool,
    /// The context, for reports.
    pub ctx: Context,
}

impl OnceOutcome {
    /// Whether every organization was found and scanned completely.
    pub fn complete(&self) -> bool {
        !self.interrupted
            && self.discovery_errors.is_empty()
            && self.scans.iter().all(|(_, r)| r.is_ok())
    }
}

/// One scan of every organization (concurrently), then one cleanup run when configured.
pub async fn once(
    config: Config,
    source: Source,
    opts: Options,
    progress: Option<Progress>,
) -> anyhow::Result<OnceOutcome> {
    let mut ledger = open_ledger(&config)?;
    let ctx = Context::new(config, source, &opts).await;
    let orgs = ctx.resolve_orgs().await?;
    let discovery_errors = ctx.discovery_failures();
    let mut set = tokio::task::JoinSet::new();
    for org in orgs.clone() {
        let ctx = ctx.clone();
        let progress = progress.clone();
        set.spawn(async move {
            let r = ctx.scan_and_publish(&org, progress).await;
            (org, r)
        });
    }
    let mut scans = Vec::new();
    let mut interrupted = false;
    loop {
        tokio::select! {
            biased;
            // A signal (a CronJob's deadline) stops the scans: nothing to finish there.
            _ = opts.stop.cancelled(), if !interrupted => {
                interrupted = true;
                set.abort_all();
            }
            r = set.join_next() => match r {
                None => break,
                Some(Ok(s)) => scans.push(s),
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => anyhow::bail!("scan task failed: {e}"),
            },
        }
    }
    for org in orgs {
        if !scans.iter().any(|(o, _)| o.id == org.id) {
            scans.push((
                org,
                Err(ScanError::Internal("interrupted by a signal".to_owned())),
            ));
        }
    }
    scans.sort_by(|a, b| a.0.cmp(&b.0));
    let cleanup = if ctx.config().cleanup_enabled() && !opts.stop.is_cancelled() {
        // A signal stops the run between tokens: the token in hand is finished and audited.
        Some(ctx.cleanup(ledger.as_mut(), &opts.stop).await)
    } else {
        None
    };
    Ok(OnceOutcome {
        scans,
        cleanup,
        discovery_errors,
        interrupted: interrupted || opts.stop.is_cancelled(),
        ctx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_scan_is_retried_sooner_backing_off_to_the_interval() {
        let s = Duration::from_secs;
        let cases = [
            ("complete", 0, s(600), s(600)),
            ("first failure", 1, s(600), s(30)),
            ("second", 2, s(600), s(60)),
            ("third", 3, s(600), s(120)),
            ("fifth", 5, s(600), s(480)),
            ("capped at the interval", 6, s(600), s(600)),
            ("many", 40, s(600), s(600)),
            ("an interval under 30 s", 1, s(10), s(10)),
            ("an interval under 30 s, complete", 0, s(10), s(10)),
        ];
        for (case, failures, interval, want) in cases {
            assert_eq!(next_scan_in(failures, interval), want, "case: {case}");
        }
    }
}
