//! The `KeyStore` SPI: what a local backend implements so the one engine, [`Kms<S>`](crate::Kms), runs on it.
//!
//! A store does two jobs: **custody** of key material (generate, seal, open, destroy: material may never
//! leave it, as in an HSM) and **persistence** of key and alias records. The engine owns every rule
//! (states, aliases, deletion windows); the store owns durability.
//!
//! Contract:
//! - `load` is called once, when the engine opens. It returns every readable record and, separately,
//!   a problem for each record it could not read: one bad record never hides the others.
//! - `generate` makes material for a `(key, version)`; it must be usable by `seal`/`open` at once and must
//!   survive a reopen once a record naming that version has been saved. Material no saved record names
//!   may be discarded at the next open.
//! - `save_key`, `save_alias` and `delete_alias` are atomic and durable when they return `Ok`: after a
//!   crash, a reopened store yields either the old or the new record, never a mix, and always the new one
//!   once the call returned.
//! - `destroy` erases all material of a key (on a file: overwritten before removal; on PKCS#11:
//!   `C_DestroyObject`). It is idempotent.
//! - Calls are blocking and may do I/O; the engine serialises mutations, but `seal`/`open` run
//!   concurrently from many threads.
//!
//! [`SoftwareKeys`] is the shared in-memory custody that software stores (memory, file) build on.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crypto::{AeadEngine, AeadKey, Algorithm, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::id::{AliasName, KeyId, KeyVersionId};
use crate::key::{AsymmetricAlgorithm, KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel};
use crate::secret::SecretBytes;

/// Names one key version's material.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MaterialId {
    /// The key.
    pub key_id: KeyId,
    /// The version.
    pub version_id: KeyVersionId,
}

impl MaterialId {
    /// A material id.
    pub fn new(key_id: KeyId, version_id: KeyVersionId) -> Self {
        Self { key_id, version_id }
    }
}

impl fmt::Display for MaterialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.key_id, self.version_id)
    }
}

/// One version of a key, as persisted.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The version id.
    pub version_id: KeyVersionId,
    /// When it was made.
    pub creation_date: Timestamp,
}

impl VersionRecord {
    /// A version record.
    pub fn new(version_id: KeyVersionId, creation_date: Timestamp) -> Self {
        Self {
            version_id,
            creation_date,
        }
    }
}

/// Everything the engine persists about a key (material excepted: that stays in the store's custody).
///
/// New fields are added with `#[serde(default)]` so older records still load.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key id.
    pub key_id: KeyId,
    /// The key spec.
    pub key_spec: KeySpec,
    /// The usage.
    pub key_usage: KeyUsage,
    /// The origin.
    pub origin: Origin,
    /// The protection level.
    pub protection_level: ProtectionLevel,
    /// The description.
    pub description: String,
    /// Who created it.
    pub creator: String,
    /// When it was created.
    pub creation_date: Timestamp,
    /// The state.
    pub state: KeyState,
    /// When a key pending deletion is purged.
    pub delete_date: Option<Timestamp>,
    /// Whether deletion protection is on.
    pub deletion_protection: bool,
    /// Why.
    pub deletion_protection_description: String,
    /// The primary version (symmetric keys with material).
    pub primary_version: Option<KeyVersionId>,
    /// All versions, oldest first.
    pub versions: Vec<VersionRecord>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// When the key was last rotated.
    pub last_rotation_date: Option<Timestamp>,
    /// Whether automatic rotation is enabled.
    #[serde(default)]
    pub automatic_rotation: bool,
    /// The rotation interval in seconds.
    #[serde(default)]
    pub rotation_interval_secs: Option<u64>,
    /// The minimum decryption version (a version floor): ciphertexts under older versions are refused
    /// with `Rejected.KeyVersionRetired`. `None`: every version decrypts.
    #[serde(default)]
    pub min_decryption_version: Option<KeyVersionId>,
    /// A purged key's tombstone: no material, never usable, its id never reused.
    #[serde(default)]
    pub purged: bool,
    /// Bumped on every save (lets stores and tests order writes).
    #[serde(default)]
    pub revision: u64,
}

