//! Key rotation: the [`Rotator`] trait, [`RotationPolicy`], due work and the scheduler.
//!
//! A symmetric key has one primary version; Encrypt and GenerateDataKey use it, Decrypt uses the version
//! named in the ciphertext. Rotating (CreateKeyVersion) makes a new primary version; the older versions
//! stay usable for decryption only, until a **version floor** (the minimum decryption version, as in
//! Vault's transit engine) retires them on purpose: a ciphertext under a version below the floor is then
//! refused with `Rejected.KeyVersionRetired` (HTTP 409). Floors are reversible (no material is
//! destroyed); ReEncrypt moves old ciphertexts to the current primary before a floor is raised.
//!
//! A rotation policy (UpdateRotationPolicy) rotates a key automatically every 7–365 days.
//! `NextRotationDate` is `LastRotationDate` plus the interval; `AutomaticRotation` reads `Suspended`
//! while the key is Disabled or PendingDeletion, and a suspended key is not rotated.
//!
//! Time is always passed in: [`Rotator::due`] reports what is due at `now`, and [`Rotator::run_due`]
//! performs it (due rotations and due purges of keys whose deletion window ended). Callers with their own
//! timer call `run_due`; with the `scheduler` feature, [`Scheduler`] is a tokio task that does it on an
//! interval, reading an injected [`Clock`](crate::Clock).
//!
//! ```
//! use kmskit_core::rotate::{RotationPolicy, Rotator};
//! use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, Timestamp};
//! # use kmskit_core::store::{KeyStore, Loaded, MaterialId, SoftwareKeys, AliasRecord, KeyRecord};
//! # use kmskit_core::{Result, KeyId, AliasName, key::{KeySpec, ProtectionLevel}, crypto::{Algorithm, NONCE_LEN, TAG_LEN}};
//! # #[derive(Debug)]
//! # struct Tiny(SoftwareKeys);
//! # impl KeyStore for Tiny {
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
//! # fn main() -> Result<()> { kmskit_core::block_on(async {
//! # let kms = kmskit_core::Kms::open(Tiny(SoftwareKeys::new(kmskit_core::crypto::default_engine())))?;
//! let caller = Caller::local();
//! let key = kms.create_key(&caller, CreateKey::new("orders")).await?;
//! let kref = KeyRef::Id(key.key_id.clone());
//! let ctx = EncryptionContext::new();
//! let old = kms.encrypt(&caller, &kref, b"v1 data", &ctx).await?;
//!
//! let v2 = kms.rotate(&caller, &kref).await?; // CreateKeyVersion
//! let moved = kms.re_encrypt_to_primary(&caller, &old.ciphertext_blob, &ctx).await?;
//! assert_eq!(moved.key_version_id, v2.key_version_id);
//!
//! // Retire the first version: its ciphertexts now fail with a stable code.
//! kms.set_min_decryption_version(&caller, &kref, Some(v2.key_version_id.clone())).await?;
//! let err = kms.decrypt(&caller, &old.ciphertext_blob, &ctx).await.unwrap_err();
//! assert_eq!(err.code().as_str(), "Rejected.KeyVersionRetired");
//!
//! // Rotate every 30 days; `run_due` (or the scheduler) does it when it falls due.
//! kms.set_rotation_policy(&caller, &kref, RotationPolicy::every_days(30)?).await?;
//! let later = Timestamp::from_unix(key.creation_date.unix() + 31 * 86_400);
//! assert_eq!(kms.due(later).await?.rotations, vec![key.key_id.clone()]);
//! let report = kms.run_due(later).await?;
//! assert_eq!(report.rotated.len(), 1);
//! # Ok(()) }) }
//! ```

use std::fmt;

use async_trait::async_trait;

use crate::blob::CiphertextBlob;
use crate::clock::{DAY, Timestamp};
use crate::context::EncryptionContext;
use crate::error::{Error, Result};
use crate::id::{KeyId, KeyRef, KeyVersionId};
use crate::key::KeyVersion;
use crate::provider::{Caller, Encrypted};

#[cfg(feature = "scheduler")]
mod scheduler;
#[cfg(feature = "scheduler")]
pub use scheduler::{Scheduler, SchedulerBuilder};

/// The shortest automatic rotation interval, in seconds (7 days).
pub const MIN_ROTATION_INTERVAL_SECS: u64 = 7 * DAY;
/// The longest automatic rotation interval, in seconds (365 days).
pub const MAX_ROTATION_INTERVAL_SECS: u64 = 365 * DAY;

/// An automatic rotation policy: off, or on with an interval of 7–365 days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RotationPolicy {
    interval_secs: Option<u64>,
}

impl RotationPolicy {
    /// No automatic rotation.
    pub const fn disabled() -> Self {
        Self { interval_secs: None }
    }

    /// Rotation every `secs` seconds.
    ///
    /// # Errors
    /// `InvalidParameter` (`RotationInterval`) outside 7–365 days.
    pub fn every_secs(secs: u64) -> Result<Self> {
        if !(MIN_ROTATION_INTERVAL_SECS..=MAX_ROTATION_INTERVAL_SECS).contains(&secs) {
            return Err(Error::invalid(
                "RotationInterval",
                format!("{secs}s is outside 7 to 365 days (604800s to 31536000s)"),
            ));
        }
        Ok(Self {
            interval_secs: Some(secs),
        })
    }

