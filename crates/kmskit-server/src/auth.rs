//! Identity and admission: access keys → principals, the signature-nonce replay cache and per-principal
//! rate limits.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

use crate::sign::AccessKeySecret;

/// One access key: its secret, the principal it authenticates, and what it may call.
#[derive(Clone)]
pub struct AccessKey {
    /// The AccessKeyId.
    pub id: String,
    /// The secret (zeroized on drop, redacted in `Debug`).
    pub secret: AccessKeySecret,
    /// The principal requests signed with this key act as.
    pub principal: String,
    /// Actions this key may call; `*` allows every action. Checked by the server before the provider;
    /// for policies (and audited denials) give the provider a `Governance` and leave this at `*`.
    pub allowed_actions: Vec<String>,
    /// Whether the key is enabled (`Forbidden.AccessKey` when not).
    pub enabled: bool,
}

impl AccessKey {
    /// An enabled key allowed every action.
    pub fn new(id: impl Into<String>, secret: AccessKeySecret, principal: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret,
            principal: principal.into(),
            allowed_actions: vec!["*".to_owned()],
            enabled: true,
        }
    }

    /// Restricts the key to `actions` (`*` for all).
    #[must_use]
    pub fn allow_actions(mut self, actions: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// Whether this key may call `action`.
    pub fn allows(&self, action: &str) -> bool {
        self.allowed_actions.iter().any(|a| a == "*" || a == action)
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &self.secret)
            .field("principal", &self.principal)
            .field("allowed_actions", &self.allowed_actions)
            .field("enabled", &self.enabled)
            .finish()
    }
}

const SHARDS: usize = 16;

/// Remembers signature nonces for the timestamp window, so a replay inside it is refused.
///
/// Nonces are kept as 128-bit keyed hashes of (AccessKeyId, nonce) with the time they may be forgotten
/// (the request's timestamp plus the window: after that the timestamp check refuses the request anyway).
/// Shards keep contention low; each shard sweeps expired entries at most once a second. `capacity`
/// bounds memory: when full, new requests are refused (`Throttling`) rather than forgetting live nonces.
#[derive(Debug)]
pub struct NonceCache {
    shards: Vec<Mutex<Shard>>,
    hashers: (RandomState, RandomState),
    window_secs: u64,
    capacity_per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    seen: HashMap<u128, u64>,
    last_sweep: u64,
}

/// What [`NonceCache::check_and_insert`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceOutcome {
    /// First use: remembered.
    Fresh,
    /// Seen before inside the window.
    Replayed,
    /// The cache is full.
    Full,
}

impl NonceCache {
    /// A cache for a `window_secs` skew window holding at most `capacity` nonces.
    pub fn new(window_secs: u64, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hashers: (RandomState::new(), RandomState::new()),
            window_secs,
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn key(&self, access_key_id: &str, nonce: &str) -> u128 {
        let h = |s: &RandomState| {
            let mut h = s.build_hasher();
            access_key_id.hash(&mut h);
            nonce.hash(&mut h);
            h.finish()
        };
        (u128::from(h(&self.hashers.0)) << 64) | u128::from(h(&self.hashers.1))
    }

    /// Records (AccessKeyId, nonce) of a request signed at `timestamp`, at time `now` (Unix seconds).
    pub fn check_and_insert(
        &self,
        access_key_id: &str,
        nonce: &str,
        timestamp: u64,
        now: u64,
    ) -> NonceOutcome {
        let key = self.key(access_key_id, nonce);
        #[allow(clippy::cast_possible_truncation)]
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut s = match shard.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if s.last_sweep != now {
            s.last_sweep = now;
            s.seen.retain(|_, expires| *expires >= now);
        }
        let expires = timestamp.saturating_add(self.window_secs).max(now);
        if let Some(e) = s.seen.get(&key) {
            if *e >= now {
                return NonceOutcome::Replayed;
            }
        }
        if s.seen.len() >= self.capacity_per_shard {
            return NonceOutcome::Full;
        }
        s.seen.insert(key, expires);
        NonceOutcome::Fresh
    }

    /// Nonces held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.seen.len()).unwrap_or(0))
            .sum()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A token bucket per principal: `rate` requests a second, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter of `rate` requests/s with bursts of `burst` (at least 1).
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(0.0),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `principal`; `false` when the bucket is empty.
    pub fn allow(&self, principal: &str) -> bool {
        let now = Instant::now();
        let mut b = match self.buckets.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        let (tokens, last) = match b.get_mut(principal) {
            Some(e) => e,
            None => b.entry(principal.to_owned()).or_insert((self.burst, now)),
        };
        let refill = now.duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_replay_and_expiry() {
        let c = NonceCache::new(900, 1000);
        assert_eq!(c.check_and_insert("ak", "n1", 1000, 1000), NonceOutcome::Fresh);
        assert_eq!(c.check_and_insert("ak", "n1", 1000, 1500), NonceOutcome::Replayed);
        assert_eq!(c.check_and_insert("ak2", "n1", 1000, 1500), NonceOutcome::Fresh);
        // Forgotten once the timestamp window has passed (the skew check refuses it by then).
        assert_eq!(c.check_and_insert("ak", "n1", 1000, 1901), NonceOutcome::Fresh);
    }

    #[test]
    fn nonce_capacity_is_bounded() {
        let c = NonceCache::new(900, 16);
        let mut full = 0;
        for i in 0..200 {
            if c.check_and_insert("ak", &i.to_string(), 0, 0) == NonceOutcome::Full {
                full += 1;
            }
        }
        assert!(full > 0);
        assert!(c.len() <= 16);
    }

    #[test]
    fn rate_limit() {
        let r = RateLimiter::new(0.0, 3.0);
        assert!(r.allow("a") && r.allow("a") && r.allow("a"));
        assert!(!r.allow("a"));
        assert!(r.allow("b"));
    }

    #[test]
    fn access_key_debug_redacts() {
        let k = AccessKey::new("id", AccessKeySecret::new("topsecretvalue"), "alice");
        assert!(!format!("{k:?}").contains("topsecret"));
        assert!(k.allows("Encrypt"));
        assert!(!k.clone().allow_actions(["Decrypt"]).allows("Encrypt"));
    }
}