impl KeyRecord {
    /// A fresh record; the engine fills it in.
    pub fn new(key_id: KeyId, key_spec: KeySpec, key_usage: KeyUsage, creation_date: Timestamp) -> Self {
        Self {
            key_id,
            key_spec,
            key_usage,
            origin: Origin::Kms,
            protection_level: ProtectionLevel::Software,
            description: String::new(),
            creator: String::new(),
            creation_date,
            state: KeyState::Enabled,
            delete_date: None,
            deletion_protection: false,
            deletion_protection_description: String::new(),
            primary_version: None,
            versions: Vec::new(),
            tags: BTreeMap::new(),
            last_rotation_date: None,
            automatic_rotation: false,
            rotation_interval_secs: None,
            min_decryption_version: None,
            purged: false,
            revision: 0,
        }
    }

    /// The position of `version` in [`KeyRecord::versions`] (oldest is 0).
    pub fn version_index(&self, version: &KeyVersionId) -> Option<usize> {
        self.versions.iter().position(|v| &v.version_id == version)
    }

    /// Whether `version` is below the minimum decryption version (and so refused by Decrypt).
    pub fn is_version_retired(&self, version: &KeyVersionId) -> bool {
        match (&self.min_decryption_version, self.version_index(version)) {
            (Some(floor), Some(i)) => self.version_index(floor).is_some_and(|f| i < f),
            _ => false,
        }
    }

    /// When automatic rotation is next due: the last rotation (or creation) plus the interval, while a
    /// rotation policy is enabled. Reported whatever the key state (DescribeKey shows it while suspended).
    pub fn next_rotation_date(&self) -> Option<Timestamp> {
        match (self.automatic_rotation, self.rotation_interval_secs) {
            (true, Some(i)) => Some(self.last_rotation_date.unwrap_or(self.creation_date).plus_secs(i)),
            _ => None,
        }
    }

    /// The material ids of all versions.
    pub fn material_ids(&self) -> impl Iterator<Item = MaterialId> + '_ {
        self.versions
            .iter()
            .map(|v| MaterialId::new(self.key_id.clone(), v.version_id.clone()))
    }
}

/// An alias, as persisted.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The alias.
    pub name: AliasName,
    /// The key it points to.
    pub key_id: KeyId,
    /// When it was created or last re-pointed.
    pub updated: Timestamp,
}

impl AliasRecord {
    /// An alias record.
    pub fn new(name: AliasName, key_id: KeyId, updated: Timestamp) -> Self {
        Self {
            name,
            key_id,
            updated,
        }
    }
}

/// What [`KeyStore::load`] found.
#[non_exhaustive]
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every key record that could be read.
    pub keys: Vec<KeyRecord>,
    /// Every alias record that could be read.
    pub aliases: Vec<AliasRecord>,
    /// One error per record that could not be read (e.g. [`Error::Corrupted`] naming path and record).
    pub problems: Vec<Error>,
}

impl Loaded {
    /// A load result.
    pub fn new(keys: Vec<KeyRecord>, aliases: Vec<AliasRecord>, problems: Vec<Error>) -> Self {
        Self {
            keys,
            aliases,
            problems,
        }
    }
}

