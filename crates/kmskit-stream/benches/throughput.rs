//! Stream throughput against the raw AEAD engine, measured in the same run.
//!
//! For each chunk size (16 KiB, 64 KiB, 1 MiB, 4 MiB): encrypt and decrypt of 64 MiB, serial (one
//! worker) and parallel (one worker per core), beside `raw_seal`: the engine sealing the same 64 MiB
//! in place in one call. After the criterion groups, a ratio table (minimum of several runs of each
//! case, same process) is printed: stream ÷ raw and parallel ÷ serial, and beside them the same ratios
//! for aws-lc-rs alone (`LessSafeKey`, no kmskit code) sealing the same chunks out of place into the
//! same layout, serially and split over the same threads: what the engine and the machine allow any
//! per-chunk-authenticated format that writes its output elsewhere. Two context lines follow: the
//! engine's in-place seal with one call per chunk (its fixed cost per call), and a plain copy of the
//! 64 MiB on one and on all threads (what memory allows).
//!
//! `cargo bench -p kmskit-stream --bench throughput`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
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

fn lc_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9; 32]).unwrap())
}

fn lc_nonce(i: usize) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&(i as u64).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// aws-lc-rs alone: chunks `first..` of `pt` sealed one call each, out of place, into `slots` (each
/// chunk's ciphertext ‖ tag, back to back, as the stream lays them out).
fn lc_seal_chunks(k: &LessSafeKey, pt: &[u8], chunk: usize, first: usize, slots: &mut [u8]) {
    for (j, slot) in slots.chunks_mut(chunk + 16).enumerate() {
        let i = first + j;
        let p = &pt[i * chunk..(i * chunk + slot.len() - 16)];
        k.seal_in_place_scatter(lc_nonce(i), Aad::from(b"aad"), &mut [], p, slot)
            .unwrap();
    }
}

/// aws-lc-rs alone: the chunks of `sealed` (laid out as `lc_seal_chunks` writes them) opened one call
/// each, out of place, into `out`.
fn lc_open_chunks(k: &LessSafeKey, sealed: &[u8], chunk: usize, first: usize, out: &mut [u8]) {
    for (j, (s, o)) in sealed.chunks(chunk + 16).zip(out.chunks_mut(chunk)).enumerate() {
        let (ct, tag) = s.split_at(s.len() - 16);
        k.open_separate_gather(
            lc_nonce(first + j),
            Aad::from(b"aad"),
            ct,
            tag,
            &mut o[..ct.len()],
        )
        .unwrap();
    }
}

/// Runs `f(first_chunk, group)` over `workers` contiguous groups of `n` units of `unit` bytes of `buf`
/// on scoped threads.
fn split<F: Fn(usize, &mut [u8]) + Sync>(n: usize, workers: usize, buf: &mut [u8], unit: usize, f: F) {
    let per = n.div_ceil(workers);
    std::thread::scope(|s| {
        for (g, group) in buf.chunks_mut(per * unit).enumerate() {
            let f = &f;
            s.spawn(move || f(g * per, group));
        }
    });
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
    let lc = lc_key();
    println!(
        "\nratios = baseline time / stream time (min of {runs} runs, 64 MiB, reused output buffers, \
         {workers} workers for parallel, engine {}):",
        default_engine().name()
    );
    println!("  raw = the engine sealing (opening) all 64 MiB in place in one call;");
    println!("  lc = aws-lc-rs alone sealing (opening) the same chunks out of place into the same layout.");
    println!(
        "chunk   raw GB/s  enc/raw enc/lc  dec/raw dec/lc  enc-par/ser dec-par/ser  lc-enc-par/ser lc-dec-par/ser"
    );
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for &(chunk, name) in CHUNKS {
        let n = SIZE.div_ceil(chunk);
        let ct = encrypt(&pt, chunk, 1);
        let raw = min_time(runs, || raw_seal(&mut raw_buf));
        let open = min_open_in_place(runs, &sealed_whole);
        let es = min_time(runs, || encrypt_into(&pt, chunk, 1, &mut out));
        let ep = min_time(runs, || encrypt_into(&pt, chunk, workers, &mut out));
        let (o1, at) = opener(&ct, chunk, 1);
        let (on, _) = opener(&ct, chunk, workers);
        let ds = min_time(runs, || o1.decrypt_body_into(&ct[at..], &mut out).unwrap());
        let dp = min_time(runs, || on.decrypt_body_into(&ct[at..], &mut out).unwrap());
        // The engine alone, same chunks and layout (after a header-sized gap, so the chunks sit at the
        // stream's offsets and alignment), serial and split like the stream's parallel path.
        let mut lc_buf = vec![0u8; at + SIZE + 16 * n];
        let lc_sealed = &mut lc_buf[at..];
        let mut lc_plain = vec![0u8; SIZE];
        let unit = chunk + 16;
        let lc_es = min_time(runs, || lc_seal_chunks(&lc, &pt, chunk, 0, lc_sealed));
        let lc_ep = min_time(runs, || {
            split(n, workers, lc_sealed, unit, |first, slots| {
                lc_seal_chunks(&lc, &pt, chunk, first, slots)
            })
        });
        let lc_sealed = &*lc_sealed;
        let lc_ds = min_time(runs, || lc_open_chunks(&lc, lc_sealed, chunk, 0, &mut lc_plain));
        let lc_dp = min_time(runs, || {
            split(n, workers, &mut lc_plain, chunk, |first, outs| {
                let end = ((first + outs.len() / chunk) * unit).min(lc_sealed.len());
                lc_open_chunks(&lc, &lc_sealed[first * unit..end], chunk, first, outs)
            })
        });
        println!(
            "{name:6}  {:8.2}  {:7.2} {:6.2}  {:7.2} {:6.2}  {:11.2} {:11.2}  {:14.2} {:14.2}",
            SIZE as f64 / raw.as_secs_f64() / 1e9,
            r(raw, es),
            r(lc_es, es),
            r(open, ds),
            r(lc_ds, ds),
            r(es, ep),
            r(ds, dp),
            r(lc_es, lc_ep),
            r(lc_ds, lc_dp),
        );
    }

    // Context for the table: the engine's cost per call (in place, so no extra memory traffic) and
    // what memory alone allows (a copy of the same 64 MiB, on one and on all threads).
    let raw = min_time(runs, || raw_seal(&mut raw_buf));
    print!("aws-lc-rs in place, one call per chunk, time ÷ raw:");
    for &(chunk, name) in CHUNKS {
        let t = min_time(runs, || {
            for (i, c) in raw_buf.chunks_mut(chunk).enumerate() {
                let tag = lc.seal_in_place_separate_tag(lc_nonce(i), Aad::from(b"aad"), c);
                black_box(tag.unwrap().as_ref()[0]);
            }
        });
        print!("  {name} {:.2}", r(raw, t));
    }
    let mut copy_out = vec![0u8; SIZE];
    let copy1 = min_time(runs, || copy_out.copy_from_slice(&pt));
    let copy_n = min_time(runs, || {
        split(
            workers,
            workers,
            &mut copy_out,
            SIZE.div_ceil(workers),
            |g, dst| {
                let at = g * SIZE.div_ceil(workers);
                dst.copy_from_slice(&pt[at..at + dst.len()]);
            },
        )
    });
    println!(
        "\ncopy of the 64 MiB: raw ÷ copy {:.2} (the in-place seal runs at memory speed); copy on {workers} \
         threads ÷ 1: {:.2}",
        r(raw, copy1),
        r(copy1, copy_n)
    );
}
