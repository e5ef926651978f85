//! [`DataKeyCache`]: data keys reused across envelopes within user-set limits, as the AWS Encryption
//! SDK's caching CMM does.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::clock::Clock;
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
    /// When the entry was made, in the cache's seconds.
    created: u64,
    messages: u64,
    bytes: u64,
    last_used: u64,
}

/// A seeded multiply–rotate hash (FxHash-like): partition keys are hashed once per seal, so SipHash
/// would be a visible part of a cached seal. Collisions only cost a scan of one bucket, which holds at
/// most `max_entries` slots, so the weaker hash cannot be turned into unbounded work.
#[derive(Clone, Copy)]
struct FastHasher(u64);

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    fn mix(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    fn write_isize(&mut self, i: isize) {
        self.mix(i as u64);
    }
    fn finish(&self) -> u64 {
        // A final avalanche so the low bits (the table index) depend on every input bit.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// Hashes an already mixed `u64` as itself (the table's keys are [`FastHasher`] outputs).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

struct Table<Sc, V> {
    buckets: HashMap<u64, Vec<Slot<Sc, V>>, BuildHasherDefault<IdHasher>>,
    len: usize,
    tick: u64,
    /// The most recently used slot (bucket hash, index in the bucket), checked before hashing: a run of
    /// envelopes for one partition skips the hash. Cleared whenever slots move.
    mru: Option<(u64, usize)>,
}

impl<Sc, V> Default for Table<Sc, V> {
    fn default() -> Self {
        Self {
            buckets: HashMap::default(),
            len: 0,
            tick: 0,
            mru: None,
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
    stats: CacheStats,
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
/// provider). A key reference names what it named when the entry was made: re-pointing an alias, or
/// rotating the key, takes effect for cached data keys when they expire. Before raising a key's version
/// floor ([`Rotator::set_min_decryption_version`](crate::rotate::Rotator::set_min_decryption_version)),
/// [`clear`](DataKeyCache::clear) caches that may hold data keys wrapped under the versions it retires.
pub struct DataKeyCache {
    limits: CacheLimits,
    /// The injected clock; `None`: the monotonic clock, counted from `base`.
    clock: Option<Arc<dyn Clock>>,
    base: Instant,
    seed: u64,
    inner: Mutex<Inner>,
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
    /// A cache with `limits`, measuring ages on the monotonic clock (wall-clock changes do not move
    /// them).
    pub fn new(limits: CacheLimits) -> Self {
        Self::build(limits, None)
    }

    /// A cache with `limits` reading time from `clock` (tests pass a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(limits: CacheLimits, clock: Arc<dyn Clock>) -> Self {
        Self::build(limits, Some(clock))
    }

    fn build(limits: CacheLimits, clock: Option<Arc<dyn Clock>>) -> Self {
        let mut seed = [0u8; 8];
        crate::rand::fill(&mut seed);
        Self {
            limits: CacheLimits {
                max_messages: limits.max_messages.min(MAX_MESSAGES_PER_KEY),
                ..limits
            },
            clock,
            base: Instant::now(),
            seed: u64::from_le_bytes(seed),
            inner: Mutex::new(Inner {
                enc: Table::default(),
                dec: Table::default(),
                stats: CacheStats::default(),
            }),
        }
    }

    /// Now, in whole seconds of this cache's clock.
    fn now(&self) -> u64 {
        match &self.clock {
            Some(c) => c.now().unix(),
            None => self.base.elapsed().as_secs(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            entries: (g.enc.len + g.dec.len) as u64,
            ..g.stats
        }
    }

    /// Drops every entry (each zeroized once no envelope in progress uses it).
    pub fn clear(&self) {
        let mut g = self.lock();
        let n = (g.enc.len + g.dec.len) as u64;
        g.enc = Table::default();
        g.dec = Table::default();
        g.stats.evictions += n;
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
        let mut h = FastHasher(self.seed);
        u.principal.hash(&mut h);
        u.scope.hash(&mut h);
        u.alg.hash(&mut h);
        u.ctx.hash(&mut h);
        h.finish()
    }

    /// Finds and uses an entry: returns it with the message index this use gets (0 for the first).
    fn get<Sc, Q, V>(
        &self,
        table: &mut Table<Sc, V>,
        evictions: &mut u64,
        u: &Use<'_, Q>,
        now: u64,
    ) -> Option<(Arc<V>, u64)>
    where
        Sc: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let matches = |s: &Slot<Sc, V>| {
            s.alg == u.alg && s.principal == u.principal && s.scope.borrow() == u.scope && &s.ctx == u.ctx
        };
        let recent = table
            .mru
            .filter(|(h, i)| table.buckets.get(h).and_then(|b| b.get(*i)).is_some_and(matches));
        let (h, i) = match recent {
            Some(found) => found,
            None => {
                let h = self.hash(u);
                let i = table.buckets.get(&h)?.iter().position(matches)?;
                (h, i)
            }
        };
        let bucket = table.buckets.get_mut(&h)?;
        let s = &mut bucket[i];
        let expired = now >= s.created.saturating_add(self.limits.max_age.as_secs());
        let fits = s.messages < self.limits.max_messages
            && s.bytes
                .checked_add(u.len)
                .is_some_and(|b| b <= self.limits.max_bytes);
        if expired || !fits {
            // Used up or too old: drop it (the value zeroizes when its last user lets go).
            table.mru = None;
            bucket.swap_remove(i);
            if bucket.is_empty() {
                table.buckets.remove(&h);
            }
            table.len -= 1;
            *evictions += 1;
            return None;
        }
        table.tick += 1;
        let index = s.messages;
        s.messages += 1;
        s.bytes += u.len;
        s.last_used = table.tick;
        table.mru = Some((h, i));
        Some((s.value.clone(), index))
    }

    fn put<Sc, Q, V>(
        &self,
        table: &mut Table<Sc, V>,
        evictions: &mut u64,
        u: &Use<'_, Q>,
        scope: Sc,
        value: Arc<V>,
        now: u64,
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
            table.mru = None;
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
                table.mru = None;
                b.swap_remove(li);
                if b.is_empty() {
                    table.buckets.remove(&lh);
                }
            }
            table.len -= 1;
            *evictions += 1;
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
        let bucket = table.buckets.entry(h).or_default();
        bucket.push(slot);
        table.mru = Some((h, bucket.len() - 1));
        table.len += 1;
    }

    /// A cached data key for sealing a message of `u.len` bytes, with the message index (the nonce
    /// counter) this use gets, counting the use; `None` is a miss.
    pub(crate) fn get_encrypt(&self, u: &Use<'_, KeyRef>) -> Option<(Arc<EncryptEntry>, u64)> {
        let cacheable = self.cacheable(u.len);
        let now = if cacheable { self.now() } else { 0 };
        let mut g = self.lock();
        let g = &mut *g;
        let hit = if cacheable {
            self.get(&mut g.enc, &mut g.stats.evictions, u, now)
        } else {
            None
        };
        if hit.is_some() {
            g.stats.encrypt_hits += 1;
        } else {
            g.stats.encrypt_misses += 1;
        }
        hit
    }

    /// Caches a fresh data key after a miss; the message that made it counts as its first use (index 0).
    pub(crate) fn put_encrypt(&self, u: &Use<'_, KeyRef>, value: Arc<EncryptEntry>) {
        let now = self.now();
        let mut g = self.lock();
        let g = &mut *g;
        self.put(&mut g.enc, &mut g.stats.evictions, u, u.scope.clone(), value, now);
    }

    /// A cached unwrapped key for opening a message of `u.len` bytes; `None` is a miss.
    pub(crate) fn get_decrypt(&self, u: &Use<'_, [u8]>) -> Option<Arc<DecryptEntry>> {
        let cacheable = self.cacheable(u.len);
        let now = if cacheable { self.now() } else { 0 };
        let mut g = self.lock();
        let g = &mut *g;
        let hit = if cacheable {
            self.get(&mut g.dec, &mut g.stats.evictions, u, now)
                .map(|(v, _)| v)
        } else {
            None
        };
        if hit.is_some() {
            g.stats.decrypt_hits += 1;
        } else {
            g.stats.decrypt_misses += 1;
        }
        hit
    }

    /// Caches an unwrapped key after a miss.
    pub(crate) fn put_decrypt(&self, u: &Use<'_, [u8]>, value: Arc<DecryptEntry>) {
        let now = self.now();
        let mut g = self.lock();
        let g = &mut *g;
        self.put(
            &mut g.dec,
            &mut g.stats.evictions,
            u,
            u.scope.to_vec(),
            value,
            now,
        );
    }
}