/// Local custody of key material plus persistence of records. See the module docs for the contract.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// How this store protects material.
    fn protection_level(&self) -> ProtectionLevel;

    /// Reads every record. Called once when the engine opens.
    ///
    /// # Errors
    /// Only when nothing can be read at all (unreadable directory, token gone); a bad record is a
    /// problem in [`Loaded::problems`], not an error.
    fn load(&self) -> Result<Loaded>;

    /// Makes new material for `id`.
    ///
    /// # Errors
    /// `Unsupported` for a spec the store cannot hold; storage errors.
    fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()>;

    /// Encrypts `buf` in place under `id`'s material and returns the tag.
    ///
    /// # Errors
    /// `KeyVersionNotFound` when the store holds no such material; backend errors.
    fn seal(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]>;

    /// Authenticates and decrypts `buf` (ciphertext ‖ tag) in place, leaving the plaintext.
    ///
    /// # Errors
    /// [`Error::DecryptFailed`] when it does not authenticate; `KeyVersionNotFound` for missing material.
    fn open(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<()>;

    /// Signs a 32-byte `digest` with the private key of asymmetric version `id` (spec `spec`; the engine
    /// has checked that `alg` fits the key's spec and usage). ECDSA and SM2DSA signatures are DER.
    ///
    /// The default refuses: a store without asymmetric custody.
    ///
    /// # Errors
    /// `Rejected.UnsupportedOperation` for a spec or algorithm the store cannot run; `KeyVersionNotFound`
    /// for missing material; backend errors.
    fn sign_digest(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        let _ = (id, alg, digest);
        Err(no_asymmetric_custody(spec))
    }

    /// Decrypts a public-key ciphertext with the private key of asymmetric version `id`.
    ///
    /// The default refuses: a store without asymmetric custody.
    ///
    /// # Errors
    /// [`Error::DecryptFailed`] when it does not decrypt; otherwise as [`KeyStore::sign_digest`].
    fn asymmetric_decrypt(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let _ = (id, alg, ciphertext);
        Err(no_asymmetric_custody(spec))
    }

    /// The public key of asymmetric version `id` as a DER SubjectPublicKeyInfo. Verification and
    /// public-key encryption run in the engine over it (public operations need no custody).
    ///
    /// The default refuses: a store without asymmetric custody.
    ///
    /// # Errors
    /// As [`KeyStore::sign_digest`].
    fn public_key(&self, id: &MaterialId, spec: KeySpec) -> Result<Vec<u8>> {
        let _ = id;
        Err(no_asymmetric_custody(spec))
    }

    /// Destroys all material of `key` (idempotent).
    ///
    /// # Errors
    /// Storage errors; [`Error::ReadOnly`] on a read-only store.
    fn destroy(&self, key: &KeyId) -> Result<()>;

    /// Persists a key record atomically and durably.
    ///
    /// # Errors
    /// Storage errors; [`Error::ReadOnly`] on a read-only store.
    fn save_key(&self, record: &KeyRecord) -> Result<()>;

    /// Persists an alias record atomically and durably.
    ///
    /// # Errors
    /// Storage errors; [`Error::ReadOnly`] on a read-only store.
    fn save_alias(&self, alias: &AliasRecord) -> Result<()>;

    /// Removes an alias record atomically and durably.
    ///
    /// # Errors
    /// Storage errors; [`Error::ReadOnly`] on a read-only store.
    fn delete_alias(&self, name: &AliasName) -> Result<()>;
}

fn no_asymmetric_custody(spec: KeySpec) -> Error {
    Error::Unsupported(format!("this keystore cannot hold {spec} keys"))
}

/// The AEAD algorithm the engine uses for a symmetric key spec.
///
/// # Errors
/// `Unsupported` for specs without a symmetric AEAD yet.
pub fn algorithm_for(spec: KeySpec) -> Result<Algorithm> {
    match spec {
        KeySpec::Aes256 => Ok(Algorithm::Aes256Gcm),
        KeySpec::Sm4 => Ok(Algorithm::Sm4Gcm),
        other => Err(Error::Unsupported(format!(
            "key spec {other} is not supported by this engine yet"
        ))),
    }
}

/// What one held version expands to.
enum Expanded {
    /// A symmetric key's AEAD key.
    Aead(Box<dyn AeadKey>),
    /// An asymmetric key: the parsed private key, which also caches its SubjectPublicKeyInfo.
    #[cfg(feature = "asymmetric")]
    Asymmetric(crate::crypto::asym::PrivateKey),
}

struct SoftKey {
    /// The raw material: 32 bytes for a symmetric key, PKCS#8 DER for an asymmetric one.
    material: SecretBytes,
    expanded: Expanded,
}

/// In-memory custody of software key material: raw material (zeroized on drop) plus what it expands
/// to (an AEAD key, or a parsed asymmetric private key with its cached public key), so `seal`/`open`
/// and `sign_digest`/`asymmetric_decrypt` cost no key setup. Shared by the memory and file stores.
pub struct SoftwareKeys {
    engine: &'static dyn AeadEngine,
    keys: RwLock<HashMap<MaterialId, Arc<SoftKey>>>,
}

impl fmt::Debug for SoftwareKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.keys.read().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("SoftwareKeys")
            .field("engine", &self.engine.name())
            .field("versions", &n)
            .finish()
    }
}

