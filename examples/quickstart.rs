//! The four steps of a first KMS session: create a key, encrypt, print the ciphertext, decrypt.
//!
//! Run with `cargo run --example quickstart`.

use kmskit::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, MemoryKms, MemoryKmsExt};

fn main() -> Result<(), kmskit::Error> {
    kmskit::block_on(run())
}

async fn run() -> Result<(), kmskit::Error> {
    // The embedded default: an in-process KMS whose keys live in memory.
    let kms = MemoryKms::new_memory();
    let caller = Caller::local();

    // 1. Create a key with a description.
    let key = kms.create_key(&caller, CreateKey::new("quickstart key")).await?;
    println!(
        "1. created key {} ({}, {})",
        key.key_id, key.key_spec, key.key_state
    );

    // 2. Encrypt "Hello KMS" under it, bound to an encryption context.
    let ctx = EncryptionContext::from_pairs([("purpose", "quickstart")])?;
    let enc = kms
        .encrypt(&caller, &KeyRef::Id(key.key_id.clone()), b"Hello KMS", &ctx)
        .await?;

    // 3. The ciphertext blob names its key and version; its text form is Base64.
    println!("2. encrypted with version {}", enc.key_version_id);
    println!("3. ciphertext blob: {}", enc.ciphertext_blob.to_base64());

    // 4. Decrypt: the blob says which key; the same context must be presented.
    let dec = kms.decrypt(&caller, &enc.ciphertext_blob, &ctx).await?;
    println!("4. decrypted: {}", String::from_utf8_lossy(&dec.plaintext));
    Ok(())
}
