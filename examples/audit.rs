//! The audit trail: calls go to an append-only, hash-chained JSON-lines file; a lookup finds the
//! Encrypt and Decrypt events of the last day; then one line of the file is edited and `verify`
//! pinpoints it.
//!
//! Run with `cargo run --example audit [DIR]` (default: a fresh directory under the system temp dir,
//! removed at the end).

use std::sync::Arc;

use kmskit::audit::{AuditLog, AuditQuery, AuditSink, FileSink};
use kmskit::clock::DAY;
use kmskit::governance::Governance;
use kmskit::{
    Caller, Clock, CreateKey, EncryptionContext, Error, KeyProvider, KeyRef, KmsConfig, MemoryKms,
    MemoryKmsExt, SystemClock, Timestamp,
};

fn main() -> Result<(), Error> {
    let given = std::env::args().nth(1);
    let dir = match &given {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("kmskit-audit-example-{}", std::process::id())),
    };
    let r = kmskit::block_on(run(&dir));
    if given.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

async fn run(dir: &std::path::Path) -> Result<(), Error> {
    let sink = Arc::new(FileSink::open(dir)?);
    let log = Arc::new(AuditLog::new(vec![sink.clone() as Arc<dyn AuditSink>])?);
    let gov = Governance::new().audit(log.clone());
    let kms = MemoryKms::with_memory_config(KmsConfig::new().governance(Arc::new(gov)));

    let alice =
        Caller::new("alice").with_source_ip("10.1.2.3".parse().map_err(|_| Error::Internal("ip".into()))?);
    let key = KeyRef::Id(kms.create_key(&alice, CreateKey::new("audited")).await?.key_id);
    let ctx = EncryptionContext::from_pairs([("order", "1234")])?;
    for i in 0..3 {
        let enc = kms
            .encrypt(&alice, &key, format!("secret #{i}").as_bytes(), &ctx)
            .await?;
        kms.decrypt(&alice, &enc.ciphertext_blob, &ctx).await?;
    }
    let _ = kms.describe_key(&alice, &key).await?;
    // A failed call is audited too.
    let _ = kms.encrypt(&alice, &key, &[0u8; 7000], &ctx).await;
    log.flush()?;

    let now = SystemClock.now();
    let q = AuditQuery::new()
        .actions(["Encrypt", "Decrypt"])
        .between(Timestamp::from_unix(now.unix().saturating_sub(DAY)), now);
    let events = log.lookup(&q)?;
    println!("lookup Encrypt/Decrypt in the last day: {} events", events.len());
    for e in &events {
        println!(
            "  #{:<3} {} {:<8} {:<6} from {:<9} key {} v {} -> {:?} {} ctx keys {:?}",
            e.seq,
            e.time,
            e.action,
            e.principal,
            e.source_ip.map(|i| i.to_string()).unwrap_or_default(),
            e.key_id.as_deref().unwrap_or("-"),
            e.key_version_id.as_deref().unwrap_or("-"),
            e.outcome,
            e.code,
            e.context_keys
        );
    }
    let report = log.verify()?.map_err(|b| Error::Internal(b.to_string()))?;
    println!("verify: ok, {} events, head {} ", report.events, report.head.seq);
    drop(kms);

    // Tamper: turn the third event's principal into someone else.
    let seg = sink
        .segment_paths()?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("no segment".into()))?;
    let text = std::fs::read_to_string(&seg).map_err(|e| Error::io("reading the audit file", e))?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replacen("\"alice\"", "\"mallory\"", 1);
    std::fs::write(&seg, lines.join("\n") + "\n").map_err(|e| Error::io("writing the audit file", e))?;
    println!("edited line 3 of {}", seg.display());
    match FileSink::read_dir(dir).map(|r| kmskit::audit::verify(&r))? {
        Ok(_) => return Err(Error::Internal("verify missed the edit".into())),
        Err(b) => println!("verify after edit: {b}"),
    }
    Ok(())
}
