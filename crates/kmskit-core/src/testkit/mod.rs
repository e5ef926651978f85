//! The provider conformance suite (feature `testkit`): one set of checks every [`KeyProvider`] runs,
//! whatever keeps its keys — memory, file, PKCS#11, or a remote service.
//!
//! The suite talks to the provider only through the [`KeyProvider`] trait, so it holds every backend to
//! the same contract: the state × operation matrix of the API spec (§9) with its exact error codes, the
//! deletion window, aliases, listing and paging, tags, key versions, data keys, ReEncrypt, encryption
//! context binding, tamper resistance, concurrent use and redacted `Debug` output.
//!
//! # Usage
//!
//! A backend crate enables the feature in its dev-dependencies and mounts the suite in
//! `tests/conformance.rs` with [`conformance_tests!`](crate::conformance_tests), naming an `async fn`
//! that returns a fresh [`Fixture`]:
//!
//! ```
//! # // Mounting the suite needs a real provider crate; this stand-in store shows the shape.
//! use std::sync::Arc;
//!
//! use kmskit_core::Kms;
//! use kmskit_core::testkit::{Capabilities, Fixture};
//! # use kmskit_core::store::{AliasRecord, KeyRecord, KeyStore, Loaded, MaterialId, SoftwareKeys};
//! # use kmskit_core::{AliasName, KeyId, Result, key::{KeySpec, ProtectionLevel}};
//! # use kmskit_core::crypto::{Algorithm, NONCE_LEN, TAG_LEN, default_engine};
//! # #[derive(Debug)]
//! # struct MyStore(SoftwareKeys);
//! # impl MyStore { fn new() -> Self { Self(SoftwareKeys::new(default_engine())) } }
//! # impl KeyStore for MyStore {
//! #     fn protection_level(&self) -> ProtectionLevel { ProtectionLevel::Software }
//! #     fn load(&self) -> Result<Loaded> { Ok(Loaded::default()) }
//! #     fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()> {
//! #         self.0.insert(id.clone(), spec, SoftwareKeys::new_material(spec)?)
//! #     }
//! #     fn seal(&self, id: &MaterialId, a: Algorithm, n: &[u8; NONCE_LEN], aad: &[u8], b: &mut [u8]) -> Result<[u8; TAG_LEN]> { self.0.seal(id, a, n, aad, b) }
//! #     fn open(&self, id: &MaterialId, a: Algorithm, n: &[u8; NONCE_LEN], aad: &[u8], b: &mut Vec<u8>) -> Result<()> { self.0.open(id, a, n, aad, b) }
//! #     fn destroy(&self, key: &KeyId) -> Result<()> { self.0.remove_key(key); Ok(()) }
//! #     fn save_key(&self, _: &KeyRecord) -> Result<()> { Ok(()) }
//! #     fn save_alias(&self, _: &AliasRecord) -> Result<()> { Ok(()) }
//! #     fn delete_alias(&self, _: &AliasName) -> Result<()> { Ok(()) }
//! # }
//!
//! /// A fresh provider for each case. A guard (a temporary directory, a server handle) lives as long
//! /// as the fixture; capabilities switch off what the backend cannot do.
//! async fn fixture() -> Fixture {
//!     let kms = Kms::open(MyStore::new()).expect("opens");
//!     Fixture::new(Arc::new(kms))
//!         .with_guard("e.g. a tempfile::TempDir")
//!         .with_capabilities(Capabilities::default())
//! }
//!
//! kmskit_core::conformance_tests!(fixture);
//!
//! // Cases are plain async functions too; call one directly from a test of your own:
//! # fn main() {
//! kmskit_core::block_on(async {
//!     let fx = fixture().await;
//!     kmskit_core::testkit::round_trip(&fx).await;
//!     kmskit_core::testkit::state_matrix_disabled(&fx).await;
//! });
//! # }
//! ```
//!
//! The macro expands to a module `conformance` holding one `#[test]` per case (so a failure names its
//! case, e.g. `conformance::state_matrix_disabled`). Each test builds a multi-threaded tokio runtime
//! with four workers (what `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` builds), calls
//! the fixture function, and awaits the case, one of the `pub async fn`s of this module. Backend crates
//! need no tokio dependency of their own for it. `conformance_tests!(fixture, my_module)` names the
//! module, to mount the suite twice in one file (for example once per AEAD engine). The fixture path is
//! resolved inside that module, which glob-imports its parent: pass a plain name or a `crate::` path.
//!
//! # What the cases assume
//!
//! - Every case gets a fresh fixture, but listings are checked in a way that tolerates keys and aliases
//!   that already exist (for example in a shared remote account): each case counts only what it made.
//! - No case sleeps and every loop is bounded.
//! - A case the provider cannot run (see [`Capabilities`]) is never silently passed: it prints
//!   `kmskit testkit: SKIPPED <case>: <why>` to stderr (see it with `cargo test -- --nocapture`). Set
//!   `KMSKIT_TESTKIT_NO_SKIP=1` to turn every skip into a failure, as CI for a full-featured backend
//!   should.
//!
//! # Cases
//!
//! | case | checks |
//! |---|---|
//! | [`create_and_describe`] | CreateKey/DescribeKey metadata, references by ARN, UpdateKeyDescription |
//! | [`round_trip`] | Encrypt/Decrypt at 0, 1 and the maximum bytes; one more byte refused; Base64 form |
//! | [`encryption_context`] | order-insensitive equality; wrong, missing, extra or re-split context refused |
//! | [`unknown_key`] | `Forbidden.KeyNotFound` from every keyed call; `Forbidden.AliasNotFound` |
//! | [`malformed_key_refs`] | [`KeyRef::parse`](crate::KeyRef::parse) rejects malformed references |
//! | [`state_matrix_enabled`], [`state_matrix_disabled`], [`state_matrix_pending_deletion`], [`state_matrix_pending_import`] | every cell of spec §9 |
//! | [`disable_enable`] | disabled keys refuse cryptography until enabled again |
//! | [`deletion_window`] | window bounds, `DeleteDate`, cancel |
//! | [`deletion_protection`] | protection blocks ScheduleKeyDeletion; DescribeKey shows it |
//! | [`aliases`] | create, duplicate, resolve (name and ARN), update, list, page, delete, reserved names |
//! | [`list_keys_paging`], [`list_keys_filters`] | ListKeys paging, bounds and filters |
//! | [`key_versions`] | ListKeyVersions, DescribeKeyVersion |
//! | [`tags`] | tag, overwrite, list, untag, the 20-tag limit, reserved prefixes |
//! | [`data_keys`] | GenerateDataKey lengths and bounds, decryption conventions |
//! | [`re_encrypt`] | ReEncrypt to another key and the same key, context change |
//! | [`tamper`] | every bit flip and truncation of a blob is refused, never a panic |
//! | [`concurrency`] | 32 tasks creating, encrypting, disabling and enabling at once |
//! | [`debug_redaction`] | no plaintext or key bytes in any `Debug` output |
//! | [`rotation`] | CreateKeyVersion twice: new primary, every generation still decrypts, metadata |
//! | [`rotation_policy`] | UpdateRotationPolicy bounds, `NextRotationDate`, `Enabled`/`Suspended`/`Disabled` |
//! | [`rotation_due_work`] | `due(now)` and `run_due(now)`: rotations exactly at the due date, purges |
//! | [`re_encrypt_to_primary`] | old ciphertexts moved to the newest version, and to another key |
//! | [`version_floors`] | a minimum decryption version refuses older versions with `Rejected.KeyVersionRetired` |
//! | [`envelope`] | `EnvelopeEncryptor` over the provider: sizes, contexts, cache, tampering |
//! | [`asymmetric_sign_verify`] | AsymmetricSign/Verify per spec × algorithm, GetPublicKey, usage rules |
//! | [`asymmetric_encrypt_decrypt`] | AsymmetricEncrypt/Decrypt per spec × algorithm, size limits, tampering |
//! | [`asymmetric_lifecycle`] | versions of asymmetric keys, disabled keys, no automatic rotation |
//! | [`sm4_keys`] | `Aliyun_SM4` keys through Encrypt/Decrypt, data keys and ReEncrypt |
//!
//! The rotation cases need the provider's [`Rotator`]: set it with [`Fixture::with_rotator`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::provider::{Caller, KeyProvider};
use crate::rotate::Rotator;

