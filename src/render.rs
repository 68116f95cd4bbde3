//! The admin routes' bodies, rendered once per published snapshot and kept compressed
//! ([`Compressed`]): the state part of `/metrics` eagerly, whenever a scan or cleanup run
//! publishes; the tokens API and the status page at the first request after a change, one
//! render serving every request that waits for it. Renders run on the blocking pool, at most
//! [`MAX_RENDERS`] at once, so they never hold up the async workers (and the probes).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::metrics::exposition::Compressed;
use crate::reload::LiveConfig;
use crate::state::Shared;

/// Renders that may run at once (each is a pass over the whole inventory).
pub const MAX_RENDERS: usize = 2;

/// A body rendered for one generation of the published state.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// The generation it was rendered from ([`Shared::generation`]).
    pub generation: u64,
    /// The body.
    pub body: Compressed,
}

/// One generation's lazily rendered body, shared by every request that asks for it.
type Lazy = Mutex<(u64, Arc<OnceCell<Arc<Kept>>>)>;

/// The kept bodies of the admin routes.
pub struct Renders {
    shared: Arc<Shared>,
    metrics: Metrics,
    config: LiveConfig,
    clock: Clock,
    exposition: Mutex<Arc<Kept>>,
    rendered: watch::Sender<u64>,
    tokens: Lazy,
    status: Lazy,
    gate: Semaphore,
}

impl std::fmt::Debug for Renders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renders").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Renders {
    /// Nothing rendered yet.
    pub fn new(shared: Arc<Shared>, metrics: Metrics, config: LiveConfig, clock: Clock) -> Self {
        let fresh = || Mutex::new((u64::MAX, Arc::new(OnceCell::new())));
        Self {
            shared,
            metrics,
            config,
            clock,
            exposition: Mutex::new(Arc::new(Kept::default())),
            rendered: watch::channel(0).0,
            tokens: fresh(),
            status: fresh(),
            gate: Semaphore::new(MAX_RENDERS),
        }
    }

    /// Renders the state part of `/metrics` now, and again after every change of the
    /// published state, until `cancel`. Changes that arrive during a render are rendered
    /// once, after it.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut changes = self.shared.subscribe();
        loop {
            changes.mark_unchanged();
            self.render_exposition().await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
            }
        }
    }

    async fn render_exposition(&self) {
        let Ok(_permit) = self.gate.acquire().await else {
            return;
        };
        let generation = self.shared.generation();
        let snapshot = self.shared.snapshot();
        let discovery = self.shared.discovery();
        let metrics = self.metrics.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            Compressed::render(|w| metrics.write_state(&snapshot, &discovery, w))
        })
        .await;
        match rendered {
            Ok(Ok(body)) => {
                *lock(&self.exposition) = Arc::new(Kept { generation, body });
                self.rendered.send_replace(generation);
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot render /metrics"),
            Err(e) => tracing::error!(error = %e, "the /metrics render died"),
        }
    }

    /// The state part of `/metrics` as last rendered.
    pub fn exposition(&self) -> Arc<Kept> {
        lock(&self.exposition).clone()
    }

    /// The generation of the state part of `/metrics` last rendered.
    pub fn exposition_generation(&self) -> u64 {
        *self.rendered.borrow()
    }

    /// Waits until the state part of `/metrics` reflects at least `generation`.
    pub async fn exposition_at_least(&self, generation: u64) {
        let mut rx = self.rendered.subscribe();
        let _ = rx.wait_for(|g| *g >= generation).await;
    }

    /// The tokens API's JSON for the current state.
    pub async fn tokens(&self) -> Option<Arc<Kept>> {
        let (config, clock) = (self.config.current(), self.clock.clone());
        self.lazy(&self.tokens, move |snapshot| {
            Compressed::render(|w| crate::report::write_json(&config, &snapshot, clock.now(), w))
        })
        .await
    }

    /// The status page's HTML for the current state.
    pub async fn status(&self) -> Option<Arc<Kept>> {
        let (config, clock) = (self.config.current(), self.clock.clone());
        self.lazy(&self.status, move |snapshot| {
            let page = crate::status::render(&config, &snapshot, clock.now());
            Compressed::render(|w| w.write_all(page.as_bytes()))
        })
        .await
    }

    /// The body of `cell` for the current generation: rendered now, by this request or one
    /// already waiting for it, when the state changed since it was last rendered.
    fn lazy<'a, F>(
        &'a self,
        cell: &'a Lazy,
        render: F,
    ) -> impl Future<Output = Option<Arc<Kept>>> + 'a
    where
        F: FnOnce(Vec<crate::state::OrgStatus>) -> std::io::Result<Compressed> + Send + 'static,
    {
        let generation = self.shared.generation();
        let once = {
            let mut c = lock(cell);
            if c.0 != generation {
                *c = (generation, Arc::new(OnceCell::new()));
            }
            c.1.clone()
        };
        async move {
            once.get_or_try_init(|| async {
                let _permit = self.gate.acquire().await.map_err(|_| ())?;
                let snapshot = self.shared.snapshot();
                match tokio::task::spawn_blocking(move || render(snapshot)).await {
                    Ok(Ok(body)) => Ok(Arc::new(Kept { generation, body })),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot render a page");
                        Err(())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a page render died");
                        Err(())
                    }
                }
            })
            .await
            .ok()
            .cloned()
        }
    }
}

use std::io::Write as _;