impl SoftwareKeys {
    /// Empty custody using `engine`.
    pub fn new(engine: &'static dyn AeadEngine) -> Self {
        Self {
            engine,
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &'static dyn AeadEngine {
        self.engine
    }

    /// Makes fresh material for `spec` without storing it: 32 random bytes for a symmetric spec, a
    /// PKCS#8 private key for an asymmetric one (feature `asymmetric`).
    ///
    /// # Errors
    /// `Unsupported` for specs without a software implementation.
    pub fn new_material(spec: KeySpec) -> Result<SecretBytes> {
        if spec.is_symmetric() {
            return Ok(SecretBytes::random(algorithm_for(spec)?.key_len()));
        }
        #[cfg(feature = "asymmetric")]
        {
            crate::crypto::asym::generate(spec)
        }
        #[cfg(not(feature = "asymmetric"))]
        {
            Err(Error::Unsupported(format!(
                "{spec} keys need kmskit-core's feature `asymmetric`"
            )))
        }
    }

    /// Takes custody of `material` for `id`, expanding it (AEAD key setup, or PKCS#8 parsing).
    ///
    /// # Errors
    /// `InvalidParameter` for material of the wrong length or that is not a PKCS#8 key of `spec`;
    /// `Unsupported` spec.
    pub fn insert(&self, id: MaterialId, spec: KeySpec, material: SecretBytes) -> Result<()> {
        let expanded = if spec.is_symmetric() {
            Expanded::Aead(
                self.engine
                    .new_key(algorithm_for(spec)?, material.expose_secret())?,
            )
        } else {
            #[cfg(feature = "asymmetric")]
            {
                Expanded::Asymmetric(crate::crypto::asym::PrivateKey::from_pkcs8(
                    spec,
                    material.expose_secret(),
                )?)
            }
            #[cfg(not(feature = "asymmetric"))]
            {
                return Err(Error::Unsupported(format!(
                    "{spec} keys need kmskit-core's feature `asymmetric`"
                )));
            }
        };
        self.write().insert(id, Arc::new(SoftKey { material, expanded }));
        Ok(())
    }

    /// Whether material for `id` is held.
    pub fn contains(&self, id: &MaterialId) -> bool {
        self.read().contains_key(id)
    }

    /// Calls `f` with the raw material of `id` (for stores that persist it sealed).
    pub fn with_material<R>(&self, id: &MaterialId, f: impl FnOnce(&SecretBytes) -> R) -> Option<R> {
        let k = self.read().get(id).cloned();
        k.map(|k| f(&k.material))
    }

    /// Drops (and so zeroizes) every version of `key`; returns how many were held.
    pub fn remove_key(&self, key: &KeyId) -> usize {
        let mut map = self.write();
        let before = map.len();
        map.retain(|id, _| &id.key_id != key);
        before - map.len()
    }

    fn held(&self, id: &MaterialId) -> Result<Arc<SoftKey>> {
        self.read()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::KeyVersionNotFound(id.to_string()))
    }

    fn with_aead<R>(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        f: impl FnOnce(&dyn AeadKey) -> Result<R>,
    ) -> Result<R> {
        let k = self.held(id)?;
        match &k.expanded {
            Expanded::Aead(a) if a.algorithm() == alg => f(&**a),
            Expanded::Aead(_) => Err(Error::DecryptFailed),
            #[cfg(feature = "asymmetric")]
            Expanded::Asymmetric(_) => Err(Error::Unsupported(format!(
                "{id} is an asymmetric key version; it cannot seal or open"
            ))),
        }
    }

    /// Calls `f` with the private key of asymmetric version `id` of spec `spec`.
    #[cfg(feature = "asymmetric")]
    fn with_private<R>(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        f: impl FnOnce(&crate::crypto::asym::PrivateKey) -> Result<R>,
    ) -> Result<R> {
        let k = self.held(id)?;
        match &k.expanded {
            Expanded::Asymmetric(p) if p.spec() == spec => f(p),
            Expanded::Asymmetric(p) => Err(Error::Unsupported(format!(
                "{id} holds a {} key, not {spec}",
                p.spec()
            ))),
            Expanded::Aead(_) => Err(Error::Unsupported(format!(
                "{id} is a symmetric key version; it has no private key"
            ))),
        }
    }

    /// [`KeyStore::sign_digest`] over the held private key.
    ///
    /// # Errors
    /// As [`KeyStore::sign_digest`]; `Rejected.UnsupportedOperation` without feature `asymmetric`.
    pub fn sign_digest(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        #[cfg(feature = "asymmetric")]
        {
            self.with_private(id, spec, |k| k.sign_digest(alg, digest))
        }
        #[cfg(not(feature = "asymmetric"))]
        {
            let _ = (id, alg, digest);
            Err(no_asymmetric_custody(spec))
        }
    }

