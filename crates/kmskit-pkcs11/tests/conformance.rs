//! The provider conformance suite (`kmskit_core::testkit`) on `Pkcs11Kms` over SoftHSM2: every case on a
//! fresh token of its own, and every case again on a token written by one engine, closed, and reopened
//! by another (whose first key is then pending deletion), so records that came from token data objects
//! are covered too.
//!
//! The suite is compiled in when `KMSKIT_PKCS11_MODULE` is set at build time (scripts/test.sh sets it);
//! otherwise one test reports the skip, or fails when `CI` is set.

mod common;

#[cfg(kmskit_pkcs11_module)]
mod suite {
    use std::sync::Arc;

    use kmskit_core::testkit::{Capabilities, Fixture};
    use kmskit_core::{CreateKey, KeyProvider, KeyRef, block_on};
    use kmskit_pkcs11::{Pkcs11Kms, Pkcs11KmsExt};

    use super::common;

    /// What a PKCS#11 token (SoftHSM2) holds: AES, EC P-256, secp256k1 and RSA; no SM4 or SM2DSA/SM2PKE.
    fn capabilities() -> Capabilities {
        use kmskit_core::key::KeySpec;
        Capabilities::default()
            .asymmetric_specs(&[
                KeySpec::Rsa2048,
                KeySpec::Rsa3072,
                KeySpec::EcP256,
                KeySpec::EcP256K,
            ])
            .sm4(false)
    }

    fn token() -> common::Token {
        common::fresh_token().expect("KMSKIT_PKCS11_MODULE was set when this test was built")
    }

    /// A fresh, empty token.
    pub(super) async fn fixture() -> Fixture {
        let t = token();
        let kms = Arc::new(Pkcs11Kms::open_pkcs11(&t.config()).expect("the token opens"));
        assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
        Fixture::new(kms.clone())
            .with_rotator(kms)
            .with_guard(t)
            .with_capabilities(capabilities())
    }

    kmskit_core::conformance_tests!(fixture);

    /// A token written by one `Pkcs11Kms`, closed, and reopened by another before the case runs.
    pub(super) async fn reopened_fixture() -> Fixture {
        let t = token();
        {
            let first = Pkcs11Kms::open_pkcs11(&t.config()).expect("the token opens");
            let caller = common::caller();
            let k = block_on(first.create_key(&caller, CreateKey::new("written before the reopen")))
                .expect("create");
            block_on(first.schedule_key_deletion(&caller, &KeyRef::Id(k.key_id), 7)).expect("schedule");
        }
        let kms = Arc::new(Pkcs11Kms::open_pkcs11(&t.config()).expect("the token reopens"));
        assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
        Fixture::new(kms.clone())
            .with_rotator(kms)
            .with_guard(t)
            .with_capabilities(capabilities())
    }

    kmskit_core::conformance_tests!(reopened_fixture, conformance_reopened);
}

#[cfg(not(kmskit_pkcs11_module))]
#[test]
fn conformance_suite_needs_a_pkcs11_module() {
    common::missing(
        "KMSKIT_PKCS11_MODULE was not set when the tests were built, so the conformance suite is not compiled in",
    );
}
