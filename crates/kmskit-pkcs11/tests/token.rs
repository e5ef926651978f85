//! `Pkcs11Kms` against a real SoftHSM2 token: material that cannot leave it, many concurrent callers,
//! a wrong PIN, a key destroyed behind our back, new versions as new token objects, purge.
//!
//! Each test initialises a token of its own. Without `KMSKIT_PKCS11_MODULE` they report a skip, or fail
//! when `CI` is set.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Token, caller, ctx};
use kmskit_core::store::{KeyStore, MaterialId, VersionRecord};
use kmskit_core::{
    CiphertextBlob, CreateKey, ErrorCode, KeyId, KeyProvider, KeyRef, KeyVersionId, KmsConfig, ManualClock,
    PageRequest, Timestamp, block_on,
};
use kmskit_pkcs11::cryptoki::error::{Error as CkError, RvError};
use kmskit_pkcs11::cryptoki::mechanism::Mechanism;
use kmskit_pkcs11::cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use kmskit_pkcs11::cryptoki::session::Session;
use kmskit_pkcs11::{Pkcs11Kms, Pkcs11KmsExt, Pkcs11Store, context, find_slot, material_label};

fn open(t: &Token) -> Pkcs11Kms {
    Pkcs11Kms::open_pkcs11(&t.config()).expect("the token opens")
}

/// A session of our own on the token (logged in already: login is per application and token).
fn session(t: &Token) -> Session {
    let ctx = context(&t.module).unwrap();
    let slot = find_slot(&ctx, &t.label).unwrap();
    ctx.open_rw_session(slot).unwrap()
}

/// Every secret-key object of `key` (all versions), found by `CKA_ID`.
fn material_objects(s: &Session, key: &KeyId) -> Vec<ObjectHandle> {
    s.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Id(key.as_str().as_bytes().to_vec()),
    ])
    .unwrap()
}

fn material_object(s: &Session, id: &MaterialId) -> ObjectHandle {
    let found = s
        .find_objects(&[Attribute::Label(material_label(id).into_bytes())])
        .unwrap();
    assert_eq!(found.len(), 1, "one object for {id}");
    found[0]
}

fn create(kms: &Pkcs11Kms, what: &str) -> (KeyId, KeyVersionId) {
    let m = block_on(kms.create_key(&caller(), CreateKey::new(what))).unwrap();
    assert_eq!(m.protection_level.as_str(), "HSM");
    (m.key_id, m.primary_key_version.unwrap())
}

fn encrypt(kms: &Pkcs11Kms, key: &KeyId, pt: &[u8]) -> CiphertextBlob {
    block_on(kms.encrypt(&caller(), &KeyRef::Id(key.clone()), pt, &ctx()))
        .unwrap()
        .ciphertext_blob
}

fn decrypt(kms: &Pkcs11Kms, blob: &CiphertextBlob) -> kmskit_core::Result<Vec<u8>> {
    block_on(kms.decrypt(&caller(), blob, &ctx())).map(|d| d.plaintext.to_vec())
}