mod aliases;
mod asymmetric;
mod basic;
mod crypto;
mod envelope;
mod listing;
mod rotation;
mod states;
mod stress;
mod support;

pub use aliases::aliases;
pub use asymmetric::{asymmetric_encrypt_decrypt, asymmetric_lifecycle, asymmetric_sign_verify, sm4_keys};
pub use basic::{create_and_describe, encryption_context, malformed_key_refs, round_trip, unknown_key};
pub use crypto::{data_keys, re_encrypt, tamper};
pub use envelope::envelope;
pub use listing::{key_versions, list_keys_filters, list_keys_paging, tags};
pub use rotation::{re_encrypt_to_primary, rotation, rotation_due_work, rotation_policy, version_floors};
pub use states::{
    deletion_protection, deletion_window, disable_enable, state_matrix_disabled, state_matrix_enabled,
    state_matrix_pending_deletion, state_matrix_pending_import,
};
pub use stress::{concurrency, debug_redaction};

/// The environment variable that turns every skipped case into a failure.
pub const NO_SKIP_ENV: &str = "KMSKIT_TESTKIT_NO_SKIP";

/// What a provider under test supports. The default is everything (a local `Kms<S>` engine); remote
/// providers switch off what their service lacks, and the cases that need it are skipped with a message.
///
/// ```
/// use kmskit_core::testkit::Capabilities;
///
/// // e.g. AWS KMS under moto: no key-state enforcement, AWS-style ARNs, 4 KiB plaintexts.
/// let caps = Capabilities::default()
///     .enforces_key_states(false)
///     .arn_refs(false)
///     .max_plaintext(4096);
/// assert!(caps.aliases);
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Keys of origin `EXTERNAL` can be made (they start in `PendingImport`).
    pub external_origin: bool,
    /// Key states are enforced: the refusals of spec §9 (`Rejected.Disabled`,
    /// `Rejected.StateModifiedFailed`, …) happen. When off, only the cells that succeed are checked.
    pub enforces_key_states: bool,
    /// SetDeletionProtection is supported and shown by DescribeKey.
    pub deletion_protection: bool,
    /// Aliases are supported.
    pub aliases: bool,
    /// Tags are supported.
    pub tags: bool,
    /// ListKeyVersions and DescribeKeyVersion are supported.
    pub key_versions: bool,
    /// ListKeys filters are supported.
    pub key_filters: bool,
    /// ListKeys returns keys in creation order.
    pub ordered_key_listing: bool,
    /// Keys and aliases can be named by `acs:kms:<region>:<account>:…` ARNs, and DescribeKey's `Arn` is
    /// one.
    pub arn_refs: bool,
    /// Decrypt of a GenerateDataKey blob returns the Base64 text of the data key (the model service's
    /// convention) rather than the raw key.
    pub data_key_base64: bool,
    /// The largest plaintext Encrypt takes (6144 bytes in the model service; AWS KMS: 4096).
    pub max_plaintext: usize,
    /// The longest deletion window in days (366 in the model service; AWS KMS: 30).
    pub max_pending_window_days: u32,
    /// The asymmetric key specs the provider holds (default: all five); CreateKey of the others must
    /// be refused with `Rejected.UnsupportedOperation`.
    pub asymmetric_specs: &'static [crate::key::KeySpec],
    /// `Aliyun_SM4` keys are supported (else CreateKey must refuse them).
    pub sm4: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            external_origin: true,
            enforces_key_states: true,
            deletion_protection: true,
            aliases: true,
            tags: true,
            key_versions: true,
            key_filters: true,
            ordered_key_listing: true,
            arn_refs: true,
            data_key_base64: true,
            max_plaintext: crate::MAX_PLAINTEXT,
            max_pending_window_days: crate::MAX_PENDING_WINDOW_DAYS,
            asymmetric_specs: ALL_ASYMMETRIC_SPECS,
            sm4: true,
        }
    }
}

