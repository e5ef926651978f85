//! Key rotation: encrypt, rotate twice, decrypt all three generations, ReEncrypt the oldest to the
//! newest version, raise the version floor and show the oldest ciphertext now fails with its code; then
//! a rotation policy and the due work a scheduler performs.
//!
//! Run with `cargo run --example rotation`.

use std::sync::Arc;

use kmskit::rotate::{RotationPolicy, Rotator};
use kmskit::{
    Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, Kms, KmsConfig, ManualClock, MemoryStore,
    Timestamp,
};

fn main() -> Result<(), kmskit::Error> {
    kmskit::block_on(run())
}

async fn run() -> Result<(), kmskit::Error> {
    // A manual clock so the example can move time forward for the rotation policy.
    let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z")?));
    let kms = Kms::with_config(MemoryStore::new(), KmsConfig::new().clock(clock.clone()))?;
    let caller = Caller::local();
    let meta = kms
        .create_key(&caller, CreateKey::new("rotation example"))
        .await?;
    let key = KeyRef::Id(meta.key_id.clone());
    let ctx = EncryptionContext::from_pairs([("app", "billing")])?;

    let mut blobs = Vec::new();
    for generation in 1..=3 {
        if generation > 1 {
            clock.advance(86_400);
            let v = kms.rotate(&caller, &key).await?;
            println!(
                "rotated: new primary version {} ({})",
                v.key_version_id, v.creation_date
            );
        }
        let msg = format!("generation {generation} secret");
        let enc = kms.encrypt(&caller, &key, msg.as_bytes(), &ctx).await?;
        println!("encrypted {msg:?} under version {}", enc.key_version_id);
        blobs.push(enc);
    }
    for enc in &blobs {
        let d = kms.decrypt(&caller, &enc.ciphertext_blob, &ctx).await?;
        println!(
            "decrypted {:?} with version {}",
            String::from_utf8_lossy(&d.plaintext),
            d.key_version_id
        );
    }

    // Move the oldest ciphertext to the newest version, without the plaintext leaving the KMS.
    let moved = kms
        .re_encrypt_to_primary(&caller, &blobs[0].ciphertext_blob, &ctx)
        .await?;
    println!(
        "re-encrypted the generation 1 ciphertext to version {}",
        moved.key_version_id
    );

    // Retire versions 1 and 2: the floor is the newest version now.
    kms.set_min_decryption_version(&caller, &key, Some(moved.key_version_id.clone()))
        .await?;
    let e = match kms.decrypt(&caller, &blobs[0].ciphertext_blob, &ctx).await {
        Ok(_) => return Err(kmskit::Error::Internal("a retired version decrypted".into())),
        Err(e) => e,
    };
    println!(
        "after raising the floor, the old generation 1 ciphertext fails: {} (HTTP {})",
        e.code(),
        e.http_status()
    );
    let d = kms.decrypt(&caller, &moved.ciphertext_blob, &ctx).await?;
    println!(
        "its re-encrypted copy still decrypts: {:?}",
        String::from_utf8_lossy(&d.plaintext)
    );

    // Automatic rotation every 90 days; `run_due` is what the scheduler task calls on its interval.
    kms.set_rotation_policy(&caller, &key, RotationPolicy::every_days(90)?)
        .await?;
    let m = kms.describe_key(&caller, &key).await?;
    let next = m.next_rotation_date.unwrap_or(m.creation_date);
    println!(
        "rotation policy: AutomaticRotation={} RotationInterval={} LastRotationDate={} NextRotationDate={}",
        m.automatic_rotation,
        m.rotation_interval.as_deref().unwrap_or(""),
        m.last_rotation_date.map(|t| t.to_string()).unwrap_or_default(),
        next
    );
    println!(
        "due one second before: {} key(s)",
        kms.due(Timestamp::from_unix(next.unix() - 1))
            .await?
            .rotations
            .len()
    );
    clock.set(next);
    let report = kms.run_due(next).await?;
    for v in &report.rotated {
        println!(
            "run_due at {next}: rotated {} to version {}",
            v.key_id, v.key_version_id
        );
    }
    Ok(())
}
