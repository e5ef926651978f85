//! FileStore behaviour: persistence, root keys, locking, read-only use, damage reporting, deletion,
//! compaction, and the bad-input cases of the issue (wrong key, locked, missing or read-only directory,
//! full disk, corrupted record).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use kmskit_core::store::{KeyStore, MaterialId};
use kmskit_core::{AliasName, CreateKey, Error, KeyProvider, KeyRef, KeyState, KeyVersionId};
use kmskit_file::{Argon2Params, FileKms, FileKmsExt, FileStore, ROOT_KEY_ENV, RootKey};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn keys_aliases_and_states_survive_reopen() {
    let t = tmp();
    let dir = t.path().join("ks");
    let (k1, b1, k2, b2, k3);
    let alias = AliasName::new("alias/orders").unwrap();
    {
        let kms = open(&dir);
        assert!(kms.store().open_report().created);
        (k1, b1) = key_with_blob(&kms, b"one");
        (k2, b2) = key_with_blob(&kms, b"two");
        (k3, _) = key_with_blob(&kms, b"three");
        kmskit_core::block_on(async {
            kms.create_alias(&caller(), &alias, &KeyRef::Id(k1.clone()))
                .await
                .unwrap();
            kms.disable_key(&caller(), &KeyRef::Id(k2.clone())).await.unwrap();
            kms.schedule_key_deletion(&caller(), &KeyRef::Id(k3.clone()), 7)
                .await
                .unwrap();
            kms.update_key_description(&caller(), &KeyRef::Id(k1.clone()), "renamed")
                .await
                .unwrap();
        });
    }
    let kms = open(&dir);
    assert!(!kms.store().open_report().created);
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    assert_eq!(decrypt(&kms, &b1).unwrap(), b"one");
    let e = decrypt(&kms, &b2).unwrap_err();
    assert_eq!(e.code().as_str(), "Rejected.Disabled");
    kmskit_core::block_on(async {
        let m1 = kms
            .describe_key(&caller(), &KeyRef::Alias(alias.clone()))
            .await
            .unwrap();
        assert_eq!(m1.key_id, k1);
        assert_eq!(m1.description, "renamed");
        let m3 = kms
            .describe_key(&caller(), &KeyRef::Id(k3.clone()))
            .await
            .unwrap();
        assert_eq!(m3.key_state, KeyState::PendingDeletion);
        kms.enable_key(&caller(), &KeyRef::Id(k2.clone())).await.unwrap();
    });
    assert_eq!(decrypt(&kms, &b2).unwrap(), b"two");
}

#[test]
fn wrong_root_key_is_access_denied_at_open() {
    let t = tmp();
    drop(open(t.path()));
    let err = FileKms::open_dir(t.path(), &RootKey::generate()).unwrap_err();
    assert!(matches!(err, Error::AccessDenied { .. }), "{err:?}");
    assert_eq!(err.code().as_str(), "Forbidden.NoPermission");
    assert!(err.to_string().contains("wrong root key"), "{err}");
    // Read-only opening checks it too, and a passphrase is refused for a raw-key keystore.
    let err = FileStore::open_read_only(t.path(), &RootKey::generate()).unwrap_err();
    assert_eq!(err.code().as_str(), "Forbidden.NoPermission");
    let err = FileStore::open(t.path(), &RootKey::passphrase("pw")).unwrap_err();
    assert_eq!(err.code().as_str(), "Forbidden.NoPermission");
    assert!(err.to_string().contains("raw root key"), "{err}");
    // The failed opens left everything intact.
    assert!(open(t.path()).load_problems().is_empty());
}

