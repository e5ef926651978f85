//! [`DataKeyCache`]: data keys reused across envelopes within user-set limits, as the AWS Encryption
//! SDK's caching CMM does.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::context::EncryptionContext;
use crate::crypto::Algorithm;
use crate::id::KeyRef;

use super::{DecryptEntry, EncryptEntry};

/// The most messages one data key may seal (2^32, the AWS Encryption SDK's bound): the cap on
/// [`CacheLimits::max_messages`].
pub const MAX_MESSAGES_PER_KEY: u64 = 1 << 32;

/// When a cached data key stops being used. Every limit is inclusive: with `max_messages = 3` a data
/// key seals exactly three envelopes and the fourth gets a new one; with `max_bytes = 100` it seals
/// envelopes whose plaintexts add up to at most 100 bytes (a single larger plaintext never uses the
/// cache); with `max_age = 60 s` it is used while less than 60 seconds old.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// How long an entry lives, from when its data key was made or unwrapped. Measured in whole seconds
    /// of the cache's clock; zero disables caching.
    pub max_age: Duration,
    /// How many envelopes one data key seals (or, on the decrypt side, opens), 1 to 2^32.
    pub max_messages: u64,
    /// How many plaintext bytes one data key seals (or opens) in total.
    pub max_bytes: u64,
    /// How many entries each side of the cache (seal, open) holds; the least recently used goes first.
    /// Zero disables caching.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    /// Five minutes, 2^32 messages, unlimited bytes, 1000 entries.
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_messages: MAX_MESSAGES_PER_KEY,
            max_bytes: u64::MAX,
            max_entries: 1000,
        }
    }
}

impl CacheLimits {
    /// The defaults (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`CacheLimits::max_age`].
    #[must_use]
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }

    /// Sets [`CacheLimits::max_messages`] (clamped to 2^32).
    #[must_use]
    pub fn max_messages(mut self, n: u64) -> Self {
        self.max_messages = n.min(MAX_MESSAGES_PER_KEY);
        self
    }

    /// Sets [`CacheLimits::max_bytes`].
    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`CacheLimits::max_entries`].
    #[must_use]
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }
}

/// What the cache has done so far.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Seals served by a cached data key.
    pub encrypt_hits: u64,
    /// Seals that needed GenerateDataKey.
    pub encrypt_misses: u64,
    /// Opens served by a cached unwrapped key.
    pub decrypt_hits: u64,
    /// Opens that needed Decrypt.
    pub decrypt_misses: u64,
    /// Entries dropped (and zeroized) for age, use limits or room.
    pub evictions: u64,
    /// Entries held now (both sides).
    pub entries: u64,
}

impl CacheStats {
    /// Provider calls the cache saved: one per hit.
    pub fn provider_calls_saved(&self) -> u64 {
        self.encrypt_hits + self.decrypt_hits
    }
}

/// What a cache entry is reserved for: the caller's principal, the scope (the key reference on the seal
/// side, the wrapped-key bytes on the open side), the algorithm and the full encryption context.
struct Slot<Sc, V> {
    principal: String,
    scope: Sc,
    alg: Algorithm,
    ctx: EncryptionContext,
    value: Arc<V>,
    created: Timestamp,
    messages: u64,
    bytes: u64,
    last_used: u64,
}

struct Table<Sc, V> {
    buckets: HashMap<u64, Vec<Slot<Sc, V>>>,
    len: usize,
    tick: u64,
}

impl<Sc, V> Default for Table<Sc, V> {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
            len: 0,
            tick: 0,
        }
    }
}

/// One use of an entry: the message's length, and where the lookup is done.
pub(crate) struct Use<'a, Q: ?Sized> {
    pub(crate) principal: &'a str,
    pub(crate) scope: &'a Q,
    pub(crate) alg: Algorithm,
    pub(crate) ctx: &'a EncryptionContext,
    pub(crate) len: u64,
}

struct Inner {
    enc: Table<KeyRef, EncryptEntry>,
    dec: Table<Vec<u8>, DecryptEntry>,
}

