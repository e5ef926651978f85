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
    for version in [0u16, 2] {
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
            .any(|p| p.contains("format version 2 is newer") && p.contains("upgrade kmskit")),
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