#[test]
fn passphrase_keystore_stores_its_argon2_parameters() {
    let t = tmp();
    let params = Argon2Params::new(256, 1, 1).unwrap();
    let blob;
    {
        let store = FileStore::builder(t.path())
            .root_key(RootKey::passphrase("correct horse"))
            .argon2_params(params)
            .open()
            .unwrap();
        let kms = FileKms::open(store).unwrap();
        blob = key_with_blob(&kms, b"secret").1;
    }
    let header = std::fs::read_to_string(t.path().join("keystore.header")).unwrap_or_else(|_| {
        String::from_utf8_lossy(&std::fs::read(t.path().join("keystore.header")).unwrap()).into_owned()
    });
    assert!(
        header.contains("\"m_cost_kib\":256") && header.contains("argon2id"),
        "{header}"
    );
    assert!(!header.contains("correct horse"));
    // Later opens use the stored parameters (whatever the builder says).
    let store = FileStore::builder(t.path())
        .root_key(RootKey::passphrase("correct horse"))
        .open()
        .unwrap();
    let kms = FileKms::open(store).unwrap();
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"secret");
    drop(kms);
    let err = FileStore::open(t.path(), &RootKey::passphrase("wrong horse")).unwrap_err();
    assert_eq!(err.code().as_str(), "Forbidden.NoPermission");
    let err = FileStore::open(t.path(), &RootKey::generate()).unwrap_err();
    assert!(err.to_string().contains("passphrase"), "{err}");
}

#[test]
fn root_key_from_env_and_key_file() {
    let t = tmp();
    let key = RootKey::generate();
    let b64 = key.expose_base64().unwrap();
    // Key file: Base64 text, and the 32 raw bytes.
    let f = t.path().join("root.key");
    std::fs::write(&f, format!("{}\n", b64.as_str())).unwrap();
    let dir = t.path().join("ks");
    let blob = {
        let kms = FileKms::open_dir(&dir, &RootKey::from_key_file(&f).unwrap()).unwrap();
        key_with_blob(&kms, b"via file").1
    };
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str())
        .unwrap();
    std::fs::write(&f, &raw).unwrap();
    let kms = FileKms::open_dir(&dir, &RootKey::from_key_file(&f).unwrap()).unwrap();
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"via file");
    drop(kms);
    // The environment variable (set only in a child process, to keep this test free of global state).
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_child", "--nocapture", "--test-threads=1"])
        .env(ROOT_KEY_ENV, b64.as_str())
        .env("KMSKIT_TEST_ENV_DIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ENV-OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(
        RootKey::from_key_file(t.path().join("missing.key")),
        Err(Error::Io { .. })
    ));
    std::fs::write(&f, b"too short").unwrap();
    assert_eq!(
        RootKey::from_key_file(&f).unwrap_err().code().as_str(),
        "InvalidParameter"
    );
}

/// Child half of `root_key_from_env_and_key_file`: a no-op unless the parent set the variables.
#[test]
fn env_child() {
    let Some(dir) = std::env::var_os("KMSKIT_TEST_ENV_DIR") else {
        return;
    };
    let kms = FileKms::open_dir(Path::new(&dir), &RootKey::from_env().unwrap()).unwrap();
    assert!(kms.load_problems().is_empty());
    println!("ENV-OK");
}

