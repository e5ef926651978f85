//! `MemoryKms` Encrypt/Decrypt against the raw AEAD seal, measured in the same run.
//!
//! Criterion groups (32 B and 1 KiB, `Throughput::Bytes`):
//! - `memory_kms`: `MemoryKms::encrypt` and `decrypt` (default engine, aws-lc-rs), driven by
//!   `kmskit_core::block_on` (the futures complete immediately);
//! - `raw_seal`: aws-lc-rs AES-256-GCM `seal_in_place_separate_tag` with a pre-expanded `LessSafeKey`,
//!   and RustCrypto `aes-gcm` `encrypt_in_place_detached`, on a reused buffer.
//!
//! Then the ratio `MemoryKms::encrypt(1 KiB) ÷ raw aws-lc seal(1 KiB)` (target ≤ 3×) is printed, both
//! timed by a bounded loop in this process (median of several batches), with the cost of the two
//! nonce sources (the OS RNG through `rand_core`, and aws-lc's fork- and snapshot-safe RAND).
//!
//! `cargo bench -p kmskit-benches --bench kms` (about 30 s).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::median_ns;

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BenchmarkId, Criterion, Throughput};
use kmskit_core::{Caller, CiphertextBlob, CreateKey, EncryptionContext, KeyProvider, KeyRef, block_on};
use kmskit_memory::{MemoryKms, MemoryKmsExt};

const SIZES: &[(usize, &str)] = &[(32, "32B"), (1024, "1KiB")];
const KEY: [u8; 32] = [0x42; 32];

struct Fixture {
    kms: MemoryKms,
    key: KeyRef,
    caller: Caller,
    ctx: EncryptionContext,
}

impl Fixture {
    fn new() -> Self {
        let kms = MemoryKms::new_memory();
        let caller = Caller::local();
        let key = block_on(kms.create_key(&caller, CreateKey::new("bench"))).unwrap();
        Self {
            kms,
            key: KeyRef::Id(key.key_id),
            caller,
            ctx: EncryptionContext::new(),
        }
    }

    fn encrypt(&self, pt: &[u8]) -> CiphertextBlob {
        block_on(self.kms.encrypt(&self.caller, &self.key, pt, &self.ctx))
            .unwrap()
            .ciphertext_blob
    }

    fn decrypt(&self, blob: &CiphertextBlob) -> usize {
        block_on(self.kms.decrypt(&self.caller, blob, &self.ctx))
            .unwrap()
            .plaintext
            .len()
    }
}

fn aws_lc_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap())
}

/// One raw aws-lc-rs seal of `buf` in place (the nonce is fixed: a benchmark, not a protocol).
fn aws_lc_seal(key: &LessSafeKey, buf: &mut [u8]) {
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), buf)
        .unwrap();
    let _tag = black_box(tag);
}

fn rust_crypto_seal(key: &aes_gcm::Aes256Gcm, buf: &mut [u8]) {
    let tag = key
        .encrypt_in_place_detached(&[1u8; 12].into(), b"", buf)
        .unwrap();
    black_box(tag);
}

fn criterion_groups(c: &mut Criterion, fx: &Fixture) {
    let aws = aws_lc_key();
    let rc = aes_gcm::Aes256Gcm::new_from_slice(&KEY).unwrap();
    let mut g = c.benchmark_group("memory_kms");
    for &(n, name) in SIZES {
        let pt = vec![7u8; n];
        let blob = fx.encrypt(&pt);
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("encrypt", name), &pt, |b, pt| {
            b.iter(|| fx.encrypt(black_box(pt)))
        });
        g.bench_with_input(BenchmarkId::new("decrypt", name), &blob, |b, blob| {
            b.iter(|| fx.decrypt(black_box(blob)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("raw_seal");
    for &(n, name) in SIZES {
        let mut buf = vec![7u8; n];
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_function(BenchmarkId::new("aws-lc-rs", name), |b| {
            b.iter(|| aws_lc_seal(&aws, black_box(&mut buf)))
        });
        g.bench_function(BenchmarkId::new("rust-crypto", name), |b| {
            b.iter(|| rust_crypto_seal(&rc, black_box(&mut buf)))
        });
    }
    g.finish();
}

fn ratios(fx: &Fixture) {
    const BATCHES: usize = 31;
    const ITERS: u32 = 20_000;
    let aws = aws_lc_key();
    println!();
    println!("ratio (median of {BATCHES} batches of {ITERS} calls, same process):");
    let mut nonce = [0u8; 12];
    let os = median_ns(BATCHES, ITERS, || {
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, black_box(&mut nonce));
    });
    let awslc = median_ns(BATCHES, ITERS, || {
        aws_lc_rs::rand::fill(black_box(&mut nonce)).unwrap();
    });
    println!("  12-byte nonce: OS RNG (getrandom) {os:.1} ns | aws-lc RAND {awslc:.1} ns");
    for &(n, name) in SIZES {
        let pt = vec![7u8; n];
        let mut buf = vec![7u8; n];
        let blob = fx.encrypt(&pt);
        // Interleave so drift affects both sides alike.
        let raw = median_ns(BATCHES, ITERS, || aws_lc_seal(&aws, black_box(&mut buf)));
        let enc = median_ns(BATCHES, ITERS, || {
            black_box(fx.encrypt(black_box(&pt)));
        });
        let dec = median_ns(BATCHES, ITERS, || {
            black_box(fx.decrypt(black_box(&blob)));
        });
        let raw2 = median_ns(BATCHES, ITERS, || aws_lc_seal(&aws, black_box(&mut buf)));
        let raw = raw.min(raw2);
        println!(
            "  {name:>5}: raw aws-lc seal {raw:7.1} ns | MemoryKms::encrypt {enc:7.1} ns ({:.2}x) | \
             MemoryKms::decrypt {dec:7.1} ns ({:.2}x)",
            enc / raw,
            dec / raw
        );
        if n == 1024 {
            let r = enc / raw;
            println!(
                "MemoryKms::encrypt(1 KiB) / raw aws-lc seal(1 KiB) = {r:.2}x (target <= 3x: {})",
                if r <= 3.0 { "met" } else { "NOT met" }
            );
        }
    }
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