/// A cache of data keys for [`EnvelopeEncryptor`](super::EnvelopeEncryptor): on the seal side, data keys
/// from GenerateDataKey reused across envelopes; on the open side, unwrapped keys by wrapped-key bytes.
///
/// - Entries are partitioned by caller principal, key reference (seal) or wrapped-key bytes (open),
///   algorithm and the **full** encryption context: a cached key never serves another context, another
///   key or another principal.
/// - Each side enforces the [`CacheLimits`]; an entry that reaches a limit is dropped, and with it the
///   expanded key, whose memory the AEAD engine zeroizes (after the last envelope using it finishes).
/// - [`DataKeyCache::stats`] reports hits, misses, evictions and provider calls saved.
///
/// Share one cache only among encryptors over the same provider (the partition does not name the
/// provider). A key reference names what it named when the entry was made: re-pointing an alias takes
/// effect for cached entries when they expire.
pub struct DataKeyCache {
    limits: CacheLimits,
    clock: Arc<dyn Clock>,
    hasher: RandomState,
    inner: Mutex<Inner>,
    encrypt_hits: AtomicU64,
    encrypt_misses: AtomicU64,
    decrypt_hits: AtomicU64,
    decrypt_misses: AtomicU64,
    evictions: AtomicU64,
}

impl fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl DataKeyCache {
    /// A cache with `limits` on the system clock.
    pub fn new(limits: CacheLimits) -> Self {
        Self::with_clock(limits, Arc::new(SystemClock))
    }