#[test]
fn second_writer_is_locked_out_and_readers_are_welcome() {
    let t = tmp();
    let kms = open(t.path());
    let (_, blob) = key_with_blob(&kms, b"shared");
    let err = FileStore::open(t.path(), &root()).unwrap_err();
    match &err {
        Error::Locked { path, holder } => {
            assert_eq!(path, &t.path().display().to_string());
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
            assert!(holder.contains("host"), "{holder}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(err.code().as_str(), "Rejected.StoreLocked");
    // A reader opens beside the writer, decrypts, and refuses every mutation.
    let ro = FileKms::open_dir_read_only(t.path(), &root()).unwrap();
    assert!(ro.store().is_read_only());
    assert_eq!(decrypt(&ro, &blob).unwrap(), b"shared");
    kmskit_core::block_on(async {
        let e = ro.create_key(&caller(), CreateKey::new("x")).await.unwrap_err();
        assert!(matches!(e, Error::ReadOnly), "{e:?}");
        assert_eq!(e.code().as_str(), "Rejected.ReadOnly");
    });
    let store = ro.store();
    let id = MaterialId::new(kmskit_core::KeyId::generate(), KeyVersionId::generate());
    assert!(matches!(
        store.generate(&id, kmskit_core::KeySpec::Aes256),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(store.destroy(&id.key_id), Err(Error::ReadOnly)));
    assert!(matches!(store.compact(), Err(Error::ReadOnly)));
    // Once the writer is gone, the next one gets in.
    drop(kms);
    drop(open(t.path()));
}

#[test]
fn second_writer_in_another_process_gets_a_clear_error() {
    let t = tmp();
    let _kms = open(t.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env("KMSKIT_TEST_LOCK_DIR", t.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("LOCKED pid {} on host", std::process::id())),
        "{stdout}"
    );
}

/// Child half of `second_writer_in_another_process_gets_a_clear_error`.
#[test]
fn lock_child() {
    let Some(dir) = std::env::var_os("KMSKIT_TEST_LOCK_DIR") else {
        return;
    };
    match FileStore::open(Path::new(&dir), &root()) {
        Err(Error::Locked { holder, .. }) => println!("LOCKED {holder}"),
        other => println!("NOT LOCKED: {other:?}"),
    }
}

#[test]
fn missing_directory() {
    let t = tmp();
    let dir = t.path().join("nope");
    let err = FileStore::open_read_only(&dir, &root()).unwrap_err();
    match &err {
        Error::Io { context, source } => {
            assert!(context.contains("does not exist"), "{context}");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let err = FileStore::builder(&dir)
        .root_key(root())
        .create(false)
        .open()
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(!dir.exists());
    // An existing but empty directory is not a keystore for a reader either.
    std::fs::create_dir(&dir).unwrap();
    let err = FileStore::open_read_only(&dir, &root()).unwrap_err();
    assert!(err.to_string().contains("no keystore"), "{err}");
    // A file where the directory should be.
    let f = t.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    let err = FileStore::open(&f, &root()).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

/// Runs `mount` with `args`; `Err` with the reason when it cannot.
fn mount(args: &[&str]) -> Result<(), String> {
    match Command::new("mount").args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Unmounts on drop.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mounts_required() -> bool {
    std::env::var_os("CI").is_some()
}

#[test]
fn read_only_directory() {
    let t = tmp();
    let src = t.path().join("src");
    let blob = {
        let kms = open(&src);
        key_with_blob(&kms, b"on read-only media").1
    };
    let ro = t.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    // chmod does not stop root, so a read-only bind mount stands in for read-only media.
    if let Err(why) = mount(&["--bind", src.to_str().unwrap(), ro.to_str().unwrap()]) {
        assert!(
            !mounts_required(),
            "CI runs as root and must be able to mount: {why}"
        );
        println!(
            "SKIPPED read_only_directory: cannot bind-mount ({why}); open_read_only semantics are tested elsewhere"
        );
        return;
    }
    let _m = Mounted(ro.clone());
    if let Err(why) = mount(&["-o", "remount,ro,bind", ro.to_str().unwrap()]) {
        assert!(!mounts_required(), "cannot remount read-only: {why}");
        println!("SKIPPED read_only_directory: cannot remount read-only ({why})");
        return;
    }
    let err = FileStore::open(&ro, &root()).unwrap_err();
    match &err {
        Error::Io { context, source } => {
            assert!(context.contains("open_read_only"), "{context}");
            assert_eq!(source.kind(), std::io::ErrorKind::ReadOnlyFilesystem, "{source}");
        }
        other => panic!("{other:?}"),
    }
    let kms = FileKms::open_dir_read_only(&ro, &root()).unwrap();
    assert!(kms.load_problems().is_empty());
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"on read-only media");
}

#[test]
fn full_disk_loses_nothing_acknowledged() {
    let t = tmp();
    let mnt = t.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    if let Err(why) = mount(&["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt.to_str().unwrap()]) {
        assert!(
            !mounts_required(),
            "CI runs as root and must be able to mount a tmpfs: {why}"
        );
        println!("SKIPPED full_disk_loses_nothing_acknowledged: cannot mount a tmpfs ({why})");
        return;
    }
    let _m = Mounted(mnt.clone());
    let dir = mnt.join("ks");
    let mut acked = Vec::new();
    let full_err;
    {
        let kms = open(&dir);
        loop {
            let r = kmskit_core::block_on(async {
                let k = kms.create_key(&caller(), CreateKey::new("fill")).await?;
                let enc = kms
                    .encrypt(&caller(), &KeyRef::Id(k.key_id.clone()), b"payload", &ctx())
                    .await?;
                Ok::<_, Error>((k.key_id, enc.ciphertext_blob))
            });
            match r {
                Ok(x) => acked.push(x),
                Err(e) => {
                    full_err = e;
                    break;
                }
            }
            assert!(acked.len() < 10_000, "the disk never filled");
        }
        match &full_err {
            Error::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{full_err:?}")
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
        // Still serving everything acknowledged, and state changes fail cleanly.
        for (_, b) in &acked {
            assert_eq!(decrypt(&kms, b).unwrap(), b"payload");
        }
    }
    assert!(acked.len() > 5, "only {} keys fit", acked.len());
    let kms = open(&dir);
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    for (_, b) in &acked {
        assert_eq!(decrypt(&kms, b).unwrap(), b"payload");
    }
    kmskit_core::block_on(async {
        let keys = kms
            .list_keys(&caller(), kmskit_core::ListKeys::default())
            .await
            .unwrap();
        assert!(keys.total_count as usize >= acked.len());
    });
}

#[test]
fn a_damaged_record_is_reported_by_path_and_name_and_the_rest_loads() {
    let t = tmp();
    let mut keys = Vec::new();
    {
        let kms = open(t.path());
        for i in 0..5 {
            keys.push(key_with_blob(&kms, format!("pt{i}").as_bytes()));
        }
    }
    let seg = segment(t.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let victim = keys[2].0.to_string();
    let rec = records(&bytes)
        .into_iter()
        .find(|r| r.kind == KIND_KEY && r.name == victim)
        .unwrap();
    bytes[rec.body_start() + 20] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();

    let kms = open(t.path());
    let problems = kms.load_problems();
    assert!(!problems.is_empty());
    match &problems[0] {
        Error::Corrupted { path, record, reason } => {
            assert_eq!(path, &seg.display().to_string());
            assert_eq!(record, &victim);
            assert!(reason.contains("checksum mismatch"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(problems[0].code().as_str(), "InternalFailure.StoreCorrupted");
    for (i, (k, b)) in keys.iter().enumerate() {
        if i == 2 {
            assert_eq!(
                decrypt(&kms, b).unwrap_err().code().as_str(),
                "Forbidden.KeyNotFound"
            );
        } else {
            assert_eq!(decrypt(&kms, b).unwrap(), format!("pt{i}").as_bytes(), "key {k}");
        }
    }
    // The damaged record stays put (no automatic compaction) and new work goes on.
    let (_, b) = key_with_blob(&kms, b"after");
    assert_eq!(decrypt(&kms, &b).unwrap(), b"after");
}

#[test]
fn an_edited_record_with_a_fixed_checksum_fails_authentication() {
    let t = tmp();
    let (k, blob) = key_with_blob(&open(t.path()), b"x");
    let seg = segment(t.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let rec = records(&bytes)
        .into_iter()
        .find(|r| r.kind == KIND_KEY && r.name == k.as_str())
        .unwrap();
    let body = rec.body_start();
    bytes[body + 13] ^= 1;
    let crc = crc32c(&bytes[body..body + rec.body_len]);
    bytes[body + rec.body_len..body + rec.body_len + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let kms = open(t.path());
    let p = kms.load_problems();
    assert!(
        p.iter()
            .any(|e| matches!(e, Error::Corrupted { record, reason, .. }
            if record == k.as_str() && reason.contains("does not authenticate"))),
        "{p:?}"
    );
    assert!(decrypt(&kms, &blob).is_err());
}

#[test]
fn a_damaged_latest_revision_fails_closed_to_the_previous_one_disabled() {
    let t = tmp();
    let (k, blob);
    {
        let kms = open(t.path());
        (k, blob) = key_with_blob(&kms, b"x");
        kmskit_core::block_on(async {
            kms.update_key_description(&caller(), &KeyRef::Id(k.clone()), "v2")
                .await
                .unwrap();
        });
        // One more key after it, so the damaged record is not the torn tail.
        key_with_blob(&kms, b"y");
    }
    let seg = segment(t.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let latest = records(&bytes)
        .into_iter()
        .rfind(|r| r.kind == KIND_KEY && r.name == k.as_str())
        .unwrap();
    bytes[latest.body_start() + 3] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let kms = open(t.path());
    let p = kms.load_problems();
    assert!(
        p.iter().any(|e| e.to_string().contains("previous revision")
            && e.to_string().contains("Disabled until an administrator")),
        "{p:?}"
    );
    let m = kmskit_core::block_on(kms.describe_key(&caller(), &KeyRef::Id(k.clone()))).unwrap();
    assert_eq!(m.key_state, KeyState::Disabled);
    assert_eq!(m.description, "test key");
    // The administrator re-enables it; the new record supersedes the damaged one.
    kmskit_core::block_on(kms.enable_key(&caller(), &KeyRef::Id(k.clone()))).unwrap();
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"x");
}

#[test]
fn garbage_in_the_middle_is_skipped_and_reported() {
    let t = tmp();
    let mut keys = Vec::new();
    {
        let kms = open(t.path());
        for i in 0..4 {
            keys.push(key_with_blob(&kms, &[i]));
        }
    }
    let seg = segment(t.path());
    let bytes = std::fs::read(&seg).unwrap();
    let recs = records(&bytes);
    // Overwrite the header of key 1's record with junk that contains no record magic.
    let r = recs
        .iter()
        .find(|r| r.kind == KIND_KEY && r.name == keys[1].0.as_str())
        .unwrap();
    let mut bad = bytes.clone();
    for b in &mut bad[r.off..r.off + 10] {
        *b = 0xEE;
    }
    std::fs::write(&seg, &bad).unwrap();
    let kms = open(t.path());
    let p = kms.load_problems();
    assert!(
        p.iter()
            .any(|e| matches!(e, Error::Corrupted { record, reason, .. }
            if record.starts_with("bytes ") && reason.contains("unreadable bytes"))),
        "{p:?}"
    );
    for (i, (_, b)) in keys.iter().enumerate() {
        if i != 1 {
            assert_eq!(decrypt(&kms, b).unwrap(), [i as u8]);
        }
    }
}

#[test]
fn a_truncated_journal_keeps_everything_before_the_cut() {
    let t = tmp();
    let mut keys = Vec::new();
    {
        let kms = open(t.path());
        for i in 0..3 {
            keys.push(key_with_blob(&kms, &[i]));
        }
    }
    let seg = segment(t.path());
    let bytes = std::fs::read(&seg).unwrap();
    let last = records(&bytes).pop().unwrap();
    assert_eq!(last.name, keys[2].0.as_str());
    // Cut the last record in half: what an interrupted append leaves.
    std::fs::write(&seg, &bytes[..last.off + last.total / 2]).unwrap();
    {
        let ro = FileStore::open_read_only(t.path(), &root()).unwrap();
        let torn = ro.open_report().torn_tail.clone().unwrap();
        assert_eq!(torn.offset, last.off as u64);
        assert_eq!(torn.record.as_deref(), Some(keys[2].0.as_str()));
        // A reader does not repair.
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            (last.off + last.total / 2) as u64
        );
    }
    let kms = open(t.path());
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    assert!(kms.store().open_report().torn_tail.is_some());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), last.off as u64);
    assert_eq!(decrypt(&kms, &keys[0].1).unwrap(), [0]);
    assert_eq!(decrypt(&kms, &keys[1].1).unwrap(), [1]);
    // Key 2's record is gone, its material (fsynced by generate) is an orphan.
    assert!(decrypt(&kms, &keys[2].1).is_err());
    drop(kms);
    assert!(open(t.path()).store().open_report().torn_tail.is_none());
}

#[test]
fn corrupted_or_foreign_header_is_a_typed_error() {
    let t = tmp();
    drop(open(t.path()));
    let h = t.path().join("keystore.header");
    let good = std::fs::read(&h).unwrap();
    std::fs::write(&h, &good[..good.len() - 3]).unwrap();
    let err = FileStore::open(t.path(), &root()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { record, .. } if record == "header"),
        "{err:?}"
    );
    assert!(err.to_string().contains("keystore.header"), "{err}");
    std::fs::write(&h, b"{\"not\": \"a header\"}").unwrap();
    let err = FileStore::open(t.path(), &root()).unwrap_err();
    assert!(err.to_string().contains("not a kmskit keystore header"), "{err}");
    // Missing header next to a journal: refuse rather than start over.
    std::fs::remove_file(&h).unwrap();
    let err = FileStore::open(t.path(), &root()).unwrap_err();
    assert!(err.to_string().contains("refusing to create"), "{err}");
    std::fs::write(&h, &good).unwrap();
    assert!(open(t.path()).load_problems().is_empty());
}

#[test]
fn a_foreign_segment_is_reported_record_by_record() {
    let a = tmp();
    let b = tmp();
    drop(key_with_blob(&open(a.path()), b"a"));
    drop(key_with_blob(&open(b.path()), b"b"));
    // Copy B's journal into A (same root key bytes, different keystore salt).
    std::fs::copy(segment(b.path()), segment(a.path())).unwrap();
    let kms = open(a.path());
    let p = kms.load_problems();
    assert!(p.len() >= 3, "{p:?}");
    let auth = p
        .iter()
        .filter(|e| e.to_string().contains("does not authenticate"))
        .count();
    assert_eq!(auth, 3, "segment header, material and key record: {p:?}");
}

#[test]
fn destroy_overwrites_material_before_it_is_gone() {
    let t = tmp();
    let clock = clock();
    let kms = open_with_clock(t.path(), clock.clone());
    let (k, blob) = key_with_blob(&kms, b"doomed");
    let (k2, blob2) = key_with_blob(&kms, b"survivor");
    let seg = segment(t.path());
    let before = std::fs::read(&seg).unwrap();
    let mat = records(&before)
        .into_iter()
        .find(|r| r.kind == KIND_MATERIAL && r.name.starts_with(k.as_str()))
        .unwrap();
    let sealed = before[mat.body_start()..mat.body_start() + mat.body_len].to_vec();
    assert!(sealed.iter().any(|b| *b != 0));
    kmskit_core::block_on(kms.schedule_key_deletion(&caller(), &KeyRef::Id(k.clone()), 7)).unwrap();
    clock.advance(8 * 86_400);
    assert_eq!(kms.purge_due().unwrap(), vec![k.clone()]);
    let after = std::fs::read(&seg).unwrap();
    // The same record, in place, now zeros; the sealed bytes appear nowhere in the file.
    assert!(
        after[mat.body_start()..mat.body_start() + mat.body_len + 4]
            .iter()
            .all(|b| *b == 0)
    );
    assert!(!after.windows(sealed.len()).any(|w| w == sealed));
    assert_eq!(
        decrypt(&kms, &blob).unwrap_err().code().as_str(),
        "Forbidden.KeyNotFound"
    );
    drop(kms);
    let kms = open_with_clock(t.path(), clock);
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    assert_eq!(decrypt(&kms, &blob2).unwrap(), b"survivor");
    assert!(decrypt(&kms, &blob).is_err());
    assert!(
        kms.store()
            .open(
                &MaterialId::new(k.clone(), mat.name.split('/').nth(1).unwrap().parse().unwrap()),
                kmskit_core::crypto::Algorithm::Aes256Gcm,
                &[0; 12],
                b"",
                &mut vec![0; 16]
            )
            .is_err()
    );
    let _ = k2;
}

#[test]
fn compaction_reclaims_space_and_keeps_the_state() {
    let t = tmp();
    let store = FileStore::builder(t.path())
        .root_key(root())
        .compaction_min_bytes(16 * 1024)
        .open()
        .unwrap();
    let kms = FileKms::open(store).unwrap();
    let mut keys = Vec::new();
    for i in 0..20u8 {
        keys.push(key_with_blob(&kms, &[i]));
    }
    let alias = AliasName::new("alias/a").unwrap();
    kmskit_core::block_on(async {
        kms.create_alias(&caller(), &alias, &KeyRef::Id(keys[0].0.clone()))
            .await
            .unwrap();
        for round in 0..40 {
            for (k, _) in &keys[..5] {
                kms.update_key_description(
                    &caller(),
                    &KeyRef::Id(k.clone()),
                    &format!("round {round} {}", "x".repeat(200)),
                )
                .await
                .unwrap();
            }
        }
    });
    let stats = kms.store().stats();
    assert!(stats.generation > 1, "{stats:?}");
    assert!(stats.total_bytes < 3 * stats.live_bytes + 16 * 1024, "{stats:?}");
    let names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("journal-"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    kms.store().compact().unwrap();
    let s2 = kms.store().stats();
    assert_eq!(s2.total_bytes, s2.live_bytes, "{s2:?}");
    drop(kms);
    let kms = open(t.path());
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    for (i, (k, b)) in keys.iter().enumerate() {
        assert_eq!(decrypt(&kms, b).unwrap(), [i as u8]);
        let m = kmskit_core::block_on(kms.describe_key(&caller(), &KeyRef::Id(k.clone()))).unwrap();
        if i < 5 {
            assert!(m.description.starts_with("round 39 "));
        }
    }
    let m = kmskit_core::block_on(kms.describe_key(&caller(), &KeyRef::Alias(alias))).unwrap();
    assert_eq!(m.key_id, keys[0].0);
}

#[test]
fn leftovers_of_an_interrupted_compaction_are_removed() {
    let t = tmp();
    let (_, blob) = key_with_blob(&open(t.path()), b"kept");
    let seg = segment(t.path());
    // A finished compaction whose old segment was not yet removed, and a half-written next one.
    let newer = t.path().join("journal-0000000002.log");
    std::fs::copy(&seg, t.path().join("journal-0000000003.log.tmp")).unwrap();
    std::fs::rename(&seg, &newer).unwrap();
    std::fs::write(&seg, b"stale copy").unwrap();
    let kms = open(t.path());
    let removed = &kms.store().open_report().removed_files;
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(!seg.exists());
    assert!(!t.path().join("journal-0000000003.log.tmp").exists());
    // Generation 2 holds a generation-1 segment header (renamed by hand): reported, and the key loads.
    assert!(
        kms.load_problems()
            .iter()
            .any(|e| e.to_string().contains("says generation 1")),
        "{:?}",
        kms.load_problems()
    );
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"kept");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let t = tmp();
    drop(key_with_blob(&open(t.path()), b"x"));
    let seg = segment(t.path());
    let good = std::fs::read(&seg).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut bytes = good.clone();
        match round % 4 {
            0 => {
                let i = next() as usize % bytes.len();
                bytes[i] ^= 1 << (next() % 8);
            }
            1 => bytes.truncate(next() as usize % bytes.len()),
            2 => {
                let i = next() as usize % bytes.len();
                let junk: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
                bytes.splice(i..i, junk);
            }
            _ => bytes = (0..next() % 2048).map(|_| next() as u8).collect(),
        }
        std::fs::write(&seg, &bytes).unwrap();
        let store = FileStore::open_read_only(t.path(), &root()).unwrap();
        let _ = store.load().unwrap();
    }
}

/// A crash can stop an append after any byte: cut the journal at every offset inside the last
/// operation's writes and check each reopening.
#[test]
fn a_crash_after_any_byte_of_the_last_append_recovers_cleanly() {
    let t = tmp();
    let src = t.path().join("src");
    let (blobs, before, after, last);
    {
        let kms = open(&src);
        let mut b = vec![key_with_blob(&kms, b"k0"), key_with_blob(&kms, b"k1")];
        before = std::fs::metadata(segment(&src)).unwrap().len() as usize;
        b.push(key_with_blob(&kms, b"k2"));
        last = b[2].0.clone();
        after = std::fs::metadata(segment(&src)).unwrap().len() as usize;
        blobs = b;
    }
    let full = std::fs::read(segment(&src)).unwrap();
    let header = std::fs::read(src.join("keystore.header")).unwrap();
    let seg_name = segment(&src).file_name().unwrap().to_owned();
    let complete_at = records(&full).last().map(|r| r.off + r.total).unwrap();
    assert_eq!(complete_at, after);
    for cut in before..=after {
        let d = t.path().join(format!("cut{cut}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("keystore.header"), &header).unwrap();
        std::fs::write(d.join(&seg_name), &full[..cut]).unwrap();
        let kms = open(&d);
        assert!(
            kms.load_problems().is_empty(),
            "cut at {cut}: {:?}",
            kms.load_problems()
        );
        assert_eq!(decrypt(&kms, &blobs[0].1).unwrap(), b"k0", "cut at {cut}");
        assert_eq!(decrypt(&kms, &blobs[1].1).unwrap(), b"k1", "cut at {cut}");
        let third = kmskit_core::block_on(kms.describe_key(&caller(), &KeyRef::Id(last.clone())));
        if cut == after {
            assert_eq!(decrypt(&kms, &blobs[2].1).unwrap(), b"k2");
        } else {
            assert!(third.is_err(), "cut at {cut}: a partly written key appeared");
        }
        // Writable after recovery, and the next open is clean (every few cuts, to keep the test quick).
        if cut % 8 == 0 || cut == after {
            key_with_blob(&kms, b"more");
            drop(kms);
            let again = open(&d);
            assert!(again.load_problems().is_empty() && again.store().open_report().torn_tail.is_none());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let t = tmp();
    let builder = FileStore::builder(t.path()).root_key(RootKey::from_bytes(&[0x5a; 32]).unwrap());
    let d = format!("{builder:?}");
    assert!(d.contains("REDACTED") && !d.contains("90, 90"), "{d}");
    let kms = open(t.path());
    let (k, _) = key_with_blob(&kms, b"x");
    let d = format!("{kms:?} {:?}", kms.store());
    assert!(!d.contains("90, 90") && d.contains("FileStore"), "{d}");
    let p = format!("{:?}", RootKey::passphrase("correct horse battery"));
    assert!(!p.contains("horse"), "{p}");
    let _ = k;
}

#[test]
fn reopening_while_another_thread_spawns_processes_is_never_locked_out() {
    // A forked child shares our open file descriptions (and so our flock) until it execs; a keystore
    // closed and reopened meanwhile must not report its own released lock as held by someone else.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let t = tmp();
    let d = t.path().join("ks");
    drop(open(&d));
    let stop = Arc::new(AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = Command::new("true").status();
            }
        })
    };
    for i in 0..200 {
        let kms = FileKms::open_dir(&d, &root()).unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        drop(kms);
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().unwrap();
}