    /// Rotation every `days` days.
    ///
    /// # Errors
    /// `InvalidParameter` (`RotationInterval`) outside 7–365.
    pub fn every_days(days: u32) -> Result<Self> {
        Self::every_secs(u64::from(days) * DAY)
    }

    /// Parses the API's `RotationInterval` (`<int><unit>`, unit `d`, `h`, `m` or `s`: `7d` ==
    /// `604800s`), as UpdateRotationPolicy with `EnableAutomaticRotation=true` takes it.
    ///
    /// # Errors
    /// `InvalidParameter` (`RotationInterval`) for another form or an interval outside 7–365 days.
    pub fn parse_interval(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "RotationInterval",
                format!("expected <number><d|h|m|s>, got {s:?}"),
            )
        };
        let s = s.trim();
        let (num, unit) = s.split_at(s.len().saturating_sub(1));
        let mult = match unit {
            "d" => DAY,
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        Self::every_secs(n.checked_mul(mult).ok_or_else(bad)?)
    }

    /// Whether automatic rotation is on.
    pub const fn is_enabled(&self) -> bool {
        self.interval_secs.is_some()
    }

    /// The interval in seconds, when on.
    pub const fn interval_secs(&self) -> Option<u64> {
        self.interval_secs
    }
}

/// What is due at a given time: keys to rotate and keys to purge.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Enabled keys whose rotation policy says a rotation is due (`NextRotationDate` ≤ now), in due order.
    pub rotations: Vec<KeyId>,
    /// Keys pending deletion whose window has ended, in due order.
    pub purges: Vec<KeyId>,
}

impl Due {
    /// Whether nothing is due.
    pub fn is_empty(&self) -> bool {
        self.rotations.is_empty() && self.purges.is_empty()
    }
}

/// What [`Rotator::run_due`] did.
#[non_exhaustive]
#[derive(Debug, Default)]
pub struct RunReport {
    /// Keys rotated, with their new primary version.
    pub rotated: Vec<KeyVersion>,
    /// Keys purged.
    pub purged: Vec<KeyId>,
    /// Keys whose due work failed (retried on the next run), with why.
    pub failed: Vec<(KeyId, Error)>,
}

/// Rotation: new versions by hand or by policy, due-work scheduling, re-encryption and version floors.
///
/// Implemented by the local engine [`Kms<S>`](crate::Kms). Every time-dependent call takes `now`.
#[async_trait]
pub trait Rotator: Send + Sync + fmt::Debug {
    /// CreateKeyVersion: makes a new primary version of an enabled symmetric key; the previous versions
    /// become decrypt-only. Sets `LastRotationDate`, and so moves `NextRotationDate`.
    ///
    /// # Errors
    /// `Forbidden.KeyNotFound`; `Rejected.Disabled` / `Rejected.PendingDeletion` /
    /// `Rejected.PendingImport` for a key that is not enabled; `Rejected.UnsupportedOperation` for a key
    /// with imported (`EXTERNAL`) material or without a symmetric primary version; storage errors.
    async fn rotate(&self, caller: &Caller, key: &KeyRef) -> Result<KeyVersion>;

    /// UpdateRotationPolicy: turns automatic rotation on (with an interval of 7–365 days) or off.
    ///
    /// # Errors
    /// `Forbidden.KeyNotFound`; `Rejected.UnsupportedOperation` for keys with imported material or
    /// asymmetric keys; `Rejected.PendingDeletion` for a key pending deletion; storage errors.
    async fn set_rotation_policy(&self, caller: &Caller, key: &KeyRef, policy: RotationPolicy) -> Result<()>;

    /// Sets the minimum decryption version (the version floor): ciphertexts under older versions of the
    /// key are refused with `Rejected.KeyVersionRetired` until the floor is lowered. `None` removes the
    /// floor. Encryption is unaffected (the primary is always the newest version).
    ///
    /// # Errors
    /// `Forbidden.KeyNotFound`; `Forbidden.KeyVersionNotFound` for a version the key does not have;
    /// storage errors.
    async fn set_min_decryption_version(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: Option<KeyVersionId>,
    ) -> Result<()>;

    /// ReEncrypt to the current primary version of the blob's own key, under the same context, without
    /// releasing the plaintext. (ReEncrypt to another key is
    /// [`KeyProvider::re_encrypt`](crate::KeyProvider::re_encrypt).)
    ///
    /// # Errors
    /// As Decrypt (including `Rejected.KeyVersionRetired`) and Encrypt.
    async fn re_encrypt_to_primary(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted>;

    /// What is due at `now`: rotations of enabled keys whose `NextRotationDate` ≤ `now` (suspended keys
    /// are skipped) and purges of keys whose deletion window ended.
    ///
    /// # Errors
    /// Backend errors.
    async fn due(&self, now: Timestamp) -> Result<Due>;

    /// Performs what [`Rotator::due`] reports at `now`: each due key gets a new primary version dated
    /// `now`, each due deletion is purged. A failure on one key does not stop the others; it is reported
    /// in [`RunReport::failed`] and retried on the next run.
    ///
    /// # Errors
    /// Only when the due work cannot be listed at all.
    async fn run_due(&self, now: Timestamp) -> Result<RunReport>;
}
