//! Tests that need the crate's internals: records of other format versions.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use kmskit_core::store::{KeyStore, MaterialId};
use kmskit_core::{Error, KeyId, KeySpec, KeyVersionId};

use crate::format::{self, Kind};
use crate::{FileStore, RootKey};

fn root() -> RootKey {
    RootKey::from_bytes(&[0x11; 32]).unwrap()
}

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(crate::journal::segment_name(1))
}

#[test]
fn records_of_older_and_newer_format_versions_are_refused_clearly() {
    let t = tempfile::tempdir().unwrap();
    let store = FileStore::open(t.path(), &root()).unwrap();
    let key = KeyId::generate();
    let json = br#"{"anything":"at all"}"#;
    let mut bytes = Vec::new();
    for version in [0u16, 3] {
        format::encode_sealed_version(
            &mut bytes,
            version,
            Kind::Key,
            key.as_str(),
            json,
            store.crypt.key_for(Kind::Key),
        )
        .unwrap();
    }
    drop(store);
    std::fs::OpenOptions::new()
        .append(true)
        .open(segment(t.path()))
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let store = FileStore::open(t.path(), &root()).unwrap();
    // A good record after them.
    let id = MaterialId::new(KeyId::generate(), KeyVersionId::generate());
    store.generate(&id, KeySpec::Aes256).unwrap();
    let problems = store.load().unwrap().problems;
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|p| p.contains("format version 0 predates")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.contains("format version 3 is newer") && p.contains("upgrade kmskit")),
        "{text:?}"
    );
    assert!(problems.iter().all(|e| matches!(e, Error::Corrupted { .. })));
}

#[test]
fn a_header_of_a_newer_format_is_unsupported() {
    let t = tempfile::tempdir().unwrap();
    drop(FileStore::open(t.path(), &root()).unwrap());
    let path = t.path().join(crate::header::HEADER_FILE);
    let good = std::fs::read(&path).unwrap();
    let format::Header::Ok(info) = format::parse_header(&good) else {
        panic!()
    };
    let body = &good[info.body_start()..info.body_start() + info.body_len];
    let json = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("\"format\":1", "\"format\":2");
    let mut newer = Vec::new();
    format::encode_plain_version(&mut newer, 2, Kind::Header, "header", json.as_bytes());
    std::fs::write(&path, &newer).unwrap();
    let err = FileStore::open(t.path(), &root()).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("newer"), "{err}");
    let mut older = Vec::new();
    format::encode_plain_version(&mut older, 0, Kind::Header, "header", body);
    std::fs::write(&path, &older).unwrap();
    let err = FileStore::open_read_only(t.path(), &root()).unwrap_err();
    assert!(err.to_string().contains("predates"), "{err}");
    std::fs::write(&path, &good).unwrap();
    assert!(FileStore::open(t.path(), &root()).is_ok());
}

#[test]
fn material_sealed_for_one_version_does_not_open_as_another() {
    let t = tempfile::tempdir().unwrap();
    let store = FileStore::open(t.path(), &root()).unwrap();
    let a = MaterialId::new(KeyId::generate(), KeyVersionId::generate());
    let mut rec = Vec::new();
    format::encode_sealed(
        &mut rec,
        Kind::Material,
        &crate::journal::material_name(&a),
        &[7; 32],
        store.crypt.key_for(Kind::Material),
    )
    .unwrap();
    let format::Header::Ok(info) = format::parse_header(&rec) else {
        panic!()
    };
    let body = &rec[info.body_start()..info.body_start() + info.body_len];
    let aad = &rec[..info.aad_len()];
    assert!(format::open_sealed(body, aad, store.crypt.key_for(Kind::Material)).is_some());
    // Same body under another key or version name, or another kind: refused.
    let b = MaterialId::new(a.key_id.clone(), KeyVersionId::generate());
    let mut other = Vec::new();
    format::encode_plain(
        &mut other,
        Kind::Material,
        &crate::journal::material_name(&b),
        b"",
    );
    let format::Header::Ok(oi) = format::parse_header(&other) else {
        panic!()
    };
    assert!(format::open_sealed(body, &other[..oi.aad_len()], store.crypt.key_for(Kind::Material)).is_none());
    assert!(format::open_sealed(body, aad, store.crypt.key_for(Kind::Key)).is_none());
}

/// A key record with a version floor is written in the key-floor format (2), one without in format 1,
/// and both load.
#[test]
fn a_key_record_with_a_version_floor_is_written_as_format_2() {
    use kmskit_core::store::{KeyRecord, VersionRecord};
    use kmskit_core::{KeyUsage, Timestamp};
    let t = tempfile::tempdir().unwrap();
    let store = FileStore::open(t.path(), &root()).unwrap();
    let now = Timestamp::from_unix(1_700_000_000);
    let (plain, floored) = (KeyId::generate(), KeyId::generate());
    for (id, floor) in [(&plain, false), (&floored, true)] {
        let mut rec = KeyRecord::new(id.clone(), KeySpec::Aes256, KeyUsage::EncryptDecrypt, now);
        let v = KeyVersionId::generate();
        store
            .generate(&MaterialId::new(id.clone(), v.clone()), KeySpec::Aes256)
            .unwrap();
        rec.versions.push(VersionRecord::new(v.clone(), now));
        if floor {
            rec.min_decryption_version = Some(v);
        }
        store.save_key(&rec).unwrap();
    }
    let bytes = std::fs::read(segment(t.path())).unwrap();
    // The key record's header: magic, version, kind 4 (key), then the name, exactly the key id.
    let version_of = |id: &KeyId| {
        let name = id.as_str().as_bytes();
        (format::FIXED_LEN..bytes.len() - name.len())
            .filter(|&p| &bytes[p..p + name.len()] == name)
            .map(|p| p - format::FIXED_LEN)
            .find(|&h| {
                &bytes[h..h + 4] == b"KMSR"
                    && bytes[h + 6] == Kind::Key as u8
                    && usize::from(u16::from_le_bytes([bytes[h + 8], bytes[h + 9]])) == name.len()
            })
            .map(|h| u16::from_le_bytes([bytes[h + 4], bytes[h + 5]]))
            .unwrap()
    };
    assert_eq!(version_of(&plain), format::FORMAT_VERSION);
    assert_eq!(version_of(&floored), format::KEY_FLOOR_FORMAT_VERSION);
    drop(store);
    let store = FileStore::open(t.path(), &root()).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let got = loaded.keys.iter().find(|k| k.key_id == floored).unwrap();
    assert!(got.min_decryption_version.is_some());
}