    /// A cache with `limits` reading time from `clock` (tests pass a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(limits: CacheLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            limits: CacheLimits {
                max_messages: limits.max_messages.min(MAX_MESSAGES_PER_KEY),
                ..limits
            },
            clock,
            hasher: RandomState::new(),
            inner: Mutex::new(Inner {
                enc: Table::default(),
                dec: Table::default(),
            }),
            encrypt_hits: AtomicU64::new(0),
            encrypt_misses: AtomicU64::new(0),
            decrypt_hits: AtomicU64::new(0),
            decrypt_misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let entries = {
            let g = self.lock();
            (g.enc.len + g.dec.len) as u64
        };
        CacheStats {
            encrypt_hits: self.encrypt_hits.load(Ordering::Relaxed),
            encrypt_misses: self.encrypt_misses.load(Ordering::Relaxed),
            decrypt_hits: self.decrypt_hits.load(Ordering::Relaxed),
            decrypt_misses: self.decrypt_misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries,
        }
    }

    /// Drops every entry (each zeroized once no envelope in progress uses it).
    pub fn clear(&self) {
        let mut g = self.lock();
        let n = (g.enc.len + g.dec.len) as u64;
        g.enc = Table::default();
        g.dec = Table::default();
        drop(g);
        self.evictions.fetch_add(n, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under this lock is a whole-slot insert, update or removal.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a message of `len` bytes may use the cache at all.
    fn cacheable(&self, len: u64) -> bool {
        self.limits.max_entries > 0 && self.limits.max_age.as_secs() > 0 && len <= self.limits.max_bytes
    }

    fn hash<Q: Hash + ?Sized>(&self, u: &Use<'_, Q>) -> u64 {
        let mut h = self.hasher.build_hasher();
        u.principal.hash(&mut h);
        u.scope.hash(&mut h);
        u.alg.hash(&mut h);
        u.ctx.hash(&mut h);
        h.finish()
    }

    fn get<Sc, Q, V>(&self, table: &mut Table<Sc, V>, u: &Use<'_, Q>, now: Timestamp) -> Option<Arc<V>>
    where
        Sc: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hash(u);
        let bucket = table.buckets.get_mut(&h)?;
        let i = bucket.iter().position(|s| {
            s.alg == u.alg && s.principal == u.principal && s.scope.borrow() == u.scope && &s.ctx == u.ctx
        })?;
        let s = &mut bucket[i];
        let expired = now.unix() >= s.created.unix().saturating_add(self.limits.max_age.as_secs());
        let fits = s.messages < self.limits.max_messages
            && s.bytes
                .checked_add(u.len)
                .is_some_and(|b| b <= self.limits.max_bytes);
        if expired || !fits {
            // Used up or too old: drop it (the value zeroizes when its last user lets go).
            bucket.swap_remove(i);
            if bucket.is_empty() {
                table.buckets.remove(&h);
            }
            table.len -= 1;
            self.evictions.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        table.tick += 1;
        s.messages += 1;
        s.bytes += u.len;
        s.last_used = table.tick;
        Some(s.value.clone())
    }

    fn put<Sc, Q, V>(
        &self,
        table: &mut Table<Sc, V>,
        u: &Use<'_, Q>,
        scope: Sc,
        value: Arc<V>,
        now: Timestamp,
    ) where
        Sc: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.cacheable(u.len) || self.limits.max_messages == 0 {
            return;
        }
        let h = self.hash(u);
        // A concurrent miss may have filled the slot meanwhile: replace it.
        if let Some(bucket) = table.buckets.get_mut(&h) {
            let before = bucket.len();
            bucket.retain(|s| {
                !(s.alg == u.alg
                    && s.principal == u.principal
                    && s.scope.borrow() == u.scope
                    && &s.ctx == u.ctx)
            });
            table.len -= before - bucket.len();
        }
        while table.len >= self.limits.max_entries {
            let lru = table
                .buckets
                .iter()
                .flat_map(|(h, b)| b.iter().enumerate().map(move |(i, s)| (s.last_used, *h, i)))
                .min();
            let Some((_, lh, li)) = lru else { break };
            if let Some(b) = table.buckets.get_mut(&lh) {
                b.swap_remove(li);
                if b.is_empty() {
                    table.buckets.remove(&lh);
                }
            }
            table.len -= 1;
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        table.tick += 1;
        let slot = Slot {
            principal: u.principal.to_owned(),
            scope,
            alg: u.alg,
            ctx: u.ctx.clone(),
            value,
            created: now,
            messages: 1,
            bytes: u.len,
            last_used: table.tick,
        };
        table.buckets.entry(h).or_default().push(slot);
        table.len += 1;
    }

    /// A cached data key for sealing a message of `u.len` bytes, counting the use; `None` is a miss.
    pub(crate) fn get_encrypt(&self, u: &Use<'_, KeyRef>) -> Option<Arc<EncryptEntry>> {
        let hit = if self.cacheable(u.len) {
            let now = self.clock.now();
            let mut g = self.lock();
            self.get(&mut g.enc, u, now)
        } else {
            None
        };
        let counter = if hit.is_some() {
            &self.encrypt_hits
        } else {
            &self.encrypt_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Caches a fresh data key after a miss; the message that made it counts as its first use.
    pub(crate) fn put_encrypt(&self, u: &Use<'_, KeyRef>, value: Arc<EncryptEntry>) {
        let now = self.clock.now();
        let mut g = self.lock();
        self.put(&mut g.enc, u, u.scope.clone(), value, now);
    }

    /// A cached unwrapped key for opening a message of `u.len` bytes; `None` is a miss.
    pub(crate) fn get_decrypt(&self, u: &Use<'_, [u8]>) -> Option<Arc<DecryptEntry>> {
        let hit = if self.cacheable(u.len) {
            let now = self.clock.now();
            let mut g = self.lock();
            self.get(&mut g.dec, u, now)
        } else {
            None
        };
        let counter = if hit.is_some() {
            &self.decrypt_hits
        } else {
            &self.decrypt_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Caches an unwrapped key after a miss.
    pub(crate) fn put_decrypt(&self, u: &Use<'_, [u8]>, value: Arc<DecryptEntry>) {
        let now = self.clock.now();
        let mut g = self.lock();
        self.put(&mut g.dec, u, u.scope.to_vec(), value, now);
    }
}
