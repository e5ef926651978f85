//! The data-key cache: every limit enforced exactly at its boundary, partitions (context, key,
//! algorithm, principal) never shared, the open side keyed by wrapped-key bytes, and statistics.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kmskit_core::crypto::Algorithm;
use kmskit_core::envelope::{CacheLimits, DataKeyCache, EnvelopeEncryptor, ParsedEnvelope};
use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, block_on};

fn ctx(v: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("tenant", v)]).unwrap()
}

fn wrapped(env: &[u8]) -> Vec<u8> {
    ParsedEnvelope::parse(env).unwrap().wrapped_key.to_vec()
}

struct Setup {
    env: EnvelopeEncryptor<kmskit_core::Kms<Tiny>>,
    cache: Arc<DataKeyCache>,
    clock: Arc<kmskit_core::ManualClock>,
    key: KeyRef,
    caller: Caller,
}

fn setup(limits: CacheLimits) -> Setup {
    let clock = manual_clock();
    let kms = kms_with_clock(clock.clone());
    let caller = Caller::local();
    let key = KeyRef::Id(
        block_on(kms.create_key(&caller, CreateKey::new("cache")))
            .unwrap()
            .key_id,
    );
    let cache = Arc::new(DataKeyCache::with_clock(limits, clock.clone()));
    let env = EnvelopeEncryptor::new(kms).with_cache(cache.clone());
    Setup {
        env,
        cache,
        clock,
        key,
        caller,
    }
}

impl Setup {
    fn seal(&self, pt: &[u8], c: &EncryptionContext) -> Vec<u8> {
        block_on(self.env.seal(&self.caller, &self.key, pt, c)).unwrap()
    }
    fn open(&self, e: &[u8], c: &EncryptionContext) -> Vec<u8> {
        block_on(self.env.open(&self.caller, e, c)).unwrap().to_vec()
    }
}

#[test]
fn max_messages_is_exact() {
    let s = setup(CacheLimits::new().max_messages(3));
    let c = ctx("a");
    let e: Vec<Vec<u8>> = (0..7u8).map(|i| s.seal(&[i; 8], &c)).collect();
    let w: Vec<Vec<u8>> = e.iter().map(|x| wrapped(x)).collect();
    // Messages 1-3 share a data key, 4-6 the next, 7 a third.
    assert!(w[0] == w[1] && w[1] == w[2]);
    assert!(w[2] != w[3]);
    assert!(w[3] == w[4] && w[4] == w[5]);
    assert!(w[5] != w[6]);
    let st = s.cache.stats();
    assert_eq!((st.encrypt_hits, st.encrypt_misses), (4, 3), "{st:?}");
    for (i, x) in e.iter().enumerate() {
        assert_eq!(s.open(x, &c), vec![i as u8; 8]);
    }
    // The open side has the same limit: 3 opens per unwrapped key.
    let st = s.cache.stats();
    assert_eq!((st.decrypt_hits, st.decrypt_misses), (4, 3), "{st:?}");
    assert_eq!(st.provider_calls_saved(), 8);
}

#[test]
fn max_messages_one_means_every_message_gets_a_new_key() {
    let s = setup(CacheLimits::new().max_messages(1));
    let c = ctx("a");
    let a = s.seal(b"x", &c);
    let b = s.seal(b"y", &c);
    assert_ne!(wrapped(&a), wrapped(&b));
    assert_eq!(s.cache.stats().encrypt_hits, 0);
}

#[test]
fn max_bytes_is_exact() {
    let s = setup(CacheLimits::new().max_bytes(100));
    let c = ctx("a");
    let a = s.seal(&[1; 40], &c); // 40
    let b = s.seal(&[2; 60], &c); // 100: exactly the limit, still the same key
    let d = s.seal(&[3; 1], &c); // 101 would exceed: new key
    assert_eq!(wrapped(&a), wrapped(&b));
    assert_ne!(wrapped(&b), wrapped(&d));
    // A plaintext of exactly max_bytes is cacheable; one byte more never uses the cache.
    let s = setup(CacheLimits::new().max_bytes(100));
    let x = s.seal(&[0; 100], &c);
    let y = s.seal(&[0; 0], &c);
    assert_eq!(
        wrapped(&x),
        wrapped(&y),
        "a 100-byte message is cached, then 0 more bytes fit"
    );
    let big1 = s.seal(&[0; 101], &c);
    let big2 = s.seal(&[0; 101], &c);
    assert_ne!(wrapped(&big1), wrapped(&big2));
    assert_ne!(wrapped(&big1), wrapped(&x));
    let st = s.cache.stats();
    assert_eq!((st.encrypt_hits, st.encrypt_misses), (1, 3), "{st:?}");
    assert_eq!(s.open(&big1, &c), vec![0; 101]);
    assert_eq!(
        s.cache.stats().decrypt_misses,
        1,
        "an oversized message bypasses the open side too"
    );
}

