//! The provider conformance suite (`kmskit_core::testkit`) on `AwsKms` against moto's KMS server.
//!
//! `scripts/test.sh` starts `moto_server` on 127.0.0.1 and exports its URL as `KMSKIT_TEST_AWS_ENDPOINT`.
//! Without it the cases print a skip line and pass, except under CI (`CI` set), where a missing endpoint
//! fails them.
//!
//! moto (and AWS KMS itself) cannot run every case; those are listed by name below with the reason,
//! as `#[ignore]`d tests, so `cargo test` reports them as ignored rather than passing them silently.
#![cfg(feature = "aws")]

use std::sync::Arc;

use kmskit_core::testkit::{Capabilities, Fixture};
use kmskit_remote::{AWS_MAX_PENDING_WINDOW_DAYS, AWS_MAX_PLAINTEXT, AwsKms};

/// The moto endpoint, or `None` (then the case is skipped; under CI it fails).
fn endpoint() -> Option<String> {
    match std::env::var("KMSKIT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "KMSKIT_TEST_AWS_ENDPOINT is not set under CI: scripts/test.sh starts moto_server"
            );
            eprintln!("kmskit-remote: SKIPPED (KMSKIT_TEST_AWS_ENDPOINT not set; run scripts/test.sh)");
            None
        }
    }
}

/// What AWS KMS under moto supports.
fn capabilities() -> Capabilities {
    Capabilities::default()
        // moto does not enforce key states (a disabled key still encrypts); only the cells that
        // succeed are checked.
        .enforces_key_states(false)
        // AWS KMS has no external-origin flow in moto, no deletion protection, no visible key
        // versions and no ListKeys filters.
        .external_origin(false)
        .deletion_protection(false)
        .key_versions(false)
        .key_filters(false)
        .ordered_key_listing(false)
        // AWS ARNs (`arn:aws:kms:…`), not `acs:kms:…`.
        .arn_refs(false)
        // AWS data keys decrypt to the raw key.
        .data_key_base64(false)
        .max_plaintext(AWS_MAX_PLAINTEXT)
        .max_pending_window_days(AWS_MAX_PENDING_WINDOW_DAYS)
        // AWS KMS has no SM4 keys: CreateKey of Aliyun_SM4 is refused.
        .sm4(false)
}

/// moto keeps one backend per account and region, and the cases run in parallel against one server:
/// each case gets a region of its own, so one case's keys and aliases never change another's counts.
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "sa-east-1",
    "ca-central-1",
    "me-south-1",
    "af-south-1",
    "ap-east-1",
    "eu-south-1",
    "me-central-1",
    "il-central-1",
    "ap-south-2",
    "eu-central-2",
    "eu-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
];

/// An `AwsKms` on the moto endpoint in `region`, with static test credentials.
async fn client_in(url: &str, region: &str) -> AwsKms {
    AwsKms::builder()
        .endpoint_url(url)
        .region(region)
        .credentials("testing", "testing", None)
        .build()
        .await
}

async fn fixture(url: String, case: &str) -> Fixture {
    let i = conformance::ALL_CASES
        .iter()
        .chain(conformance::SKIPPED_CASES)
        .position(|c| *c == case)
        .unwrap_or(0);
    let kms = Arc::new(client_in(&url, REGIONS[i % REGIONS.len()]).await);
    Fixture::new(kms).with_capabilities(capabilities())
}

macro_rules! cases {
    ($($case:ident,)*) => {
        pub(crate) const ALL_CASES: &[&str] = &[$(stringify!($case),)*];
        $(
            #[test]
            fn $case() {
                let Some(url) = endpoint() else { return };
                kmskit_core::testkit::__private::run(async move {
                    let fx = fixture(url, stringify!($case)).await;
                    kmskit_core::testkit::$case(&fx).await;
                });
            }
        )*
    };
}

macro_rules! skipped {
    ($($case:ident => $why:literal,)*) => {
        pub(crate) const SKIPPED_CASES: &[&str] = &[$(stringify!($case),)*];
        $(
            #[test]
            #[ignore = $why]
            fn $case() {
                let Some(url) = endpoint() else { return };
                kmskit_core::testkit::__private::run(async move {
                    let fx = fixture(url, stringify!($case)).await;
                    kmskit_core::testkit::$case(&fx).await;
                });
            }
        )*
    };
}

mod conformance {
    use super::*;

    cases! {
        create_and_describe,
        unknown_key,
        malformed_key_refs,
        state_matrix_enabled,
        state_matrix_disabled,
        state_matrix_pending_deletion,
        state_matrix_pending_import,
        disable_enable,
        deletion_window,
        deletion_protection,
        aliases,
        list_keys_paging,
        list_keys_filters,
        key_versions,
        tags,
        data_keys,
        re_encrypt,
        tamper,
        concurrency,
        debug_redaction,
        envelope,
        sm4_keys,
    }

    skipped! {
        round_trip => "AWS KMS refuses an empty plaintext (Plaintext must be 1 to 4096 bytes); the case encrypts 0 bytes",
        encryption_context => "moto binds the encryption context by concatenating keys and values, so {a: bc} decrypts as {ab: c} (AWS KMS itself does not)",
        rotation => "AWS KMS rotates keys itself (RotateKeyOnDemand); AwsKms has no kmskit Rotator",
        rotation_policy => "AWS KMS rotation policies are not kmskit's; AwsKms has no kmskit Rotator",
        rotation_due_work => "AWS KMS schedules its own rotations; AwsKms has no kmskit Rotator",
        re_encrypt_to_primary => "needs a kmskit Rotator to make new key versions",
        version_floors => "AWS KMS has no minimum decryption version",
        asymmetric_sign_verify => "moto's Encrypt checks neither usage nor spec (it encrypts with a signing key, and symmetric Encrypt with an asymmetric key), so the usage refusals cannot be shown (and it makes an RSA key for SM2); the signing round trips are in aws_asymmetric.rs",
        asymmetric_encrypt_decrypt => "moto encrypts RSA keys in its symmetric blob format, without the RSAES-OAEP size limits; the round trips are in aws_asymmetric.rs",
        asymmetric_lifecycle => "moto answers GetPublicKey for a symmetric key (AWS KMS refuses it), and AwsKms has no kmskit Rotator for CreateKeyVersion",
    }
}
