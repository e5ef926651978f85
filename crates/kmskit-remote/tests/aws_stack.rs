//! The data-key cache and the stream crate, unchanged, on top of `AwsKms` (against moto; see
//! `aws_conformance.rs` for the endpoint).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::sync::Arc;

use kmskit_core::{
    CacheLimits, Caller, CreateKey, DataKeyCache, EncryptionContext, EnvelopeEncryptor, KeyProvider, KeyRef,
};
use kmskit_remote::AwsKms;
use kmskit_stream::{Decryptor, Encryptor, Options};

fn endpoint() -> Option<String> {
    match std::env::var("KMSKIT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "KMSKIT_TEST_AWS_ENDPOINT is not set under CI"
            );
            eprintln!("kmskit-remote: SKIPPED (KMSKIT_TEST_AWS_ENDPOINT not set; run scripts/test.sh)");
            None
        }
    }
}

async fn kms(url: &str) -> AwsKms {
    AwsKms::builder()
        .endpoint_url(url)
        .region("sa-east-1")
        .credentials("testing", "testing", None)
        .build()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_with_cache_saves_calls() {
    let Some(url) = endpoint() else { return };
    let kms = Arc::new(kms(&url).await);
    let caller = Caller::local();
    let key = kms.create_key(&caller, CreateKey::new("envelope")).await.unwrap();
    let key = KeyRef::Id(key.key_id);
    let ctx = EncryptionContext::from_pairs([("tenant", "t1")]).unwrap();
    let cache = Arc::new(DataKeyCache::new(CacheLimits::new().max_messages(1000)));
    let env = EnvelopeEncryptor::new(kms.clone()).with_cache(cache.clone());
    let mut sealed = Vec::new();
    for i in 0..20u8 {
        sealed.push(env.seal(&caller, &key, &[i; 1024], &ctx).await.unwrap());
    }
    for (i, s) in sealed.iter().enumerate() {
        assert_eq!(
            &env.open(&caller, s, &ctx).await.unwrap()[..],
            &[i as u8; 1024][..]
        );
    }
    let stats = cache.stats();
    assert_eq!(stats.encrypt_misses, 1, "{stats:?}");
    assert_eq!(stats.encrypt_hits, 19, "{stats:?}");
    assert!(stats.provider_calls_saved() >= 19, "{stats:?}");
    // Without the cache, a fresh encryptor still opens them (one Decrypt each).
    let plain = EnvelopeEncryptor::new(kms.clone());
    assert_eq!(
        &plain.open(&caller, &sealed[3], &ctx).await.unwrap()[..],
        &[3u8; 1024][..]
    );
    let wrong = EncryptionContext::from_pairs([("tenant", "t2")]).unwrap();
    assert!(plain.open(&caller, &sealed[3], &wrong).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_round_trip() {
    let Some(url) = endpoint() else { return };
    let kms = kms(&url).await;
    let caller = Caller::local();
    let key = kms.create_key(&caller, CreateKey::new("stream")).await.unwrap();
    let key = KeyRef::Id(key.key_id);
    let ctx = EncryptionContext::from_pairs([("file", "x.bin")]).unwrap();
    let opts = Options::new().chunk_size(4096).unwrap();
    let data: Vec<u8> = (0..3 * 4096 + 5).map(|i| (i % 251) as u8).collect();
    let mut enc = Encryptor::with_provider(Vec::new(), &kms, &caller, &key, &ctx, &opts)
        .await
        .unwrap();
    enc.write_all(&data).unwrap();
    let stream = enc.finish().unwrap();
    let mut dec = Decryptor::with_provider(&stream[..], &kms, &caller, &ctx, &opts)
        .await
        .unwrap();
    let mut out = Vec::new();
    dec.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
    let wrong = EncryptionContext::from_pairs([("file", "y.bin")]).unwrap();
    assert!(
        Decryptor::with_provider(&stream[..], &kms, &caller, &wrong, &opts)
            .await
            .is_err()
    );
}
