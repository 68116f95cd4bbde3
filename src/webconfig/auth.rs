//! Basic auth: the check of a request's credentials against the users of the web
//! configuration, with its cache and the bounds on bcrypt work.

use super::*;

impl LiveWebConfig {
    /// Whether a request with this `Authorization` header, from `client`, may proceed under
    /// `active`: always when no users are configured; otherwise only with a user's right
    /// password. A success is remembered, so a scraper pays for bcrypt once per
    /// [`AUTH_CACHE_TTL`], never behind anyone else's checks. Checks that need bcrypt are
    /// bounded: at most [`MAX_CHECKS_PER_CLIENT`] per client address in flight and
    /// [`MAX_QUEUED_CHECKS`] waiting in all; beyond that the answer is [`Auth::Busy`] at once,
    /// without hashing, so a flood of wrong passwords costs one core at most and delays no
    /// one whose login is cached.
    pub async fn authorize(
        &self,
        active: &Loaded,
        header: Option<&http::HeaderValue>,
        client: Option<IpAddr>,
    ) -> Auth {
        if active.config.users.is_empty() {
            return Auth::Allowed;
        }
        let Some((user, password)) = header.and_then(parse_basic) else {
            return Auth::Denied;
        };
        let users = &active.config.users;
        let (hash, known) = match std::str::from_utf8(&user).ok().and_then(|u| users.get(u)) {
            Some(h) => (h.clone(), true),
            // An unknown user still costs a bcrypt, at a configured cost, so that timing does
            // not tell unknown users from wrong passwords. The result is ignored.
            None => match users.values().next() {
                Some(h) => (h.clone(), false),
                None => return Auth::Denied,
            },
        };
        let key = self.auth.key(&user, &hash, &password);
        let cached = |cache: &AuthCache| match cache.hit(&key) {
            Some(true) if known => Some(Auth::Allowed),
            Some(_) => Some(Auth::Denied),
            None => None,
        };
        if let Some(answer) = cached(&self.auth) {
            return answer;
        }
        let Some(_slot) = self.auth.admit(client, key) else {
            return Auth::Busy;
        };
        // bcrypt is slow on purpose: run it off the async workers, one at a time, so that a
        // flood of wrong passwords costs at most one core.
        let Ok(_permit) = self.auth.gate.acquire().await else {
            return Auth::Denied;
        };
        // Concurrent checks of the same credentials wait here; one bcrypt serves all.
        if let Some(answer) = cached(&self.auth) {
            return answer;
        }
        self.auth.runs.fetch_add(1, Ordering::Relaxed);
        let verified = tokio::task::spawn_blocking(move || {
            // Go's bcrypt refuses passwords over 72 bytes rather than truncating them.
            password.len() <= 72 && bcrypt::verify(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = verified && known;
        self.auth.insert(key, ok);
        if ok { Auth::Allowed } else { Auth::Denied }
    }

    /// What basic auth has cost so far.
    pub fn auth_stats(&self) -> AuthStats {
        AuthStats {
            bcrypt_runs: self.auth.runs.load(Ordering::Relaxed),
            refused_busy: self.auth.busy.load(Ordering::Relaxed),
            max_in_flight_per_client: self.auth.max_per_client.load(Ordering::Relaxed),
        }
    }
}

/// The answer of [`LiveWebConfig::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Proceed.
    Allowed,
    /// 401: no or wrong credentials.
    Denied,
    /// 429: too many checks in flight from this client, or in all.
    Busy,
}

/// Counters of basic-auth work, for tests and diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthStats {
    /// bcrypt verifications run.
    pub bcrypt_runs: u64,
    /// Checks refused because too many were in flight.
    pub refused_busy: u64,
    /// The most checks one client address had in flight at once.
    pub max_in_flight_per_client: usize,
}

/// Checks that need bcrypt, in flight (waiting or running) from one client address.
pub const MAX_CHECKS_PER_CLIENT: usize = 2;
/// Checks that need bcrypt, in flight from all clients together.
pub const MAX_QUEUED_CHECKS: usize = 32;

/// A check admitted past the bounds; gives its place back when dropped. A check of
/// credentials already being checked joins that check and takes no place of its own.
struct Slot<'a> {
    cache: &'a AuthCache,
    client: Option<IpAddr>,
    key: [u8; 32],
    joined: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut inflight = self
            .cache
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = inflight.keys.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                inflight.keys.remove(&self.key);
            }
        }
        if self.joined {
            return;
        }
        inflight.total = inflight.total.saturating_sub(1);
        if let Some(ip) = self.client
            && let Some(n) = inflight.per_client.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inflight.per_client.remove(&ip);
            }
        }
    }
}