#[test]
fn max_age_is_exact() {
    let s = setup(CacheLimits::new().max_age(Duration::from_secs(60)));
    let c = ctx("a");
    let a = s.seal(b"1", &c);
    s.clock.advance(59);
    let b = s.seal(b"2", &c);
    assert_eq!(wrapped(&a), wrapped(&b), "59 s old: still used");
    s.clock.advance(1);
    let d = s.seal(b"3", &c);
    assert_ne!(wrapped(&b), wrapped(&d), "60 s old: expired");
    assert_eq!(s.cache.stats().evictions, 1);
    // Open side: cached at open time, expires 60 s later.
    let s2 = setup(CacheLimits::new().max_age(Duration::from_secs(60)));
    let e = s2.seal(b"z", &c);
    s2.open(&e, &c);
    s2.clock.advance(59);
    s2.open(&e, &c);
    s2.clock.advance(1);
    s2.open(&e, &c);
    let st = s2.cache.stats();
    assert_eq!((st.decrypt_hits, st.decrypt_misses), (1, 2), "{st:?}");
}

#[test]
fn max_entries_is_exact_and_evicts_the_least_recently_used() {
    let s = setup(CacheLimits::new().max_entries(2));
    let (a, b, c) = (ctx("a"), ctx("b"), ctx("c"));
    let a1 = s.seal(b"1", &a);
    let b1 = s.seal(b"1", &b);
    assert_eq!(s.cache.stats().entries, 2);
    let a2 = s.seal(b"2", &a); // a is now the most recently used
    assert_eq!(wrapped(&a1), wrapped(&a2));
    let _c1 = s.seal(b"1", &c); // evicts b
    assert_eq!(s.cache.stats().entries, 2);
    assert_eq!(s.cache.stats().evictions, 1);
    let a3 = s.seal(b"3", &a);
    assert_eq!(wrapped(&a1), wrapped(&a3), "a survived");
    let b2 = s.seal(b"2", &b);
    assert_ne!(wrapped(&b1), wrapped(&b2), "b was evicted");
    // Zero entries disables caching.
    let s = setup(CacheLimits::new().max_entries(0));
    let x = s.seal(b"1", &a);
    let y = s.seal(b"1", &a);
    assert_ne!(wrapped(&x), wrapped(&y));
    assert_eq!(s.cache.stats().entries, 0);
}

#[test]
fn a_context_mismatch_never_hits() {
    let s = setup(CacheLimits::new());
    let base = EncryptionContext::from_pairs([("tenant", "a"), ("table", "users")]).unwrap();
    let first = s.seal(b"x", &base);
    let variants = [
        EncryptionContext::new(),
        EncryptionContext::from_pairs([("tenant", "a")]).unwrap(),
        EncryptionContext::from_pairs([("tenant", "a"), ("table", "users"), ("x", "")]).unwrap(),
        EncryptionContext::from_pairs([("tenant", "b"), ("table", "users")]).unwrap(),
        EncryptionContext::from_pairs([("tenanta", ""), ("table", "users")]).unwrap(),
    ];
    for v in &variants {
        let e = s.seal(b"x", v);
        assert_ne!(
            wrapped(&e),
            wrapped(&first),
            "{v:?} shared a data key with {base:?}"
        );
    }
    let st = s.cache.stats();
    assert_eq!(st.encrypt_hits, 0, "{st:?}");
    // The same map built in another order is the same context: a hit.
    let same = EncryptionContext::from_pairs([("table", "users"), ("tenant", "a")]).unwrap();
    let e = s.seal(b"x", &same);
    assert_eq!(wrapped(&e), wrapped(&first));
    assert_eq!(s.cache.stats().encrypt_hits, 1);
    // Open side: an open with another context neither hits nor succeeds.
    s.open(&first, &base);
    for v in &variants {
        assert!(block_on(s.env.open(&s.caller, &first, v)).is_err());
    }
    let st = s.cache.stats();
    assert_eq!(st.decrypt_hits, 0, "{st:?}");
}

#[test]
fn keys_algorithms_and_principals_are_separate_partitions() {
    let s = setup(CacheLimits::new());
    let c = ctx("a");
    let kms = s.env.provider().clone();
    let other_key = KeyRef::Id(
        block_on(kms.create_key(&s.caller, CreateKey::new("other")))
            .unwrap()
            .key_id,
    );
    let a = s.seal(b"x", &c);
    let b = block_on(s.env.seal(&s.caller, &other_key, b"x", &c)).unwrap();
    assert_ne!(wrapped(&a), wrapped(&b));
    let chacha = s.env.clone().with_algorithm(Algorithm::ChaCha20Poly1305);
    let d = block_on(chacha.seal(&s.caller, &s.key, b"x", &c)).unwrap();
    assert_ne!(wrapped(&a), wrapped(&d));
    assert_eq!(
        ParsedEnvelope::parse(&d).unwrap().algorithm,
        Algorithm::ChaCha20Poly1305
    );
    assert_eq!(s.open(&d, &c), b"x");
    let bob = Caller::new("bob");
    let f = block_on(s.env.seal(&bob, &s.key, b"x", &c)).unwrap();
    assert_ne!(wrapped(&a), wrapped(&f));
    assert_eq!(s.cache.stats().encrypt_hits, 0);
}