#[test]
fn key_material_cannot_be_read_or_extracted() {
    let Some(t) = common::fresh_token() else { return };
    let kms = open(&t);
    let (key, version) = create(&kms, "never leaves");
    let s = session(&t);
    let obj = material_object(&s, &MaterialId::new(key.clone(), version));

    // CKA_VALUE: the token says it is sensitive and returns nothing.
    let info = s.get_attribute_info(obj, &[AttributeType::Value]).unwrap();
    assert!(matches!(info[..], [AttributeInfo::Sensitive]), "{info:?}");
    let attrs = s.get_attributes(obj, &[AttributeType::Value]).unwrap();
    assert!(
        !attrs.iter().any(|a| matches!(a, Attribute::Value(_))),
        "CKA_VALUE was returned"
    );

    // The protecting attributes, as generated in the token.
    let attrs = s
        .get_attributes(
            obj,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::Wrap,
                AttributeType::KeyType,
                AttributeType::ValueLen,
            ],
        )
        .unwrap();
    for a in &attrs {
        match a {
            Attribute::Token(v)
            | Attribute::Private(v)
            | Attribute::Sensitive(v)
            | Attribute::AlwaysSensitive(v)
            | Attribute::NeverExtractable(v)
            | Attribute::Local(v) => assert!(*v, "{:?}", a.attribute_type()),
            Attribute::Extractable(v) | Attribute::Wrap(v) => assert!(!*v, "{:?}", a.attribute_type()),
            Attribute::KeyType(k) => assert_eq!(*k, KeyType::AES),
            Attribute::ValueLen(n) => assert_eq!(u64::from(*n), 32),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(attrs.len(), 10);

    // Wrapping it out under a key we control is refused.
    let wrapper = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32u64.into()),
                Attribute::Token(false),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    for mech in [Mechanism::AesKeyWrap, Mechanism::AesKeyWrapPad] {
        match s.wrap_key(&mech, wrapper, obj) {
            Err(CkError::Pkcs11(RvError::KeyUnextractable, _)) => {}
            other => panic!("C_WrapKey of kmskit material: expected CKR_KEY_UNEXTRACTABLE, got {other:?}"),
        }
    }
    // And the attributes cannot be relaxed.
    for relax in [Attribute::Extractable(true), Attribute::Sensitive(false)] {
        let r = s.update_attributes(obj, std::slice::from_ref(&relax));
        assert!(r.is_err(), "setting {relax:?} was accepted");
    }
    assert!(s.get_attributes(obj, &[AttributeType::Value]).unwrap().is_empty());
    // The key still works.
    let blob = encrypt(&kms, &key, b"still here");
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"still here");
}

#[test]
fn many_concurrent_tasks_share_a_small_pool() {
    let Some(t) = common::fresh_token() else { return };
    let kms = Arc::new(Pkcs11Kms::open_pkcs11(&t.config().with_pool_size(2)).unwrap());
    let keys: Vec<KeyId> = (0..3).map(|i| create(&kms, &format!("k{i}")).0).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|task| {
                let kms = Arc::clone(&kms);
                let keys = keys.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        let key = KeyRef::Id(keys[(task + i) % keys.len()].clone());
                        let pt = format!("task {task} message {i}").into_bytes();
                        let enc = kms.encrypt(&caller(), &key, &pt, &ctx()).await.unwrap();
                        let dec = kms
                            .decrypt(&caller(), &enc.ciphertext_blob, &ctx())
                            .await
                            .unwrap();
                        assert_eq!(&dec.plaintext[..], &pt[..]);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    // Plain threads too, more of them than sessions.
    std::thread::scope(|scope| {
        for n in 0..8 {
            let kms = &kms;
            let key = keys[n % keys.len()].clone();
            scope.spawn(move || {
                for i in 0..10 {
                    let pt = format!("thread {n} message {i}").into_bytes();
                    let blob = encrypt(kms, &key, &pt);
                    assert_eq!(decrypt(kms, &blob).unwrap(), pt);
                }
            });
        }
    });
    let debug = format!("{:?}", kms.store());
    assert!(debug.contains("size: 2"), "{debug}");
}

#[test]
fn a_wrong_pin_is_a_clear_access_error() {
    let Some(t) = common::fresh_token() else { return };
    let err = Pkcs11Kms::open_pkcs11(&t.config_with_pin("not-the-pin")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoPermission, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("PIN") && msg.contains(&t.label), "{msg}");
    assert!(!msg.contains("not-the-pin"), "{msg}");

    // The right PIN works; while this process is logged in, a wrong PIN is still refused (PKCS#11 would
    // answer CKR_USER_ALREADY_LOGGED_IN without checking it).
    let kms = open(&t);
    let err = Pkcs11Store::open(&t.config_with_pin("still-not-the-pin")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoPermission, "{err}");
    let second = Pkcs11Store::open(&t.config()).expect("the right PIN, a second store");
    drop(second);
    let (key, _) = create(&kms, "after the refusals");
    let blob = encrypt(&kms, &key, b"ok");
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"ok");

    // An unknown token label is its own error, naming the label.
    let err = Pkcs11Store::open(&kmskit_pkcs11::Pkcs11Config::new(
        &t.module,
        "no-such-token",
        kmskit_pkcs11::Pin::new(common::USER_PIN),
    ))
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServiceUnavailableTemporary, "{err}");
    assert!(err.to_string().contains("no-such-token"), "{err}");
}