/// bcrypt checks in flight: in all, per client address, and per credentials.
#[derive(Default)]
struct InFlight {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    keys: HashMap<[u8; 32], usize>,
}

/// Splits `Basic base64(user:password)`.
fn parse_basic(v: &http::HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// Basic-auth checks, remembered for [`AUTH_CACHE_TTL`] (failures for [`AUTH_FAILURE_TTL`]),
/// and the bounds on checks in flight. Entries are keyed by an
/// HMAC (with a per-process random key) of user, hash and password, so neither passwords
/// nor fast unkeyed hashes of them are kept.
pub(super) struct AuthCache {
    secret: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (Instant, bool)>>,
    gate: tokio::sync::Semaphore,
    inflight: Mutex<InFlight>,
    runs: AtomicU64,
    busy: AtomicU64,
    max_per_client: AtomicUsize,
}

impl AuthCache {
    pub(super) fn new() -> Self {
        let mut secret = [0u8; 32];
        // Should the system's random source fail, the cache key is still an HMAC of the
        // password; only its unpredictability is lost.
        let _ = rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut secret);
        Self {
            secret,
            entries: Mutex::new(HashMap::new()),
            gate: tokio::sync::Semaphore::new(1),
            inflight: Mutex::new(InFlight::default()),
            runs: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            max_per_client: AtomicUsize::new(0),
        }
    }

    /// A place for one bcrypt check of `key` from `client`, within the bounds; `None` when
    /// full.
    fn admit(&self, client: Option<IpAddr>, key: [u8; 32]) -> Option<Slot<'_>> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = inflight.keys.get_mut(&key) {
            *n += 1;
            return Some(Slot {
                cache: self,
                client,
                key,
                joined: true,
            });
        }
        let mine = client.map_or(0, |ip| inflight.per_client.get(&ip).copied().unwrap_or(0));
        if inflight.total >= MAX_QUEUED_CHECKS || mine >= MAX_CHECKS_PER_CLIENT {
            self.busy.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        inflight.total += 1;
        inflight.keys.insert(key, 1);
        if let Some(ip) = client {
            let n = inflight.per_client.entry(ip).or_default();
            *n += 1;
            self.max_per_client.fetch_max(*n, Ordering::Relaxed);
        }
        Some(Slot {
            cache: self,
            client,
            key,
            joined: false,
        })
    }

    fn key(&self, user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        for part in [user, hash.as_bytes(), password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], (Instant, bool)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh answer for these credentials: `Some(true)` (right), `Some(false)` (wrong,
    /// remembered for [`AUTH_FAILURE_TTL`] so that repeating a guess costs no bcrypt).
    fn hit(&self, key: &[u8; 32]) -> Option<bool> {
        self.lock().get(key).and_then(|(at, ok)| {
            let ttl = if *ok {
                AUTH_CACHE_TTL
            } else {
                AUTH_FAILURE_TTL
            };
            (at.elapsed() < ttl).then_some(*ok)
        })
    }

    fn insert(&self, key: [u8; 32], ok: bool) {
        let mut entries = self.lock();
        if entries.len() >= AUTH_CACHE_MAX {
            entries.retain(|_, (at, _)| at.elapsed() < AUTH_CACHE_TTL);
            if entries.len() >= AUTH_CACHE_MAX {
                // Keep the successes: a flood of guesses must not evict the scrapers.
                entries.retain(|_, (_, ok)| *ok);
                if entries.len() >= AUTH_CACHE_MAX {
                    entries.clear();
                }
            }
        }
        entries.insert(key, (Instant::now(), ok));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        let h = |s: &str| http::HeaderValue::from_str(s).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        type Creds<'a> = Option<(&'a str, &'a str)>;
        let cases: &[(&str, String, Creds)] = &[
            ("plain", format!("Basic {}", b64("u:p")), Some(("u", "p"))),
            (
                "scheme case",
                format!("bAsIc {}", b64("u:p:q")),
                Some(("u", "p:q")),
            ),
            (
                "empty password",
                format!("Basic {}", b64("u:")),
                Some(("u", "")),
            ),
            ("no colon", format!("Basic {}", b64("up")), None),
            ("bearer", "Bearer abc".to_owned(), None),
            ("bad base64", "Basic %%%".to_owned(), None),
        ];
        for (case, header, want) in cases {
            let got = parse_basic(&h(header));
            let want = want.map(|(u, p)| (u.as_bytes().to_vec(), p.as_bytes().to_vec()));
            assert_eq!(got, want, "case: {case}");
        }
    }
}
