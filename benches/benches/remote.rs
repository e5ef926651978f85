//! Envelope seal of 1 KiB through `AliyunKms` to a kmskit-server on loopback (127.0.0.1, in-process,
//! over `MemoryKms`), with the data-key cache off and on.
//!
//! Criterion group `remote_envelope` (1 KiB, `Throughput::Bytes`):
//! - `seal_cache_off`: every seal is a signed GenerateDataKey round trip to the server;
//! - `seal_cache_on`: seals served by a cached data key (up to 1000 messages per key).
//!
//! Then a bounded loop in this process prints the time per seal for both, the provider calls the cache
//! saved, and the ratio.
//!
//! `cargo bench -p kmskit-benches --bench remote` (about 20 s).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use kmskit_core::envelope::{CacheLimits, DataKeyCache, EnvelopeEncryptor};
use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef};
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use kmskit_remote::AliyunKms;
use kmskit_server::sign::AccessKeySecret;
use kmskit_server::{AccessKey, Server};

const N: usize = 1024;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (running, kms) = rt.block_on(async {
        let backend: Arc<dyn KeyProvider> = Arc::new(MemoryKms::new_memory());
        let running = Server::builder()
            .provider(backend)
            .access_key(AccessKey::new(
                "ak-bench",
                AccessKeySecret::new("bench-secret"),
                "bench",
            ))
            .rate_limit(1e9, 1e9)
            .build()
            .unwrap()
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = running.local_addr().unwrap();
        let kms = Arc::new(
            AliyunKms::builder()
                .endpoint(format!("http://{addr}"))
                .credentials("ak-bench", "bench-secret")
                .build()
                .unwrap(),
        );
        (running, kms)
    });
    let caller = Caller::local();
    let key = rt
        .block_on(kms.create_key(&caller, CreateKey::new("bench")))
        .unwrap();
    let key = KeyRef::Id(key.key_id);
    let ctx = EncryptionContext::from_pairs([("bench", "remote")]).unwrap();
    let data = vec![0x5au8; N];
    let off = EnvelopeEncryptor::new(kms.clone());
    let cache = Arc::new(DataKeyCache::new(
        CacheLimits::new()
            .max_messages(1000)
            .max_age(Duration::from_secs(300)),
    ));
    let on = EnvelopeEncryptor::new(kms.clone()).with_cache(cache.clone());

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    {
        let mut g = c.benchmark_group("remote_envelope");
        g.throughput(Throughput::Bytes(N as u64));
        g.bench_function("seal_cache_off", |b| {
            b.iter(|| black_box(rt.block_on(off.seal(&caller, &key, &data, &ctx)).unwrap()));
        });
        g.bench_function("seal_cache_on", |b| {
            b.iter(|| black_box(rt.block_on(on.seal(&caller, &key, &data, &ctx)).unwrap()));
        });
        g.finish();
    }

    // A bounded loop: 2000 seals each way.
    let seals = 2000u32;
    let time = |env: &EnvelopeEncryptor<AliyunKms>| {
        let t = Instant::now();
        for _ in 0..seals {
            black_box(rt.block_on(env.seal(&caller, &key, &data, &ctx)).unwrap());
        }
        t.elapsed() / seals
    };
    let t_off = time(&off);
    let before = cache.stats();
    let t_on = time(&on);
    let after = cache.stats();
    let saved = after.provider_calls_saved() - before.provider_calls_saved();
    let calls_on = after.encrypt_misses - before.encrypt_misses;
    println!(
        "remote envelope seal of 1 KiB through AliyunKms -> kmskit-server (loopback): cache off {t_off:.2?}/seal \
         ({seals} GenerateDataKey calls); cache on {t_on:.2?}/seal ({calls_on} calls, {saved} saved); \
         ratio off/on {:.1}x",
        t_off.as_secs_f64() / t_on.as_secs_f64().max(1e-12)
    );
    rt.block_on(running.shutdown());
    c.final_summary();
}