    /// [`KeyStore::asymmetric_decrypt`] over the held private key.
    ///
    /// # Errors
    /// As [`KeyStore::asymmetric_decrypt`]; `Rejected.UnsupportedOperation` without feature `asymmetric`.
    pub fn asymmetric_decrypt(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        #[cfg(feature = "asymmetric")]
        {
            self.with_private(id, spec, |k| k.decrypt(alg, ciphertext))
        }
        #[cfg(not(feature = "asymmetric"))]
        {
            let _ = (id, alg, ciphertext);
            Err(no_asymmetric_custody(spec))
        }
    }

    /// [`KeyStore::public_key`]: the cached DER SubjectPublicKeyInfo of asymmetric version `id`.
    ///
    /// # Errors
    /// As [`KeyStore::public_key`]; `Rejected.UnsupportedOperation` without feature `asymmetric`.
    pub fn public_key(&self, id: &MaterialId, spec: KeySpec) -> Result<Vec<u8>> {
        #[cfg(feature = "asymmetric")]
        {
            self.with_private(id, spec, |k| Ok(k.public_key_der().to_vec()))
        }
        #[cfg(not(feature = "asymmetric"))]
        {
            let _ = id;
            Err(no_asymmetric_custody(spec))
        }
    }

    /// [`KeyStore::seal`] over the held material.
    ///
    /// # Errors
    /// As [`KeyStore::seal`].
    pub fn seal(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        self.with_aead(id, alg, |k| k.seal_in_place_detached(nonce, aad, buf))
    }

    /// [`KeyStore::open`] over the held material.
    ///
    /// # Errors
    /// As [`KeyStore::open`].
    pub fn open(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.with_aead(id, alg, |k| k.open_in_place(nonce, aad, buf))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<MaterialId, Arc<SoftKey>>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts/removes).
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<MaterialId, Arc<SoftKey>>> {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record written before version floors existed (no `min_decryption_version` field) still loads.
    #[test]
    fn older_records_without_new_fields_load() {
        let mut rec = KeyRecord::new(
            KeyId::new("k1").unwrap(),
            KeySpec::Aes256,
            KeyUsage::EncryptDecrypt,
            Timestamp::from_unix(1_700_000_000),
        );
        rec.versions.push(VersionRecord::new(
            KeyVersionId::new("v1").unwrap(),
            Timestamp::from_unix(1_700_000_000),
        ));
        let mut json: serde_json::Value = serde_json::to_value(&rec).unwrap();
        let obj = json.as_object_mut().unwrap();
        for f in [
            "min_decryption_version",
            "automatic_rotation",
            "rotation_interval_secs",
            "purged",
        ] {
            assert!(obj.remove(f).is_some(), "{f}");
        }
        let back: KeyRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn floors_and_next_rotation() {
        let t0 = Timestamp::from_unix(1_000_000);
        let mut rec = KeyRecord::new(
            KeyId::new("k").unwrap(),
            KeySpec::Aes256,
            KeyUsage::EncryptDecrypt,
            t0,
        );
        for v in ["a", "b", "c"] {
            rec.versions
                .push(VersionRecord::new(KeyVersionId::new(v).unwrap(), t0));
        }
        let v = |s: &str| KeyVersionId::new(s).unwrap();
        assert!(!rec.is_version_retired(&v("a")));
        rec.min_decryption_version = Some(v("b"));
        assert!(rec.is_version_retired(&v("a")));
        assert!(!rec.is_version_retired(&v("b")));
        assert!(!rec.is_version_retired(&v("c")));
        assert!(
            !rec.is_version_retired(&v("zz")),
            "unknown versions are not 'retired'"
        );
        assert_eq!(rec.next_rotation_date(), None);
        rec.automatic_rotation = true;
        rec.rotation_interval_secs = Some(7 * 86_400);
        assert_eq!(rec.next_rotation_date(), Some(t0.plus_secs(7 * 86_400)));
        rec.last_rotation_date = Some(t0.plus_secs(10));
        assert_eq!(rec.next_rotation_date(), Some(t0.plus_secs(10 + 7 * 86_400)));
    }
}
