//! Envelope encryption: seal 10 MiB with one GenerateDataKey, then show the data-key cache saving
//! provider calls on 10,000 small messages.
//!
//! Run with `cargo run --example envelope`.

use std::sync::Arc;
use std::time::Instant;

use kmskit::envelope::{CacheLimits, DataKeyCache, EnvelopeEncryptor, ParsedEnvelope};
use kmskit::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, MemoryKms, MemoryKmsExt};

fn main() -> Result<(), kmskit::Error> {
    kmskit::block_on(run())
}

async fn run() -> Result<(), kmskit::Error> {
    let kms = Arc::new(MemoryKms::new_memory());
    let caller = Caller::local();
    let key = kms
        .create_key(&caller, CreateKey::new("envelope example"))
        .await?;
    let key = KeyRef::Id(key.key_id);
    let ctx = EncryptionContext::from_pairs([("bucket", "backups"), ("object", "db.dump")])?;

    // 1. One big buffer: one GenerateDataKey call, the AEAD runs locally, one envelope out.
    let env = EnvelopeEncryptor::new(kms.clone());
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    let sealed = env.seal(&caller, &key, &big, &ctx).await?;
    let seal_time = t.elapsed();
    let header = ParsedEnvelope::parse(&sealed)?;
    println!(
        "sealed 10 MiB with 1 GenerateDataKey call in {seal_time:.2?}: envelope of {} bytes \
         ({} bytes of overhead: header with a {}-byte wrapped data key and a key commitment, tag)",
        sealed.len(),
        sealed.len() - big.len(),
        header.wrapped_key.len()
    );
    let t = Instant::now();
    let opened = env.open(&caller, &sealed, &ctx).await?;
    assert!(opened[..] == big[..]);
    println!(
        "opened 10 MiB with 1 Decrypt call in {:.2?}: identical",
        t.elapsed()
    );
    let wrong = EncryptionContext::from_pairs([("bucket", "backups"), ("object", "other")])?;
    let e = match env.open(&caller, &sealed, &wrong).await {
        Ok(_) => return Err(kmskit::Error::Internal("opened with a wrong context".into())),
        Err(e) => e,
    };
    println!("opening with another encryption context fails: {}", e.code());

    // 2. Many small messages through a cache: a data key serves up to 1000 messages.
    let cache = Arc::new(DataKeyCache::new(
        CacheLimits::new()
            .max_messages(1000)
            .max_age(std::time::Duration::from_secs(300)),
    ));
    let cached = EnvelopeEncryptor::new(kms.clone()).with_cache(cache.clone());
    let small_ctx = EncryptionContext::from_pairs([("service", "events")])?;
    let t = Instant::now();
    let mut envelopes = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let msg = format!("event #{i}: user signed in");
        envelopes.push(cached.seal(&caller, &key, msg.as_bytes(), &small_ctx).await?);
    }
    let seal_time = t.elapsed();
    let t = Instant::now();
    for (i, e) in envelopes.iter().enumerate() {
        let pt = cached.open(&caller, e, &small_ctx).await?;
        assert_eq!(&pt[..], format!("event #{i}: user signed in").as_bytes());
    }
    let open_time = t.elapsed();
    let s = cache.stats();
    println!(
        "10000 seals in {seal_time:.2?}: {} GenerateDataKey calls, {} served from the cache",
        s.encrypt_misses, s.encrypt_hits
    );
    println!(
        "10000 opens in {open_time:.2?}: {} Decrypt calls, {} served from the cache",
        s.decrypt_misses, s.decrypt_hits
    );
    println!(
        "provider calls: {} instead of 20000 (provider calls saved: {})",
        s.encrypt_misses + s.decrypt_misses,
        s.provider_calls_saved()
    );
    Ok(())
}
