//! Configuration reload: the configuration in force ([`LiveConfig`]), which every task reads
//! and a reload replaces as a whole, and the rules of a reload: what it cannot change while
//! the process runs, and how its outcome is reported.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::Config;

/// Settings a reload cannot change: they stay as they were until the process restarts.
/// The listeners are bound once; the ledger's lock is held for the life of the process.
const RESTART_ONLY: &[&str] = &["server.listen", "server.probe_listen", "cleanup.audit_log"];

/// How the last reload went, as Prometheus reports its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Whether the last reload was applied.
    pub successful: bool,
    /// When a configuration last took effect (the start counts).
    pub last_success: DateTime<Utc>,
    /// Settings whose new value waits for a restart (the old one stays in force).
    pub restart_required: Vec<&'static str>,
}

/// What a reload applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Settings that changed in the file but keep their old value until a restart.
    pub restart_required: Vec<&'static str>,
}

/// Re-reads the configuration and applies it: what `SIGHUP` and `POST /-/reload` call. An
/// error is the reason the new configuration was refused, in one message that names the
/// file and key.
pub type Reload = Arc<dyn Fn() -> Result<Applied, String> + Send + Sync>;

/// The configuration in force, shared by every task. Readers take the whole of it at once
/// ([`LiveConfig::current`]) and keep that for the work in hand (a scan, a cleanup run, a
/// render), so no piece of work sees half of one configuration and half of another.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: watch::Sender<Arc<Config>>,
    status: Mutex<ReloadStatus>,
}

impl LiveConfig {
    /// The configuration the process starts with, in force since `now`.
    pub fn new(config: Config, now: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: watch::channel(Arc::new(config)).0,
                status: Mutex::new(ReloadStatus {
                    successful: true,
                    last_success: now,
                    restart_required: Vec::new(),
                }),
            }),
        }
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Config> {
        self.inner.current.borrow().clone()
    }

    /// A receiver that sees every configuration that takes effect.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.inner.current.subscribe()
    }

    /// How the last reload went.
    pub fn status(&self) -> ReloadStatus {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.inner.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `new` in force, except the settings that need a restart, which keep their
    /// current values; returns those whose value differed.
    pub fn replace(&self, mut new: Config, now: DateTime<Utc>) -> Applied {
        let old = self.current();
        let restart_required = keep_restart_only(&old, &mut new);
        self.inner.current.send_replace(Arc::new(new));
        let mut status = self.lock();
        status.successful = true;
        status.last_success = now;
        status.restart_required = restart_required.clone();
        Applied { restart_required }
    }

    /// Records a refused reload: the configuration in force stays.
    pub fn refused(&self) {
        self.lock().successful = false;
    }
}

/// Sets the restart-only settings of `new` back to their values in `old`, and names those
/// that differed.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut differ = Vec::new();
    for key in RESTART_ONLY {
        let changed = match *key {
            "server.listen" => {
                std::mem::replace(&mut new.server.listen, old.server.listen) != old.server.listen
            }
            "server.probe_listen" => {
                std::mem::replace(&mut new.server.probe_listen, old.server.probe_listen)
                    != old.server.probe_listen
            }
            "cleanup.audit_log" => {
                std::mem::replace(&mut new.cleanup.audit_log, old.cleanup.audit_log.clone())
                    != old.cleanup.audit_log
            }
            _ => unreachable!("every restart-only key is handled: {key}"),
        };
        if changed {
            differ.push(*key);
        }
    }
    differ
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, "test.toml").unwrap()
    }

    const ORG: &str =
        "[[organizations]]\nid = \"m-0123456789abcdef0123456789abcdef\"\nregion = \"us-east-1\"\n";

    #[test]
    fn listeners_and_the_ledger_keep_their_values_until_a_restart() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let t1 = DateTime::from_timestamp(2_000, 0).unwrap();
        let live = LiveConfig::new(
            parse(&format!(
                "[server]\nlisten = \"127.0.0.1:9000\"\n[scan]\ninterval = \"10m\"\n{ORG}"
            )),
            t0,
        );
        let applied = live.replace(
            parse(&format!(
                "[server]\nlisten = \"127.0.0.1:9001\"\nprobe_listen = \"127.0.0.1:9002\"\n[scan]\ninterval = \"5m\"\n[cleanup]\naudit_log = \"/tmp/x.jsonl\"\n{ORG}"
            )),
            t1,
        );
        assert_eq!(
            applied.restart_required,
            ["server.listen", "server.probe_listen", "cleanup.audit_log"]
        );
        let now = live.current();
        assert_eq!(now.server.listen.port(), 9000);
        assert_eq!(now.server.probe_listen, None);
        assert_eq!(now.cleanup.audit_log, None);
        assert_eq!(now.scan.interval.as_secs(), 300, "the rest applies");
        let status = live.status();
        assert!(status.successful);
        assert_eq!(status.last_success, t1);
        assert_eq!(status.restart_required, applied.restart_required);
    }

    #[test]
    fn a_refusal_keeps_the_configuration_and_the_last_success() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let live = LiveConfig::new(parse(ORG), t0);
        let before = live.current();
        live.refused();
        assert!(Arc::ptr_eq(&before, &live.current()));
        let status = live.status();
        assert!(!status.successful);
        assert_eq!(status.last_success, t0);
        // An unchanged file needs no restart.
        let applied = live.replace(parse(ORG), t0);
        assert!(applied.restart_required.is_empty());
        assert!(live.status().successful);
    }
}
