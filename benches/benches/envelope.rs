//! Envelope seal/open of 1 KiB, with the data-key cache hit and missed, against the raw engine seal of
//! the same bytes, measured in the same run.
//!
//! Criterion group `envelope` (1 KiB, `Throughput::Bytes`):
//! - `raw_engine_seal`: the default engine's (aws-lc-rs) `AeadKey::seal_in_place_detached` with a
//!   pre-expanded key, on a reused buffer — the floor any envelope seal pays;
//! - `seal_into_hit` / `seal_hit`: `EnvelopeEncryptor::seal_into` (reused output buffer) and `seal`
//!   (fresh `Vec`) served by a cached data key;
//! - `seal_miss`: no cache, so a GenerateDataKey on `MemoryKms` and a key derivation per envelope;
//! - `open_hit` / `open_miss`: open with the unwrapped key cached, and with a Decrypt per envelope.
//!
//! Then the ratios to the raw seal are printed, timed by a bounded loop in this process (median of
//! several batches). Target: a cache-hit seal costs at most 2× the raw seal.
//!
//! `cargo bench -p kmskit-benches --bench envelope` (about 30 s).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::median_ns;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use kmskit_core::crypto::{AeadKey, Algorithm, default_engine};
use kmskit_core::envelope::{CacheLimits, DataKeyCache, EnvelopeEncryptor};
use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, block_on};
use kmskit_memory::{MemoryKms, MemoryKmsExt};

const N: usize = 1024;

struct Fixture {
    plain: EnvelopeEncryptor<MemoryKms>,
    cached: EnvelopeEncryptor<MemoryKms>,
    key: KeyRef,
    caller: Caller,
    ctx: EncryptionContext,
    raw: Box<dyn AeadKey>,
}

impl Fixture {
    fn new() -> Self {
        let kms = Arc::new(MemoryKms::new_memory());
        let caller = Caller::local();
        let key = KeyRef::Id(
            block_on(kms.create_key(&caller, CreateKey::new("bench")))
                .unwrap()
                .key_id,
        );
        let cache = Arc::new(DataKeyCache::new(
            CacheLimits::new().max_age(Duration::from_secs(3600)),
        ));
        Self {
            plain: EnvelopeEncryptor::new(kms.clone()),
            cached: EnvelopeEncryptor::new(kms).with_cache(cache),
            key,
            caller,
            ctx: EncryptionContext::from_pairs([("table", "users")]).unwrap(),
            raw: default_engine()
                .new_key(Algorithm::Aes256Gcm, &[0x42; 32])
                .unwrap(),
        }
    }

    fn raw_seal(&self, buf: &mut [u8]) {
        black_box(self.raw.seal_in_place_detached(&[1; 12], b"", buf).unwrap());
    }

    fn seal_into(&self, pt: &[u8], out: &mut Vec<u8>) {
        out.clear();
        block_on(self.cached.seal_into(&self.caller, &self.key, pt, &self.ctx, out)).unwrap();
    }

    fn seal(&self, env: &EnvelopeEncryptor<MemoryKms>, pt: &[u8]) -> Vec<u8> {
        block_on(env.seal(&self.caller, &self.key, pt, &self.ctx)).unwrap()
    }

    fn open(&self, env: &EnvelopeEncryptor<MemoryKms>, e: &[u8]) -> usize {
        block_on(env.open(&self.caller, e, &self.ctx)).unwrap().len()
    }
}

fn criterion_groups(c: &mut Criterion, fx: &Fixture) {
    let pt = vec![7u8; N];
    let mut buf = vec![7u8; N];
    let mut out = Vec::with_capacity(2 * N);
    let sealed = fx.seal(&fx.cached, &pt);
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(N as u64));
    g.bench_function(BenchmarkId::new("raw_engine_seal", "1KiB"), |b| {
        b.iter(|| fx.raw_seal(black_box(&mut buf)))
    });
    g.bench_function(BenchmarkId::new("seal_into_hit", "1KiB"), |b| {
        b.iter(|| fx.seal_into(black_box(&pt), &mut out))
    });
    g.bench_function(BenchmarkId::new("seal_hit", "1KiB"), |b| {
        b.iter(|| black_box(fx.seal(&fx.cached, black_box(&pt))))
    });
    g.bench_function(BenchmarkId::new("seal_miss", "1KiB"), |b| {
        b.iter(|| black_box(fx.seal(&fx.plain, black_box(&pt))))
    });
    g.bench_function(BenchmarkId::new("open_hit", "1KiB"), |b| {
        b.iter(|| fx.open(&fx.cached, black_box(&sealed)))
    });
    g.bench_function(BenchmarkId::new("open_miss", "1KiB"), |b| {
        b.iter(|| fx.open(&fx.plain, black_box(&sealed)))
    });
    g.finish();
}

fn ratios(fx: &Fixture) {
    const BATCHES: usize = 31;
    const ITERS: u32 = 20_000;
    let pt = vec![7u8; N];
    let mut buf = vec![7u8; N];
    let mut out = Vec::with_capacity(2 * N);
    let sealed = fx.seal(&fx.cached, &pt);
    println!();
    println!(
        "ratios to the raw engine seal of 1 KiB (median of {BATCHES} batches of {ITERS} calls, same process):"
    );
    let raw1 = median_ns(BATCHES, ITERS, || fx.raw_seal(black_box(&mut buf)));
    let into = median_ns(BATCHES, ITERS, || fx.seal_into(black_box(&pt), &mut out));
    let hit = median_ns(BATCHES, ITERS, || {
        black_box(fx.seal(&fx.cached, black_box(&pt)));
    });
    let open_hit = median_ns(BATCHES, ITERS, || {
        black_box(fx.open(&fx.cached, black_box(&sealed)));
    });
    let miss = median_ns(BATCHES, ITERS / 10, || {
        black_box(fx.seal(&fx.plain, black_box(&pt)));
    });
    let open_miss = median_ns(BATCHES, ITERS / 10, || {
        black_box(fx.open(&fx.plain, black_box(&sealed)));
    });
    let raw2 = median_ns(BATCHES, ITERS, || fx.raw_seal(black_box(&mut buf)));
    let raw = raw1.min(raw2);
    let row = |name: &str, ns: f64| println!("  {name:<38} {ns:8.1} ns  {:6.2}x", ns / raw);
    row("raw engine seal (aws-lc-rs, in place)", raw);
    row("envelope seal_into, cache hit", into);
    row("envelope seal (new Vec), cache hit", hit);
    row("envelope seal, cache miss (GenerateDataKey)", miss);
    row("envelope open, cache hit", open_hit);
    row("envelope open, cache miss (Decrypt)", open_miss);
    let r = into / raw;
    println!(
        "envelope seal_into cache hit (1 KiB) / raw engine seal (1 KiB) = {r:.2}x (target <= 2x: {})",
        if r <= 2.0 { "met" } else { "NOT met" }
    );
}

fn main() {
    let fx = Fixture::new();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    criterion_groups(&mut c, &fx);
    c.final_summary();
    ratios(&fx);
}