/// Every asymmetric key spec, the default of [`Capabilities::asymmetric_specs`].
pub const ALL_ASYMMETRIC_SPECS: &[crate::key::KeySpec] = &[
    crate::key::KeySpec::Rsa2048,
    crate::key::KeySpec::Rsa3072,
    crate::key::KeySpec::EcP256,
    crate::key::KeySpec::EcP256K,
    crate::key::KeySpec::EcSm2,
];

macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        impl Capabilities {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`Capabilities::external_origin`].
    external_origin: bool,
    /// Sets [`Capabilities::enforces_key_states`].
    enforces_key_states: bool,
    /// Sets [`Capabilities::deletion_protection`].
    deletion_protection: bool,
    /// Sets [`Capabilities::aliases`].
    aliases: bool,
    /// Sets [`Capabilities::tags`].
    tags: bool,
    /// Sets [`Capabilities::key_versions`].
    key_versions: bool,
    /// Sets [`Capabilities::key_filters`].
    key_filters: bool,
    /// Sets [`Capabilities::ordered_key_listing`].
    ordered_key_listing: bool,
    /// Sets [`Capabilities::arn_refs`].
    arn_refs: bool,
    /// Sets [`Capabilities::data_key_base64`].
    data_key_base64: bool,
    /// Sets [`Capabilities::max_plaintext`].
    max_plaintext: usize,
    /// Sets [`Capabilities::max_pending_window_days`].
    max_pending_window_days: u32,
    /// Sets [`Capabilities::asymmetric_specs`].
    asymmetric_specs: &'static [crate::key::KeySpec],
    /// Sets [`Capabilities::sm4`].
    sm4: bool,
}