#[test]
fn a_key_destroyed_behind_our_back_is_reported_by_id() {
    let Some(t) = common::fresh_token() else { return };
    let kms = open(&t);
    let (key, version) = create(&kms, "doomed");
    let (other, _) = create(&kms, "bystander");
    let blob = encrypt(&kms, &key, b"before"); // caches the handle
    let other_blob = encrypt(&kms, &other, b"unaffected");

    let s = session(&t);
    s.destroy_object(material_object(&s, &MaterialId::new(key.clone(), version)))
        .unwrap();

    for (what, r) in [
        (
            "Encrypt",
            block_on(kms.encrypt(&caller(), &KeyRef::Id(key.clone()), b"after", &ctx())).map(drop),
        ),
        ("Decrypt", decrypt(&kms, &blob).map(drop)),
    ] {
        let err = r.unwrap_err();
        assert_eq!(err.code(), ErrorCode::KeyNotFound, "{what}: {err}");
        assert!(err.to_string().contains(key.as_str()), "{what}: {err}");
    }
    assert_eq!(decrypt(&kms, &other_blob).unwrap(), b"unaffected");

    // A reopened engine reports it when loading, by key id; everything else loads.
    drop(kms);
    let kms = open(&t);
    let problems = kms.load_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].code(), ErrorCode::StoreCorrupted);
    assert!(problems[0].to_string().contains(key.as_str()), "{}", problems[0]);
    assert_eq!(decrypt(&kms, &other_blob).unwrap(), b"unaffected");
    let err = decrypt(&kms, &blob).unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyNotFound, "{err}");
}

#[test]
fn bad_tags_and_aad_are_the_opaque_decryption_failure() {
    let Some(t) = common::fresh_token() else { return };
    let kms = open(&t);
    let (key, _) = create(&kms, "tags");
    let blob = encrypt(&kms, &key, b"authentic");
    let wrong_ctx = kmskit_core::EncryptionContext::from_pairs([("purpose", "other")]).unwrap();
    let err = block_on(kms.decrypt(&caller(), &blob, &wrong_ctx)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidParameter, "{err}");
    assert!(matches!(err, kmskit_core::Error::DecryptFailed), "{err:?}");
    let mut bytes = blob.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    let err = decrypt(&kms, &CiphertextBlob::from_bytes(bytes)).unwrap_err();
    assert!(matches!(err, kmskit_core::Error::DecryptFailed), "{err:?}");
    // The session that saw the failure is fine for the next call.
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"authentic");
}

/// The engine on main has no rotation entry point yet (issue 5 adds one), so this drives rotation the
/// way it will: the store generates the new version's material, the record names it as primary.
#[test]
fn a_new_version_is_a_new_token_object_and_old_versions_still_decrypt() {
    let Some(t) = common::fresh_token() else { return };
    let kms = open(&t);
    let (key, v1) = create(&kms, "rotating");
    let old_blob = encrypt(&kms, &key, b"under version one");

    let v2 = KeyVersionId::generate();
    let store = kms.store();
    store
        .generate(
            &MaterialId::new(key.clone(), v2.clone()),
            kmskit_core::KeySpec::Aes256,
        )
        .unwrap();
    let s = session(&t);
    let objects = material_objects(&s, &key);
    assert_eq!(objects.len(), 2, "one token object per version");
    let h1 = material_object(&s, &MaterialId::new(key.clone(), v1.clone()));
    let h2 = material_object(&s, &MaterialId::new(key.clone(), v2.clone()));
    assert_ne!(h1, h2);

    let mut rec = store
        .load()
        .unwrap()
        .keys
        .into_iter()
        .find(|r| r.key_id == key)
        .unwrap();
    rec.versions.push(VersionRecord::new(
        v2.clone(),
        Timestamp::from_unix(1_800_000_000),
    ));
    rec.primary_version = Some(v2.clone());
    rec.revision += 1;
    store.save_key(&rec).unwrap();
    drop(kms);

    let kms = open(&t);
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    let enc =
        block_on(kms.encrypt(&caller(), &KeyRef::Id(key.clone()), b"under version two", &ctx())).unwrap();
    assert_eq!(enc.key_version_id, v2);
    assert_eq!(decrypt(&kms, &enc.ciphertext_blob).unwrap(), b"under version two");
    let dec = block_on(kms.decrypt(&caller(), &old_blob, &ctx())).unwrap();
    assert_eq!(dec.key_version_id, v1);
    assert_eq!(&dec.plaintext[..], b"under version one");
    let versions =
        block_on(kms.list_key_versions(&caller(), &KeyRef::Id(key.clone()), PageRequest::default())).unwrap();
    assert_eq!(versions.items.len(), 2);
}

