//! The multi-replica deployment in one page: a kmskit-server holds the keys (here over a file keystore,
//! in-process on an ephemeral 127.0.0.1 port), and an application replica reaches it through
//! `AliyunKms` — the same `KeyProvider` the local engines implement — to envelope-encrypt a file.
//!
//! Run with `cargo run --example remote_envelope [FILE]` (without FILE it encrypts a sample it writes).

use std::sync::Arc;

use kmskit::envelope::{CacheLimits, DataKeyCache, EnvelopeEncryptor};
use kmskit::{
    AliyunKms, Caller, CreateKey, EncryptionContext, FileKms, FileKmsExt, KeyProvider, KeyRef, RootKey,
};
use kmskit_server::sign::AccessKeySecret;
use kmskit_server::{AccessKey, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("kmskit-remote-envelope-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    // 1. The key server: a file keystore behind the Alibaba Cloud KMS RPC API.
    let mut root_bytes = kmskit::Zeroizing::new([0u8; 32]);
    kmskit::rand::fill(&mut root_bytes[..]);
    let root = RootKey::from_bytes(&root_bytes[..])?;
    let keystore: Arc<dyn KeyProvider> = Arc::new(FileKms::open_dir(dir.join("keystore"), &root)?);
    let server = Server::builder()
        .provider(keystore)
        .access_key(AccessKey::new(
            "ak-app",
            AccessKeySecret::new("app-secret"),
            "app",
        ))
        .build()?
        .bind("127.0.0.1:0".parse()?)
        .await?;
    let addr = server.local_addr().ok_or("no local address")?;
    println!("kmskit-server listening on http://{addr}");

    // 2. An application replica: AliyunKms pointed at the server (in production: .region("cn-hangzhou")
    //    and the ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET environment variables).
    let kms = Arc::new(
        AliyunKms::builder()
            .endpoint(format!("http://{addr}"))
            .credentials("ak-app", "app-secret")
            .build()?,
    );
    let caller = Caller::local();
    let key = kms.create_key(&caller, CreateKey::new("files")).await?;
    println!("created key {} through the server", key.key_id);
    let key = KeyRef::Id(key.key_id);

    // 3. Envelope-encrypt a file: one GenerateDataKey over the network, the AEAD runs locally.
    let input = match std::env::args().nth(1) {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            let p = dir.join("report.csv");
            let rows: String = (0..20_000)
                .map(|i| format!("{i},customer-{i},{}\n", i * 7))
                .collect();
            std::fs::write(&p, rows)?;
            p
        }
    };
    let plaintext = std::fs::read(&input)?;
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_owned();
    let ctx = EncryptionContext::from_pairs([("file", name.as_str())])?;
    let cache = Arc::new(DataKeyCache::new(CacheLimits::new().max_messages(1000)));
    let env = EnvelopeEncryptor::new(kms.clone()).with_cache(cache.clone());
    let sealed = env.seal(&caller, &key, &plaintext, &ctx).await?;
    let out = dir.join(format!("{name}.kmsenv"));
    std::fs::write(&out, &sealed)?;
    println!(
        "sealed {} bytes of {} into {} ({} bytes)",
        plaintext.len(),
        input.display(),
        out.display(),
        sealed.len()
    );

    // 4. Another replica (a fresh encryptor, no cache) opens it: one Decrypt over the network.
    let other = EnvelopeEncryptor::new(kms.clone());
    let opened = other.open(&caller, &std::fs::read(&out)?, &ctx).await?;
    assert!(opened[..] == plaintext[..]);
    println!("opened by another replica: identical");

    // 5. Small records through the cache: one data key serves many seals.
    for i in 0..100u32 {
        env.seal(&caller, &key, format!("record {i}").as_bytes(), &ctx)
            .await?;
    }
    println!(
        "provider calls saved by the cache: {}",
        cache.stats().provider_calls_saved()
    );

    server.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
