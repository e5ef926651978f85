//! A lost connection: the PKCS#11 library is finalised behind the store's back (every session and the
//! login are gone, every handle is dead). The next call fails with a retryable
//! `ServiceUnavailableTemporary`; the one after reconnects (initialises the library again, finds the
//! token by label, opens sessions, logs in) and works, and old ciphertexts still decrypt.
//!
//! Its own test binary: finalising the library would pull it from under any other test in the process.

mod common;

use common::{caller, ctx};
use kmskit_core::{CreateKey, ErrorCode, KeyProvider, KeyRef, block_on};
use kmskit_pkcs11::{Pkcs11Kms, Pkcs11KmsExt, context};

#[test]
fn a_lost_library_is_reconnected_and_reported_as_retryable() {
    let Some(t) = common::fresh_token() else { return };
    let kms = Pkcs11Kms::open_pkcs11(&t.config().with_pool_size(3)).unwrap();
    let key = block_on(kms.create_key(&caller(), CreateKey::new("survives")))
        .unwrap()
        .key_id;
    let key = KeyRef::Id(key);
    let blob = block_on(kms.encrypt(&caller(), &key, b"before the loss", &ctx()))
        .unwrap()
        .ciphertext_blob;

    for round in 0..2 {
        context(&t.module).unwrap().finalize().unwrap();

        let err = block_on(kms.encrypt(&caller(), &key, b"during the loss", &ctx())).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::ServiceUnavailableTemporary,
            "round {round}: {err}"
        );
        assert!(err.is_retryable(), "round {round}: {err}");

        let enc = block_on(kms.encrypt(&caller(), &key, b"after the loss", &ctx()))
            .unwrap_or_else(|e| panic!("round {round}: the retry reconnects: {e}"));
        let dec = block_on(kms.decrypt(&caller(), &enc.ciphertext_blob, &ctx())).unwrap();
        assert_eq!(&dec.plaintext[..], b"after the loss");
        let dec = block_on(kms.decrypt(&caller(), &blob, &ctx())).unwrap();
        assert_eq!(&dec.plaintext[..], b"before the loss");
        // Mutations work too (record objects are written through the new sessions).
        block_on(kms.update_key_description(&caller(), &key, &format!("round {round}"))).unwrap();
    }
    let debug = format!("{:?}", kms.store());
    assert!(debug.contains("reconnects: 2"), "{debug}");

    // And a reopened engine sees everything written across the reconnects.
    drop(kms);
    let kms = Pkcs11Kms::open_pkcs11(&t.config()).unwrap();
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    let m = block_on(kms.describe_key(&caller(), &key)).unwrap();
    assert_eq!(m.description, "round 1");
}