#[test]
fn purge_destroys_the_token_objects() {
    let Some(t) = common::fresh_token() else { return };
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix(1_700_000_000)));
    let kms = Pkcs11Kms::open_pkcs11_with(&t.config(), KmsConfig::new().clock(clock.clone())).unwrap();
    let (key, _) = create(&kms, "to be purged");
    let (kept, _) = create(&kms, "kept");
    let blob = encrypt(&kms, &key, b"soon unreadable");
    let kept_blob = encrypt(&kms, &kept, b"kept");
    let s = session(&t);
    assert_eq!(material_objects(&s, &key).len(), 1);

    block_on(kms.schedule_key_deletion(&caller(), &KeyRef::Id(key.clone()), 7)).unwrap();
    assert_eq!(kms.purge_due().unwrap(), Vec::<KeyId>::new());
    assert_eq!(material_objects(&s, &key).len(), 1, "kept during the window");

    clock.advance(8 * 24 * 3600);
    assert_eq!(kms.purge_due().unwrap(), vec![key.clone()]);
    assert!(material_objects(&s, &key).is_empty(), "C_DestroyObject on purge");
    assert_eq!(material_objects(&s, &kept).len(), 1);
    let err = decrypt(&kms, &blob).unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyNotFound);

    // The tombstone survives a reopen; nothing is reported missing for it.
    drop(kms);
    let kms = Pkcs11Kms::open_pkcs11_with(&t.config(), KmsConfig::new().clock(clock)).unwrap();
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    let err = block_on(kms.describe_key(&caller(), &KeyRef::Id(key))).unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyNotFound);
    assert_eq!(decrypt(&kms, &kept_blob).unwrap(), b"kept");
}

#[test]
fn records_are_private_token_data_objects_and_debug_shows_no_pin() {
    let Some(t) = common::fresh_token() else { return };
    let kms = open(&t);
    let (key, _) = create(&kms, "record");
    let alias = kmskit_core::AliasName::new("alias/pkcs11-record").unwrap();
    block_on(kms.create_alias(&caller(), &alias, &KeyRef::Id(key.clone()))).unwrap();
    let s = session(&t);
    for label in [format!("kmskit/key/{key}"), format!("kmskit/alias/{alias}")] {
        let found = s
            .find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Application(b"kmskit".to_vec()),
                Attribute::Label(label.clone().into_bytes()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{label}");
        let attrs = s
            .get_attributes(found[0], &[AttributeType::Private, AttributeType::Token])
            .unwrap();
        assert!(
            attrs
                .iter()
                .all(|a| matches!(a, Attribute::Private(true) | Attribute::Token(true))),
            "{label}: {attrs:?}"
        );
    }
    // Two saves leave one object per record.
    block_on(kms.update_key_description(&caller(), &KeyRef::Id(key.clone()), "changed")).unwrap();
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(format!("kmskit/key/{key}").into_bytes()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    let debug = format!("{kms:?} {:?}", t.config());
    assert!(!debug.contains(common::USER_PIN), "{debug}");
    assert!(debug.contains(&t.label), "{debug}");
}

#[test]
fn a_login_lost_behind_our_back_is_retryable_and_the_next_call_logs_in_again() {
    let Some(t) = common::fresh_token() else { return };
    let kms = open(&t);
    let (key, _) = create(&kms, "logged out");
    let blob = encrypt(&kms, &key, b"before the logout");

    // C_Logout on any session logs the whole application out of the token.
    session(&t).logout().unwrap();

    let err = decrypt(&kms, &blob).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServiceUnavailableTemporary, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("logged this process out"), "{err}");

    assert_eq!(decrypt(&kms, &blob).unwrap(), b"before the logout");
    let blob = encrypt(&kms, &key, b"after");
    assert_eq!(decrypt(&kms, &blob).unwrap(), b"after");
}
