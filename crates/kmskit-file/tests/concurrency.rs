//! Concurrency: many tasks creating keys, encrypting, decrypting, changing states and aliases at once
//! on one `FileKms`; afterwards the reopened keystore must equal the in-memory view exactly.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use kmskit_core::{
    AliasInfo, AliasName, CiphertextBlob, CreateKey, KeyMetadata, KeyProvider, KeyRef, KeyState, ListKeys,
    PageRequest,
};
use kmskit_file::{FileKms, FileKmsExt, FileStore};

const TASKS: u64 = 16;

/// Ciphertexts and their plaintexts, collected by all tasks.
type Blobs = Arc<Mutex<Vec<(CiphertextBlob, Vec<u8>)>>>;
const OPS: u64 = 40;

async fn view(kms: &FileKms) -> (Vec<KeyMetadata>, Vec<AliasInfo>) {
    let c = caller();
    let mut keys = Vec::new();
    let mut page = 1;
    loop {
        let p = kms
            .list_keys(&c, ListKeys::new(PageRequest::new(page, 100).unwrap()))
            .await
            .unwrap();
        for k in &p.items {
            keys.push(kms.describe_key(&c, &KeyRef::Id(k.key_id.clone())).await.unwrap());
        }
        if keys.len() as u64 >= p.total_count {
            break;
        }
        page += 1;
    }
    keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    let mut aliases = Vec::new();
    let mut page = 1;
    loop {
        let p = kms
            .list_aliases(&c, PageRequest::new(page, 100).unwrap())
            .await
            .unwrap();
        aliases.extend(p.items);
        if aliases.len() as u64 >= p.total_count {
            break;
        }
        page += 1;
    }
    aliases.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
    (keys, aliases)
}

#[test]
fn concurrent_mutations_reopen_to_the_same_view() {
    let t = tempfile::tempdir().unwrap();
    // A small compaction threshold so compactions run in the middle of the traffic too.
    let store = FileStore::builder(t.path())
        .root_key(root())
        .compaction_min_bytes(32 * 1024)
        .open()
        .unwrap();
    let kms = Arc::new(FileKms::open(store).unwrap());
    let blobs: Blobs = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let before = rt.block_on(async {
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let kms = Arc::clone(&kms);
            let blobs = Arc::clone(&blobs);
            handles.push(tokio::spawn(async move {
                let c = caller();
                let mut mine = Vec::new();
                for op in 0..OPS {
                    let pick = (task * 7 + op * 13) % 10;
                    if mine.is_empty() || pick < 3 {
                        let m = kms
                            .create_key(&c, CreateKey::new(format!("task {task} op {op}")))
                            .await
                            .unwrap();
                        mine.push(m.key_id);
                        continue;
                    }
                    let k = mine[(op as usize * 31) % mine.len()].clone();
                    let r = KeyRef::Id(k.clone());
                    let state = kms.describe_key(&c, &r).await.unwrap().key_state;
                    match pick {
                        3..=5 if state == KeyState::Enabled => {
                            let pt = format!("{task}/{op}").into_bytes();
                            let enc = kms.encrypt(&c, &r, &pt, &ctx()).await.unwrap();
                            let dec = kms.decrypt(&c, &enc.ciphertext_blob, &ctx()).await.unwrap();
                            assert_eq!(&dec.plaintext[..], &pt[..]);
                            blobs.lock().unwrap().push((enc.ciphertext_blob, pt));
                        }
                        6 if state == KeyState::Enabled => kms.disable_key(&c, &r).await.unwrap(),
                        6 if state == KeyState::Disabled => kms.enable_key(&c, &r).await.unwrap(),
                        7 if state != KeyState::PendingDeletion => {
                            kms.schedule_key_deletion(&c, &r, 7).await.unwrap();
                        }
                        7 => kms.cancel_key_deletion(&c, &r).await.unwrap(),
                        8 if state != KeyState::PendingDeletion => {
                            let a = AliasName::new(format!("alias/t{task}-{op}")).unwrap();
                            kms.create_alias(&c, &a, &r).await.unwrap();
                        }
                        _ => kms
                            .update_key_description(&c, &r, &format!("updated by {task} at {op}"))
                            .await
                            .unwrap(),
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        view(&kms).await
    });
    assert!(before.0.len() as u64 >= TASKS * 3, "{} keys", before.0.len());
    let stats = kms.store().stats();
    drop(kms);
    let kms = FileKms::open_dir(t.path(), &root()).unwrap();
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    let after = kmskit_core::block_on(view(&kms));
    assert_eq!(before.0, after.0);
    assert_eq!(before.1, after.1);
    let enabled: std::collections::HashSet<_> = after
        .0
        .iter()
        .filter(|m| m.key_state == KeyState::Enabled)
        .map(|m| m.key_id.clone())
        .collect();
    let mut checked = 0;
    for (b, pt) in blobs.lock().unwrap().iter() {
        let p = kmskit_core::blob::ParsedBlob::parse(b.as_bytes()).unwrap();
        if enabled.contains(&p.key_id) {
            assert_eq!(decrypt(&kms, b).unwrap(), *pt);
            checked += 1;
        }
    }
    println!(
        "{} keys, {} aliases, {checked} ciphertexts re-checked; journal generation {} ({} of {} bytes live)",
        after.0.len(),
        after.1.len(),
        stats.generation,
        stats.live_bytes,
        stats.total_bytes
    );
    assert!(checked > 0);
}
