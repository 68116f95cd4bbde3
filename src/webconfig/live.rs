//! [`LiveWebConfig`]: the web configuration in force, re-read when its files change, with the
//! status of the last reload.

use chrono::{DateTime, Utc};

use super::*;
use crate::clock::Clock;

/// One loaded generation of the web configuration: the validated file and what was built
/// from the files it names.
pub struct Loaded {
    /// The configuration.
    pub config: WebConfig,
    /// The TLS acceptor, when TLS is on.
    pub tls: Option<TlsAcceptor>,
}

/// The outcome of reading the web configuration and the files it names, with each file's
/// stamp taken just before it was read, so that a change made meanwhile shows at the next
/// check. `paths` are the files the outcome depends on (the web configuration first).
struct Reading {
    paths: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
    result: Result<Loaded, WebConfigError>,
}

impl Reading {
    fn read(path: &Path) -> Self {
        let mut paths = vec![path.to_owned()];
        let mut stamps = stamp(&paths);
        let config = match WebConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                return Self {
                    paths,
                    stamps,
                    result: Err(e),
                };
            }
        };
        let files = config.files();
        stamps.extend(stamp(&files));
        paths.extend(files);
        let result = match &config.tls {
            Some(t) => t
                .server_config(&path.display().to_string())
                .map(|c| Some(TlsAcceptor::from(c))),
            None => Ok(None),
        }
        .map(|tls| Loaded { config, tls });
        Self {
            paths,
            stamps,
            result,
        }
    }
}

/// What identifies a version of a file without reading it: a replaced file (a rename, or a
/// Kubernetes Secret volume's symlink swap) has a new inode; one rewritten in place a new
/// mtime, ctime or size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    ids: (u64, u64, i64, i64),
}

fn stamp(paths: &[PathBuf]) -> Vec<Option<FileStamp>> {
    paths
        .iter()
        .map(|p| {
            // `metadata` follows symlinks, so a swapped link shows as a changed file.
            let m = std::fs::metadata(p).ok()?;
            Some(FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                #[cfg(unix)]
                ids: {
                    use std::os::unix::fs::MetadataExt as _;
                    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
                },
            })
        })
        .collect()
}

/// How the last reload of the web configuration went, as Prometheus reports its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Whether the last attempt to load a changed file succeeded.
    pub successful: bool,
    /// When a configuration last took effect (the start counts).
    pub last_success: DateTime<Utc>,
}

struct Current {
    active: Arc<Loaded>,
    reload: ReloadStatus,
    /// The files watched (the web configuration first) and their stamps when last read,
    /// successfully or not.
    paths: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
    checked: Instant,
}

/// The web configuration in force, re-read when the file or the certificate, key or CA
/// files it names change. Checks run on new connections and requests, at most once per
/// check interval (a few `stat` calls). A change that does not load (a bad file, a key that
/// does not match its certificate, TLS turned on or off) is logged as an error and the last
/// good configuration stays in force; it is tried again when the files change again.
pub struct LiveWebConfig {
    path: PathBuf,
    check_interval: Duration,
    current: Mutex<Current>,
    pub(super) auth: auth::AuthCache,
    clock: Clock,
}

impl std::fmt::Debug for LiveWebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveWebConfig")
            .field("path", &self.path)
            .field("check_interval", &self.check_interval)
            .finish_non_exhaustive()
    }
}

impl LiveWebConfig {
    /// Loads the web configuration and every file it names; any problem is an error.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        Self::load_with_clock(path, Clock::System)
    }

    /// [`LiveWebConfig::load`], dating reloads with `clock`.
    pub fn load_with_clock(path: &Path, clock: Clock) -> Result<Self, WebConfigError> {
        let Reading {
            paths,
            stamps,
            result,
        } = Reading::read(path);
        Ok(Self {
            path: path.to_owned(),
            check_interval: DEFAULT_CHECK_INTERVAL,
            current: Mutex::new(Current {
                active: Arc::new(result?),
                reload: ReloadStatus {
                    successful: true,
                    last_success: clock.now(),
                },
                paths,
                stamps,
                checked: Instant::now(),
            }),
            auth: auth::AuthCache::new(),
            clock,
        })
    }

    /// Sets how often, at most, the files are checked (zero: on every connection and
    /// request, as tests do).
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration in force, after a check for changed files when one is due.
    pub fn current(&self) -> Arc<Loaded> {
        let due = self.lock().checked.elapsed() >= self.check_interval;
        if due {
            // A failure is logged by `check` and leaves the current configuration in force.
            let _ = self.check();
        }
        self.lock().active.clone()
    }

    /// How the last reload went.
    pub fn reload_status(&self) -> ReloadStatus {
        self.lock().reload
    }

    /// Checks the files now and reloads them if any changed since they were last read.
    /// Returns whether a new configuration took effect. On error the current configuration
    /// stays in force and the error is also logged.
    pub fn check(&self) -> Result<bool, WebConfigError> {
        let paths = {
            let mut cur = self.lock();
            cur.checked = Instant::now();
            cur.paths.clone()
        };
        let now = stamp(&paths);
        {
            let mut cur = self.lock();
            if cur.stamps == now {
                return Ok(false);
            }
            // Claimed: a concurrent check now sees no change and does not reload too.
            cur.stamps = now;
        }
        let reading = Reading::read(&self.path);
        let (had_tls, had_users) = {
            let cur = self.lock();
            (cur.active.tls.is_some(), cur.active.config.basic_auth())
        };
        let loaded = reading.result.and_then(|a| {
            let refuse = |key: &str, message: String| WebConfigError::Invalid {
                origin: self.path.display().to_string(),
                key: key.to_owned(),
                message,
            };
            if had_tls != a.tls.is_some() {
                return Err(refuse(
                    "tls_server_config",
                    format!(
                        "TLS cannot be turned {} without a restart",
                        if had_tls { "off" } else { "on" }
                    ),
                ));
            }
            // An emptied or half-written file must not open every route: removing
            // authentication takes a restart.
            if had_users && !a.config.basic_auth() {
                return Err(refuse(
                    "basic_auth_users",
                    "the new file has no users, which would turn authentication off (an empty or partial file?); that needs a restart".to_owned(),
                ));
            }
            Ok(a)
        });
        // Watch what this outcome depends on, good or bad: a bad file is read again only once
        // something changes.
        let watch = |cur: &mut Current| {
            cur.paths = reading.paths;
            cur.stamps = reading.stamps;
        };
        match loaded {
            Ok(active) => {
                tracing::info!(
                    file = %self.path.display(),
                    tls = active.tls.is_some(),
                    basic_auth_users = active.config.users.len(),
                    "web configuration reloaded"
                );
                let mut cur = self.lock();
                watch(&mut cur);
                cur.active = Arc::new(active);
                cur.reload = ReloadStatus {
                    successful: true,
                    last_success: self.clock.now(),
                };
                Ok(true)
            }
            Err(e) => {
                let mut cur = self.lock();
                watch(&mut cur);
                cur.reload.successful = false;
                drop(cur);
                tracing::error!(error = %e, "web configuration not reloaded; the previous one stays in force");
                Err(e)
            }
        }
    }
}

impl crate::httpd::TlsSource for LiveWebConfig {
    fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.current().tls.clone()
    }
}