#[test]
fn nonces_differ_under_a_cached_key_and_clear_empties() {
    let s = setup(CacheLimits::new());
    let c = ctx("a");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let e = s.seal(b"same", &c);
        assert!(
            seen.insert(ParsedEnvelope::parse(&e).unwrap().nonce),
            "nonce reused"
        );
    }
    assert_eq!(s.cache.stats().encrypt_hits, 999);
    s.cache.clear();
    assert_eq!(s.cache.stats().entries, 0);
    let dbg = format!("{:?}", s.cache);
    assert!(dbg.contains("DataKeyCache"));
}

#[test]
fn seal_into_appends_and_leaves_the_buffer_alone_on_error() {
    let s = setup(CacheLimits::new());
    let c = ctx("a");
    let mut buf = b"prefix".to_vec();
    block_on(s.env.seal_into(&s.caller, &s.key, b"one", &c, &mut buf)).unwrap();
    let first_len = buf.len();
    block_on(s.env.seal_into(&s.caller, &s.key, b"two", &c, &mut buf)).unwrap();
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(s.open(&buf[6..first_len], &c), b"one");
    assert_eq!(s.open(&buf[first_len..], &c), b"two");
    let before = buf.clone();
    let missing = KeyRef::Id(kmskit_core::KeyId::generate());
    assert!(block_on(s.env.seal_into(&s.caller, &missing, b"x", &c, &mut buf)).is_err());
    assert_eq!(buf, before);
}

#[test]
fn interleaved_partitions_keep_exact_counts() {
    // The cache remembers the most recently used slot; alternating partitions must not confuse it.
    let s = setup(CacheLimits::new().max_messages(3).max_entries(2));
    let (a, b) = (ctx("a"), ctx("b"));
    let mut wa = Vec::new();
    let mut wb = Vec::new();
    for i in 0..9u8 {
        wa.push(wrapped(&s.seal(&[i], &a)));
        wb.push(wrapped(&s.seal(&[i], &b)));
    }
    for w in [&wa, &wb] {
        for chunk in w.chunks(3) {
            assert!(
                chunk.iter().all(|x| x == &chunk[0]),
                "three messages per data key"
            );
        }
        assert!(w[0] != w[3] && w[3] != w[6]);
    }
    assert!(
        wa.iter().all(|x| !wb.contains(x)),
        "partitions never share a data key"
    );
    let st = s.cache.stats();
    assert_eq!((st.encrypt_hits, st.encrypt_misses), (12, 6), "{st:?}");
}

#[test]
fn debug_output_shows_no_key_material() {
    let s = setup(CacheLimits::new());
    let c = ctx("a");
    let e = s.seal(b"secret plaintext", &c);
    s.open(&e, &c);
    let wrapped_hex: String = wrapped(&e).iter().map(|b| format!("{b:02x}")).collect();
    for dbg in [
        format!("{:?}", s.env),
        format!("{:?}", s.cache),
        format!("{:#?}", s.env),
    ] {
        assert!(!dbg.contains("secret plaintext"), "{dbg}");
        assert!(!dbg.to_lowercase().contains(&wrapped_hex[..16]), "{dbg}");
        assert!(!dbg.contains("commit_key") && !dbg.contains("aead"), "{dbg}");
    }
}

#[test]
fn concurrent_seals_never_reuse_a_nonce_or_exceed_the_message_limit() {
    let s = Arc::new(setup(CacheLimits::new().max_messages(50)));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let c = ctx("shared");
                (0..300u32)
                    .map(|i| s.seal(&[t as u8, (i % 251) as u8], &c))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut per_key: std::collections::HashMap<Vec<u8>, Vec<[u8; 12]>> = std::collections::HashMap::new();
    for h in handles {
        for e in h.join().unwrap() {
            let p = ParsedEnvelope::parse(&e).unwrap();
            per_key.entry(p.wrapped_key.to_vec()).or_default().push(p.nonce);
            assert_eq!(s.open(&e, &ctx("shared")).len(), 2);
        }
    }
    for nonces in per_key.values() {
        assert!(nonces.len() <= 50, "a data key sealed {} messages", nonces.len());
        let unique: std::collections::HashSet<_> = nonces.iter().collect();
        assert_eq!(
            unique.len(),
            nonces.len(),
            "a nonce was reused under one data key"
        );
    }
    assert!(per_key.len() >= 1200 / 50);
}