/// A provider under test, with whatever must stay alive while it runs and what it supports.
pub struct Fixture {
    provider: Arc<dyn KeyProvider>,
    rotator: Option<Arc<dyn Rotator>>,
    guard: Option<Box<dyn Any + Send + Sync>>,
    caps: Capabilities,
    caller: Caller,
}

impl Fixture {
    /// A fixture for `provider`, with every capability and the trusted local caller.
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self {
            provider,
            rotator: None,
            guard: None,
            caps: Capabilities::default(),
            caller: Caller::local(),
        }
    }

    /// The provider's [`Rotator`] (the same object, for the local engine `Kms<S>`), so the rotation
    /// cases run. Without one they are skipped.
    #[must_use]
    pub fn with_rotator(mut self, rotator: Arc<dyn Rotator>) -> Self {
        self.rotator = Some(rotator);
        self
    }

    /// The rotator, if one was set.
    pub fn rotator(&self) -> Option<&Arc<dyn Rotator>> {
        self.rotator.as_ref()
    }

    /// Keeps `guard` (a temporary directory, a server process handle, …) alive as long as the fixture.
    #[must_use]
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Sets what the provider supports.
    #[must_use]
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Sets the caller the cases use (default: [`Caller::local`]); each call gets a fresh request id.
    #[must_use]
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    /// What the provider supports.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The guard, if one was set.
    pub fn guard(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.guard.as_deref()
    }

    /// The caller for one call: the configured caller with a fresh request id.
    pub fn caller(&self) -> Caller {
        self.caller
            .clone()
            .with_request_id(crate::KeyId::generate().to_string())
    }
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("provider", &self.provider)
            .field("rotator", &self.rotator.is_some())
            .field("guard", &self.guard.as_ref().map(|_| ".."))
            .field("caps", &self.caps)
            .field("caller", &self.caller.principal)
            .finish()
    }
}

/// Mounts the conformance suite: one `#[test]` per case in a module (default `conformance`), each
/// running the case on a fresh fixture from `$fixture`, an `async fn() -> Fixture`.
///
/// See the [`testkit`](crate::testkit) module docs for an example.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!($fixture, conformance);
    };
    ($fixture:path, $module:ident) => {
        #[allow(unused_imports)]
        mod $module {
            use super::*;

            $crate::__conformance_cases! {
                $fixture;
                create_and_describe,
                round_trip,
                encryption_context,
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
                rotation,
                rotation_policy,
                rotation_due_work,
                re_encrypt_to_primary,
                version_floors,
                envelope,
                asymmetric_sign_verify,
                asymmetric_encrypt_decrypt,
                asymmetric_lifecycle,
                sm4_keys,
            }
        }
    };
}

/// Expands one test per case; used by [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($fixture:path; $($case:ident,)*) => {
        $(
            #[test]
            pub(super) fn $case() {
                $crate::testkit::__private::run(async {
                    let fixture: $crate::testkit::Fixture = $fixture().await;
                    $crate::testkit::$case(&fixture).await;
                });
            }
        )*
    };
}

/// Not public API: what [`conformance_tests!`] expands to.
#[doc(hidden)]
pub mod __private {
    pub use tokio;

    /// Runs `fut` to completion on a fresh multi-threaded runtime with four workers, as
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` does.
    ///
    /// # Panics
    /// When the runtime cannot be built, or when `fut` panics (a failed case).
    pub fn run<F: std::future::Future<Output = ()>>(fut: F) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("build a tokio runtime")
            .block_on(fut);
    }
}

#[cfg(test)]
mod tests {
    /// Every `pub async fn` case is mounted by `conformance_tests!`, and nothing else is.
    #[test]
    fn macro_lists_every_case() {
        let sources = [
            include_str!("aliases.rs"),
            include_str!("asymmetric.rs"),
            include_str!("basic.rs"),
            include_str!("crypto.rs"),
            include_str!("envelope.rs"),
            include_str!("listing.rs"),
            include_str!("rotation.rs"),
            include_str!("states.rs"),
            include_str!("stress.rs"),
        ];
        let mut cases: Vec<&str> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .map(|l| l.split('(').next().unwrap_or_default())
            .collect();
        cases.sort_unstable();
        let me = include_str!("mod.rs");
        let start = me.find("$fixture;\n").expect("case list") + "$fixture;\n".len();
        let end = start + me[start..].find('}').expect("end of list");
        let mut listed: Vec<&str> = me[start..end]
            .lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect();
        listed.sort_unstable();
        assert_eq!(cases, listed);
    }
}
