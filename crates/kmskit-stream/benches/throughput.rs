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
        for (label, w) in [("serial", 1), ("parallel", workers)] {
            g.bench_function(BenchmarkId::new("encrypt", label), |b| {
                b.iter(|| black_box(encrypt(&pt, chunk, w)))
            });
            let (op, at) = opener(&ct, chunk, w);
            g.bench_function(BenchmarkId::new("decrypt", label), |b| {
                b.iter(|| black_box(op.decrypt_body(&ct[at..]).unwrap()))
            });
        }
        g.finish();
    }
    c.final_summary();

    // Ratio table: minimum of several runs of each case, all in this process.
    let runs = 7;
    println!(
        "\nratios (min of {runs} runs, 64 MiB, {workers} workers for parallel, engine {}):",
        default_engine().name()
    );
    println!("chunk   raw GB/s  enc-ser/raw dec-ser/raw  enc-par/enc-ser dec-par/dec-ser");
    let gbs = |d: Duration| SIZE as f64 / d.as_secs_f64() / 1e9;
    for &(chunk, name) in CHUNKS {
        let ct = encrypt(&pt, chunk, 1);
        let raw = min_time(runs, || raw_seal(&mut raw_buf));
        let es = min_time(runs, || drop(black_box(encrypt(&pt, chunk, 1))));
        let ep = min_time(runs, || drop(black_box(encrypt(&pt, chunk, workers))));
        let (o1, at) = opener(&ct, chunk, 1);
        let (on, _) = opener(&ct, chunk, workers);
        let ds = min_time(runs, || drop(black_box(o1.decrypt_body(&ct[at..]).unwrap())));
        let dp = min_time(runs, || drop(black_box(on.decrypt_body(&ct[at..]).unwrap())));
        println!(
            "{name:6}  {:8.2}  {:11.2} {:11.2}  {:15.2} {:15.2}",
            gbs(raw),
            raw.as_secs_f64() / es.as_secs_f64(),
            raw.as_secs_f64() / ds.as_secs_f64(),
            es.as_secs_f64() / ep.as_secs_f64(),
            ds.as_secs_f64() / dp.as_secs_f64(),
        );
    }
}
