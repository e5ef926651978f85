//! Stream throughput against the raw AEAD engine, measured in the same run.
//!
//! For each chunk size (16 KiB, 64 KiB, 1 MiB, 4 MiB): encrypt and decrypt of 64 MiB, serial (one
//! worker) and parallel (one worker per core), beside `raw_seal`: the engine sealing the same 64 MiB
//! in place in one call. After the criterion groups, a ratio table (minimum of several runs of each
//! case, same process) is printed: stream ÷ raw and parallel ÷ serial.
//!
//! `cargo bench -p kmskit-stream --bench throughput`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use kmskit_core::crypto::{Algorithm, default_engine};
use kmskit_core::{DataKey, EncryptionContext, SecretBytes};
use kmskit_stream::{Header, Opener, Options, Sealer, default_workers};

const SIZE: usize = 64 << 20;
const CHUNKS: &[(usize, &str)] = &[
    (16 << 10, "16KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
    (4 << 20, "4MiB"),
];

fn key() -> DataKey {
    DataKey::new(SecretBytes::from_slice(&[7; 32]))
}

fn opts(chunk: usize, workers: usize) -> Options {
    Options::new().chunk_size(chunk).unwrap().workers(workers)
}

fn raw_seal(buf: &mut [u8]) {
    let k = default_engine().new_key(Algorithm::Aes256Gcm, &[9; 32]).unwrap();
    black_box(k.seal_in_place_detached(&[1; 12], b"aad", buf).unwrap());
}

fn encrypt(pt: &[u8], chunk: usize, workers: usize) -> Vec<u8> {
    Sealer::new(
        &key(),
        b"wrapped",
        &EncryptionContext::new(),
        &opts(chunk, workers),
    )
    .unwrap()
    .encrypt_to_vec(pt)
    .unwrap()
}

/// Encrypts into a reused output buffer (no allocation, no page faults in the loop).
fn encrypt_into(pt: &[u8], chunk: usize, workers: usize, out: &mut Vec<u8>) {
    Sealer::new(
        &key(),
        b"wrapped",
        &EncryptionContext::new(),
        &opts(chunk, workers),
    )
    .unwrap()
    .encrypt_into(pt, out)
    .unwrap();
}

/// The least any out-of-place encryption pays: copy the plaintext into a reused buffer, seal it.
fn raw_copy_seal(pt: &[u8], out: &mut [u8]) {
    out.copy_from_slice(pt);
    raw_seal(out);
}

/// The engine's own one-pass out-of-place seal of the whole buffer into a reused one (ciphertext ‖ tag).
fn raw_seal_to(pt: &[u8], out: &mut [u8]) {
    let k = default_engine().new_key(Algorithm::Aes256Gcm, &[9; 32]).unwrap();
    k.seal_to(&[1; 12], b"aad", pt, out).unwrap();
}

/// The engine's in-place open of the whole buffer (`sealed` is restored from `ct` first, outside the timing).
fn raw_open_in_place(sealed: &mut Vec<u8>) {
    let k = default_engine().new_key(Algorithm::Aes256Gcm, &[9; 32]).unwrap();
    k.open_in_place(&[1; 12], b"aad", sealed).unwrap();
}

/// The engine's one-pass out-of-place open of the whole buffer into a reused one.
fn raw_open_to(sealed: &[u8], out: &mut [u8]) {
    let k = default_engine().new_key(Algorithm::Aes256Gcm, &[9; 32]).unwrap();
    k.open_to(&[1; 12], b"aad", sealed, out).unwrap();
}

/// Minimum time of `runs` in-place opens, restoring the ciphertext before each (untimed).
fn min_open_in_place(runs: usize, sealed: &[u8]) -> Duration {
    let mut buf = sealed.to_vec();
    (0..runs)
        .map(|_| {
            buf.clear();
            buf.extend_from_slice(sealed);
            let t = Instant::now();
            raw_open_in_place(&mut buf);
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn opener(ct: &[u8], chunk: usize, workers: usize) -> (Opener, usize) {
    let (h, at) = Header::parse(ct).unwrap();
    (
        Opener::new(h, &key(), &EncryptionContext::new(), &opts(chunk, workers)).unwrap(),
        at,
    )
}

fn min_time(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let workers = default_workers();
    let pt: Vec<u8> = (0..SIZE).map(|i| i as u8).collect();
    let mut raw_buf = pt.clone();
    let mut out = Vec::new();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for &(chunk, name) in CHUNKS {
        let ct = encrypt(&pt, chunk, 1);
        let mut g = c.benchmark_group(format!("stream/{name}"));
        g.throughput(Throughput::Bytes(SIZE as u64));
        g.bench_function("raw_seal", |b| b.iter(|| raw_seal(&mut raw_buf)));
        g.bench_function("raw_copy_seal", |b| b.iter(|| raw_copy_seal(&pt, &mut raw_buf)));
        for (label, w) in [("serial", 1), ("parallel", workers)] {
            g.bench_function(BenchmarkId::new("encrypt", label), |b| {
                b.iter(|| encrypt_into(&pt, chunk, w, &mut out))
            });
            let (op, at) = opener(&ct, chunk, w);
            g.bench_function(BenchmarkId::new("decrypt", label), |b| {
                b.iter(|| op.decrypt_body_into(&ct[at..], &mut out).unwrap())
            });
        }
        g.finish();
    }
    c.final_summary();

    // Ratio table: minimum of several runs of each case, all in this process.
    //
    // Baselines, all on the same 64 MiB: `raw` seals in place in one call (reads and writes each cache
    // line once); `raw-oop` seals out of place in one call (reads the source, writes a second buffer:
    // the least any format that writes its output elsewhere can pay); `copy+raw` copies then seals in
    // place. Decryption is set against the engine's own open, in place and out of place.
    let runs = 7;
    let mut sealed_whole = vec![0u8; SIZE + 16];
    raw_seal_to(&pt, &mut sealed_whole);
    let mut raw_out = vec![0u8; SIZE + 16];
    println!(
        "\nratios = baseline time / stream time (min of {runs} runs, 64 MiB, reused output buffers, \
         {workers} workers for parallel, engine {}):",
        default_engine().name()
    );
    println!(
        "chunk   raw GB/s  enc/raw enc/raw-oop enc/copy+raw  dec/open dec/open-oop  enc-par/ser dec-par/ser"
    );
    let gbs = |d: Duration| SIZE as f64 / d.as_secs_f64() / 1e9;
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for &(chunk, name) in CHUNKS {
        let ct = encrypt(&pt, chunk, 1);
        let raw = min_time(runs, || raw_seal(&mut raw_buf));
        let raw_oop = min_time(runs, || raw_seal_to(&pt, &mut raw_out));
        let raw_copy = min_time(runs, || raw_copy_seal(&pt, &mut raw_buf));
        let open = min_open_in_place(runs, &sealed_whole);
        let open_oop = min_time(runs, || raw_open_to(&sealed_whole, &mut raw_buf));
        let es = min_time(runs, || encrypt_into(&pt, chunk, 1, &mut out));
        let ep = min_time(runs, || encrypt_into(&pt, chunk, workers, &mut out));
        let (o1, at) = opener(&ct, chunk, 1);
        let (on, _) = opener(&ct, chunk, workers);
        let ds = min_time(runs, || o1.decrypt_body_into(&ct[at..], &mut out).unwrap());
        let dp = min_time(runs, || on.decrypt_body_into(&ct[at..], &mut out).unwrap());
        println!(
            "{name:6}  {:8.2}  {:7.2} {:11.2} {:12.2}  {:8.2} {:12.2}  {:11.2} {:11.2}",
            gbs(raw),
            r(raw, es),
            r(raw_oop, es),
            r(raw_copy, es),
            r(open, ds),
            r(open_oop, ds),
            r(es, ep),
            r(ds, dp),
        );
    }
}
