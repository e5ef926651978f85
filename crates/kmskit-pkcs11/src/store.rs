//! [`Pkcs11Store`]: key material and records kept in a PKCS#11 token.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use kmskit_core::crypto::{Algorithm, KEY_LEN, NONCE_LEN, TAG_LEN};
use kmskit_core::store::{AliasRecord, KeyRecord, KeyStore, Loaded, MaterialId, algorithm_for};
use kmskit_core::{
    AliasName, AsymmetricAlgorithm, Error, KeyId, KeySpec, KeyUsage, KeyVersionId, ProtectionLevel, Result,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Pkcs11Config;
use crate::der::{self, Curve};
use crate::oaep::{self, OaepHash};
use crate::pool::{Lease, Pool};

/// `CKA_APPLICATION` of every data object kmskit writes.
pub const APPLICATION: &str = "kmskit";
/// `CKA_LABEL` prefix of key material objects: `kmskit/material/<key id>/<version id>` (an AES
/// secret key, or both objects of an asymmetric key pair).
pub const MATERIAL_LABEL_PREFIX: &str = "kmskit/material/";
/// `CKA_LABEL` prefix of key record data objects: `kmskit/key/<key id>`.
pub const KEY_LABEL_PREFIX: &str = "kmskit/key/";
/// `CKA_LABEL` prefix of alias record data objects: `kmskit/alias/<alias name>`.
pub const ALIAS_LABEL_PREFIX: &str = "kmskit/alias/";

/// The version of the JSON envelope in a record data object's `CKA_VALUE`.
const RECORD_FORMAT: u32 = 1;
const TAG_BITS: u64 = (TAG_LEN * 8) as u64;

/// What a record data object holds: the record plus a sequence number, so that when a crash left two
/// objects for one record (the new one is created before the old one is destroyed), the newer wins.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: u32,
    seq: u64,
    record: T,
}

#[derive(Default)]
struct Handles {
    /// The pool epoch these handles belong to: a reconnect may invalidate every handle.
    epoch: u64,
    /// A version's key object (an AES secret key or a private key) and its class: a handle is only
    /// used for the class it was found as.
    map: HashMap<MaterialId, (ObjectClass, ObjectHandle)>,
}

/// A [`KeyStore`] whose key material is generated and used inside a PKCS#11 token and never leaves
/// it, and whose key and alias records are token data objects. See the [crate docs](crate).
pub struct Pkcs11Store {
    pool: Pool,
    handles: RwLock<Handles>,
    seq: AtomicU64,
    /// Serialises token-object writes (generate, create, destroy). SoftHSM2 answers concurrent
    /// token-object creation on one token with an occasional `CKR_GENERAL_ERROR`, and these calls are
    /// rare next to Encrypt and Decrypt, which never take this lock. Always taken before a session is
    /// leased, never while one is held, so it cannot deadlock with the pool.
    writes: Mutex<()>,
    /// SubjectPublicKeyInfo DER of asymmetric versions, read from the token once.
    public_keys: RwLock<HashMap<MaterialId, Vec<u8>>>,
    /// Per OAEP hash (SHA-1, SHA-256): whether the token refused `CKM_RSA_PKCS_OAEP` with it, so
    /// decryption runs `CKM_RSA_X_509` in the token and EME-OAEP decoding here.
    oaep_refused: [AtomicBool; 2],
}

impl fmt::Debug for Pkcs11Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .handles
            .read()
            .map(|h| h.map.len())
            .unwrap_or_else(|p| p.into_inner().map.len());
        f.debug_struct("Pkcs11Store")
            .field("pool", &self.pool)
            .field("cached_handles", &cached)
            .finish()
    }
}

/// The `CKA_LABEL` of the material object of `id`.
pub fn material_label(id: &MaterialId) -> String {
    format!("{MATERIAL_LABEL_PREFIX}{}/{}", id.key_id, id.version_id)
}

fn key_label(id: &KeyId) -> String {
    format!("{KEY_LABEL_PREFIX}{id}")
}

fn alias_label(name: &AliasName) -> String {
    format!("{ALIAS_LABEL_PREFIX}{name}")
}

fn parse_material_label(label: &str) -> Option<MaterialId> {
    let rest = label.strip_prefix(MATERIAL_LABEL_PREFIX)?;
    let (key, version) = rest.split_once('/')?;
    Some(MaterialId::new(
        KeyId::new(key).ok()?,
        KeyVersionId::new(version).ok()?,
    ))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Pkcs11Store {
    /// Opens the token: loads and initialises the module (once per process), finds the token by label,
    /// opens a session and logs in with the user PIN.
    ///
    /// # Errors
    /// [`Error::AccessDenied`] (`Forbidden.NoPermission`) for a wrong PIN; retryable
    /// [`Error::Unavailable`] when no token has the label; non-retryable [`Error::Unavailable`] when the
    /// module cannot be loaded; [`Error::InvalidParameter`] for a label longer than 32 bytes.
    pub fn open(config: &Pkcs11Config) -> Result<Self> {
        Ok(Self {
            pool: Pool::connect(config)?,
            handles: RwLock::new(Handles::default()),
            seq: AtomicU64::new(now_nanos()),
            writes: Mutex::new(()),
            public_keys: RwLock::new(HashMap::new()),
            oaep_refused: [AtomicBool::new(false), AtomicBool::new(false)],
        })
    }

    /// The token label.
    pub fn token_label(&self) -> &str {
        self.pool.label()
    }

    /// The module path.
    pub fn module(&self) -> &std::path::Path {
        self.pool.module()
    }

    fn subject_token(&self) -> String {
        format!("token {:?}", self.pool.label())
    }

    /// Runs `f` on a leased session, mapping failures (and reconnecting on a lost connection).
    fn call<T>(
        &self,
        subject: &str,
        f: impl FnOnce(&Session) -> std::result::Result<T, CkError>,
    ) -> Result<T> {
        let lease = self.pool.get()?;
        match f(&lease) {
            Ok(v) => Ok(v),
            Err(e) => Err(lease.fail(e, subject)),
        }
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_seq(&self) -> u64 {
        // Later than anything loaded and than any earlier save, even across processes (wall clock).
        self.seq.fetch_max(now_nanos(), Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn cached_handle(&self, id: &MaterialId, class: ObjectClass, epoch: u64) -> Option<ObjectHandle> {
        let h = self.handles.read().unwrap_or_else(PoisonError::into_inner);
        if h.epoch != epoch {
            return None;
        }
        h.map
            .get(id)
            .filter(|(c, _)| *c == class)
            .map(|(_, handle)| *handle)
    }

    fn cache_handle(&self, id: &MaterialId, class: ObjectClass, handle: ObjectHandle, epoch: u64) {
        let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        if epoch < h.epoch {
            return; // a session of an earlier epoch: its handles may be dead already
        }
        if epoch > h.epoch {
            h.map.clear();
            h.epoch = epoch;
        }
        h.map.insert(id.clone(), (class, handle));
    }

    fn forget_handle(&self, id: &MaterialId) {
        let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        h.map.remove(id);
    }

    fn forget_key_handles(&self, key: &KeyId) {
        let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        h.map.retain(|id, _| &id.key_id != key);
    }

    /// Finds the material object of class `class` (secret key, private or public key) of `id` on
    /// `session`; `None` when the token holds none.
    fn find_material(
        session: &Session,
        id: &MaterialId,
        class: ObjectClass,
    ) -> std::result::Result<Option<ObjectHandle>, CkError> {
        let found = session.find_objects(&[
            Attribute::Class(class),
            Attribute::Token(true),
            Attribute::Label(material_label(id).into_bytes()),
        ])?;
        Ok(found.first().copied())
    }

    /// Runs a cryptographic call `f` with the secret key of `id`: see [`Pkcs11Store::with_key`].
    fn with_material<T>(
        &self,
        id: &MaterialId,
        f: impl FnMut(&Session, ObjectHandle) -> std::result::Result<T, CkError>,
    ) -> Result<T> {
        self.with_key(id, ObjectClass::SECRET_KEY, f)
    }

    /// Runs a cryptographic call `f` with the key of class `class` of `id` (a version's secret key or
    /// private key: one per version, so the handle cache holds the one the version uses), looking its
    /// handle up (and caching it) when needed. A cached handle the token no longer knows is looked up
    /// once more by label, so an object destroyed behind our back is reported as `KeyNotFound` naming
    /// the key and version.
    fn with_key<T>(
        &self,
        id: &MaterialId,
        class: ObjectClass,
        mut f: impl FnMut(&Session, ObjectHandle) -> std::result::Result<T, CkError>,
    ) -> Result<T> {
        let subject = id.to_string();
        let lease: Lease<'_> = self.pool.get()?;
        let epoch = lease.epoch();
        let find = |lease: &Lease<'_>| match Self::find_material(lease, id, class) {
            Ok(Some(h)) => {
                self.cache_handle(id, class, h, epoch);
                Ok(h)
            }
            Ok(None) => Err(None),
            Err(e) => Err(Some(e)),
        };
        let mut from_cache = true;
        let mut handle = match self.cached_handle(id, class, epoch) {
            Some(h) => h,
            None => {
                from_cache = false;
                match find(&lease) {
                    Ok(h) => h,
                    Err(None) => return Err(Self::missing(lease, id)),
                    Err(Some(e)) => return Err(lease.fail(e, &subject)),
                }
            }
        };
        loop {
            match f(&lease, handle) {
                Ok(v) => return Ok(v),
                Err(CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _)) => {
                    self.forget_handle(id);
                    if !from_cache {
                        return Err(Self::missing(lease, id));
                    }
                    // The cached handle went stale: look the object up once more.
                    from_cache = false;
                    handle = match find(&lease) {
                        Ok(h) => h,
                        Err(None) => return Err(Self::missing(lease, id)),
                        Err(Some(e)) => return Err(lease.fail(e, &subject)),
                    };
                }
                Err(e) => return Err(lease.fail(e, &subject)),
            }
        }
    }

    /// The token holds no material for `id`, or the process was logged out (private objects are then
    /// invisible): `KeyNotFound` naming the key and version, or a retryable lost login.
    fn missing(lease: Lease<'_>, id: &MaterialId) -> Error {
        if lease.logged_out() {
            return lease.lost_login(&id.to_string());
        }
        missing_material(id)
    }

    /// Finds the record data objects labelled `label`.
    fn find_records(session: &Session, label: &str) -> std::result::Result<Vec<ObjectHandle>, CkError> {
        session.find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Application(APPLICATION.as_bytes().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
    }

    /// Writes a record atomically: a new data object first, then the old ones are destroyed. A crash
    /// in between leaves two objects, and [`KeyStore::load`] keeps the one with the higher sequence.
    fn put_record<T: Serialize>(&self, label: &str, record: &T) -> Result<()> {
        let value = serde_json::to_vec(&Envelope {
            format: RECORD_FORMAT,
            seq: self.next_seq(),
            record,
        })
        .map_err(|e| Error::Internal(format!("cannot encode record {label}: {e}")))?;
        let _w = self.write_lock();
        self.call(label, |s| {
            let old = Self::find_records(s, label)?;
            s.create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Modifiable(false),
                Attribute::Application(APPLICATION.as_bytes().to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Value(value),
            ])?;
            // The new record is durable; a stale copy left by a failure here loses at the next load.
            for h in old {
                let _ = s.destroy_object(h);
            }
            Ok(())
        })
    }

    fn delete_records(&self, label: &str) -> Result<()> {
        let _w = self.write_lock();
        self.call(label, |s| {
            for h in Self::find_records(s, label)? {
                s.destroy_object(h)?;
            }
            Ok(())
        })
    }

    /// Reads every kmskit object of the token: material handles (cached), and record objects.
    fn scan(&self) -> Result<Scan> {
        let token = self.subject_token();
        let lease = self.pool.get()?;
        let epoch = lease.epoch();
        let scanned = (|| -> std::result::Result<Scan, CkError> {
            let mut scan = Scan::default();
            // A version's material: its AES key, or the private key of its key pair.
            for class in [ObjectClass::SECRET_KEY, ObjectClass::PRIVATE_KEY] {
                for h in lease.find_objects(&[Attribute::Class(class), Attribute::Token(true)])? {
                    let attrs = lease.get_attributes(h, &[AttributeType::Label])?;
                    if let Some(Attribute::Label(l)) = attrs.first() {
                        if let Some(id) = std::str::from_utf8(l).ok().and_then(parse_material_label) {
                            scan.material.push((id, (class, h)));
                        }
                    }
                }
            }
            let records = lease.find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Application(APPLICATION.as_bytes().to_vec()),
            ])?;
            for h in records {
                let attrs = lease.get_attributes(h, &[AttributeType::Label, AttributeType::Value])?;
                let mut label = None;
                let mut value = None;
                for a in attrs {
                    match a {
                        Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
                        Attribute::Value(v) => value = Some(v),
                        _ => {}
                    }
                }
                scan.records
                    .push((h, label.unwrap_or_default(), value.unwrap_or_default()));
            }
            Ok(scan)
        })();
        match scanned {
            Ok(scan) => {
                let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
                h.epoch = epoch;
                h.map = scan.material.iter().cloned().collect();
                Ok(scan)
            }
            Err(e) => Err(lease.fail(e, &token)),
        }
    }
}

#[derive(Default)]
struct Scan {
    material: Vec<(MaterialId, (ObjectClass, ObjectHandle))>,
    records: Vec<(ObjectHandle, String, Vec<u8>)>,
}

fn missing_material(id: &MaterialId) -> Error {
    Error::KeyNotFound(format!(
        "{} (the token holds no material for version {}: destroyed outside kmskit?)",
        id.key_id, id.version_id
    ))
}

/// What the token returned for an RSA-OAEP ciphertext.
enum OaepOutput {
    /// `CKM_RSA_PKCS_OAEP` decrypted it.
    Plaintext(Zeroizing<Vec<u8>>),
    /// `CKM_RSA_X_509` returned the encoded message, to be decoded here.
    Encoded(Zeroizing<Vec<u8>>),
}

/// The digest length every signature algorithm of the store signs (SHA-256).
const DIGEST_LEN: usize = 32;

/// How an asymmetric key spec lives in the token: a key pair of a curve, or an RSA key pair.
#[derive(Clone, Copy, Debug)]
enum Pair {
    Ec(Curve),
    Rsa { bits: usize },
}

impl Pair {
    /// The key pair for `spec`; `Rejected.UnsupportedOperation` for the specs the store does not hold
    /// as key pairs.
    fn of(spec: KeySpec) -> Result<Pair> {
        match spec {
            KeySpec::EcP256 => Ok(Pair::Ec(Curve::P256)),
            KeySpec::EcP256K => Ok(Pair::Ec(Curve::K256)),
            KeySpec::Rsa2048 => Ok(Pair::Rsa { bits: 2048 }),
            KeySpec::Rsa3072 => Ok(Pair::Rsa { bits: 3072 }),
            KeySpec::EcSm2 => Err(Error::Unsupported(
                "key spec EC_SM2 in a PKCS#11 token: PKCS#11 has no standard SM2 signature or \
                 encryption mechanism"
                    .to_owned(),
            )),
            other => Err(Error::Unsupported(format!(
                "key spec {other} as a key pair in a PKCS#11 token"
            ))),
        }
    }
}

impl Pkcs11Store {
    /// Generates the key pair of an asymmetric version in the token: both objects labelled with the
    /// material label and `CKA_ID` = the key id, the private key sensitive and never extractable.
    /// RSA private keys may sign and decrypt (the store does not know the key's usage; the engine
    /// enforces it), EC private keys only sign.
    fn generate_pair(&self, id: &MaterialId, pair: Pair) -> Result<()> {
        let subject = id.to_string();
        let label = material_label(id).into_bytes();
        let key_id = id.key_id.as_str().as_bytes().to_vec();
        let rsa = matches!(pair, Pair::Rsa { .. });
        let mut public = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Verify(true),
            Attribute::Encrypt(rsa),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::Modifiable(false),
            Attribute::Label(label.clone()),
            Attribute::Id(key_id.clone()),
        ];
        let mut private = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(rsa),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Modifiable(false),
            Attribute::Label(label),
            Attribute::Id(key_id),
        ];
        let mechanism = match pair {
            Pair::Ec(curve) => {
                public.push(Attribute::KeyType(KeyType::EC));
                public.push(Attribute::EcParams(curve.oid_der().to_vec()));
                private.push(Attribute::KeyType(KeyType::EC));
                Mechanism::EccKeyPairGen
            }
            Pair::Rsa { bits } => {
                public.push(Attribute::KeyType(KeyType::RSA));
                public.push(Attribute::ModulusBits((bits as u64).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                private.push(Attribute::KeyType(KeyType::RSA));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let _w = self.write_lock();
        let lease = self.pool.get()?;
        let epoch = lease.epoch();
        match lease.generate_key_pair(&mechanism, &public, &private) {
            Ok((_, private)) => {
                self.cache_handle(id, ObjectClass::PRIVATE_KEY, private, epoch);
                Ok(())
            }
            Err(e) => Err(lease.fail(e, &subject)),
        }
    }
}

/// The SubjectPublicKeyInfo DER of a public key object's attributes, checked against the spec.
fn spki_of(pair: Pair, spec: KeySpec, attrs: &[Attribute], subject: &str) -> Result<Vec<u8>> {
    let wrong = |what: &str| {
        Error::Internal(format!(
            "the public key object of {subject} is not a {spec} key: {what}"
        ))
    };
    let find = |t: AttributeType| {
        attrs
            .iter()
            .find_map(|a| match a {
                Attribute::EcParams(v) if t == AttributeType::EcParams => Some(v),
                Attribute::EcPoint(v) if t == AttributeType::EcPoint => Some(v),
                Attribute::Modulus(v) if t == AttributeType::Modulus => Some(v),
                Attribute::PublicExponent(v) if t == AttributeType::PublicExponent => Some(v),
                _ => None,
            })
            .ok_or_else(|| wrong(&format!("no {t:?}")))
    };
    match pair {
        Pair::Ec(curve) => {
            if find(AttributeType::EcParams)?[..] != curve.oid_der()[..] {
                return Err(wrong("CKA_EC_PARAMS names another curve"));
            }
            let point = der::ec_point(curve, find(AttributeType::EcPoint)?)?;
            Ok(der::ec_spki(curve, point))
        }
        Pair::Rsa { bits } => {
            let modulus = find(AttributeType::Modulus)?;
            let found = der::bit_len(modulus);
            if found != bits {
                return Err(wrong(&format!("a {found}-bit modulus")));
            }
            Ok(der::rsa_spki(modulus, find(AttributeType::PublicExponent)?))
        }
    }
}

/// An RSA signature as the token returned it, checked to be one modulus long.
fn rsa_signature(bits: usize, sig: Vec<u8>) -> Result<Vec<u8>> {
    if sig.len() != bits / 8 {
        return Err(Error::Internal(format!(
            "C_Sign returned {} bytes for an RSA-{bits} key",
            sig.len()
        )));
    }
    Ok(sig)
}

fn unsupported_asym(spec: KeySpec, alg: AsymmetricAlgorithm) -> Error {
    Error::Unsupported(format!("algorithm {alg} with a {spec} key in a PKCS#11 token"))
}

fn unsupported(alg: Algorithm) -> Error {
    Error::Unsupported(format!(
        "the PKCS#11 store seals with AES-256-GCM only, not {alg:?}"
    ))
}

/// One record found in the token, newest per label.
struct Found<T> {
    seq: u64,
    handle: ObjectHandle,
    record: T,
}

fn decode<T: for<'de> Deserialize<'de>>(value: &[u8]) -> std::result::Result<(u64, T), String> {
    let env: Envelope<T> = serde_json::from_slice(value).map_err(|e| format!("not a kmskit record: {e}"))?;
    if env.format != RECORD_FORMAT {
        return Err(format!(
            "record format {} is not supported (expected {RECORD_FORMAT})",
            env.format
        ));
    }
    Ok((env.seq, env.record))
}

fn keep_newest<T>(
    map: &mut BTreeMap<String, Found<T>>,
    stale: &mut Vec<ObjectHandle>,
    label: String,
    f: Found<T>,
) {
    match map.get(&label) {
        Some(existing) if existing.seq >= f.seq => stale.push(f.handle),
        Some(existing) => {
            stale.push(existing.handle);
            map.insert(label, f);
        }
        None => {
            map.insert(label, f);
        }
    }
}

impl KeyStore for Pkcs11Store {
    fn protection_level(&self) -> ProtectionLevel {
        ProtectionLevel::Hsm
    }

    fn load(&self) -> Result<Loaded> {
        let token = self.subject_token();
        let scan = self.scan()?;
        let mut problems = Vec::new();
        let mut keys: BTreeMap<String, Found<KeyRecord>> = BTreeMap::new();
        let mut aliases: BTreeMap<String, Found<AliasRecord>> = BTreeMap::new();
        let mut stale = Vec::new();
        let mut max_seq = 0;
        for (handle, label, value) in scan.records {
            let corrupted = |reason: String| Error::Corrupted {
                path: token.clone(),
                record: label.clone(),
                reason,
            };
            if let Some(id) = label.strip_prefix(KEY_LABEL_PREFIX) {
                match decode::<KeyRecord>(&value) {
                    Ok((seq, rec)) if rec.key_id.as_str() == id => {
                        max_seq = max_seq.max(seq);
                        keep_newest(
                            &mut keys,
                            &mut stale,
                            label,
                            Found {
                                seq,
                                handle,
                                record: rec,
                            },
                        );
                    }
                    Ok((_, rec)) => {
                        problems.push(corrupted(format!("holds the record of key {}", rec.key_id)))
                    }
                    Err(reason) => problems.push(corrupted(reason)),
                }
            } else if let Some(name) = label.strip_prefix(ALIAS_LABEL_PREFIX) {
                match decode::<AliasRecord>(&value) {
                    Ok((seq, rec)) if rec.name.as_str() == name => {
                        max_seq = max_seq.max(seq);
                        keep_newest(
                            &mut aliases,
                            &mut stale,
                            label,
                            Found {
                                seq,
                                handle,
                                record: rec,
                            },
                        );
                    }
                    Ok((_, rec)) => {
                        problems.push(corrupted(format!("holds the record of alias {}", rec.name)))
                    }
                    Err(reason) => problems.push(corrupted(reason)),
                }
            } else {
                problems.push(corrupted(
                    "an object of application kmskit with an unknown label".to_owned(),
                ));
            }
        }
        self.seq.fetch_max(max_seq, Ordering::SeqCst);
        // Copies superseded by a newer one (a crash between create and destroy): clean up, best effort.
        if !stale.is_empty() {
            let _w = self.write_lock();
            let _ = self.call(&token, |s| {
                for h in stale {
                    let _ = s.destroy_object(h);
                }
                Ok(())
            });
        }
        let held: std::collections::HashSet<&MaterialId> = scan.material.iter().map(|(id, _)| id).collect();
        let keys: Vec<KeyRecord> = keys.into_values().map(|f| f.record).collect();
        for k in &keys {
            if k.purged {
                continue;
            }
            for id in k.material_ids() {
                if !held.contains(&id) {
                    problems.push(Error::Corrupted {
                        path: token.clone(),
                        record: key_label(&k.key_id),
                        reason: format!(
                            "the token holds no material for key {} version {} (destroyed outside kmskit?)",
                            id.key_id, id.version_id
                        ),
                    });
                }
            }
        }
        Ok(Loaded::new(
            keys,
            aliases.into_values().map(|f| f.record).collect(),
            problems,
        ))
    }

    fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()> {
        if !spec.is_symmetric() {
            return self.generate_pair(id, Pair::of(spec)?);
        }
        if algorithm_for(spec)? != Algorithm::Aes256Gcm {
            return Err(Error::Unsupported(format!("key spec {spec} in a PKCS#11 token")));
        }
        let subject = id.to_string();
        let _w = self.write_lock();
        let lease = self.pool.get()?;
        let epoch = lease.epoch();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen((KEY_LEN as u64).into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Modifiable(false),
            Attribute::Label(material_label(id).into_bytes()),
            Attribute::Id(id.key_id.as_str().as_bytes().to_vec()),
        ];
        match lease.generate_key(&Mechanism::AesKeyGen, &template) {
            Ok(h) => {
                self.cache_handle(id, ObjectClass::SECRET_KEY, h, epoch);
                Ok(())
            }
            Err(e) => Err(lease.fail(e, &subject)),
        }
    }

    fn seal(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        if alg != Algorithm::Aes256Gcm {
            return Err(unsupported(alg));
        }
        let out = self.with_material(id, |s, key| {
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            s.encrypt(&Mechanism::AesGcm(params), key, buf)
        })?;
        let n = buf.len();
        if out.len() != n + TAG_LEN {
            return Err(Error::Internal(format!(
                "C_Encrypt (AES-GCM) returned {} bytes for {n} bytes of plaintext",
                out.len()
            )));
        }
        buf.copy_from_slice(&out[..n]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&out[n..]);
        Ok(tag)
    }

    fn open(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if alg != Algorithm::Aes256Gcm || buf.len() < TAG_LEN {
            return Err(Error::DecryptFailed);
        }
        let plain = Zeroizing::new(self.with_material(id, |s, key| {
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            s.decrypt(&Mechanism::AesGcm(params), key, buf)
        })?);
        if plain.len() != buf.len() - TAG_LEN {
            return Err(Error::DecryptFailed);
        }
        buf.truncate(plain.len());
        buf.copy_from_slice(&plain);
        Ok(())
    }

    fn sign_digest(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        let pair = Pair::of(spec)?;
        if !alg.fits(spec) || alg.usage() != KeyUsage::SignVerify {
            return Err(unsupported_asym(spec, alg));
        }
        if digest.len() != DIGEST_LEN {
            return Err(Error::invalid(
                "Digest",
                format!(
                    "{alg} signs a {DIGEST_LEN}-byte digest, not {} bytes",
                    digest.len()
                ),
            ));
        }
        let sign = |mechanism: &Mechanism<'_>, data: &[u8]| {
            self.with_key(id, ObjectClass::PRIVATE_KEY, |s, key| {
                s.sign(mechanism, key, data)
            })
        };
        match (pair, alg) {
            (Pair::Ec(curve), AsymmetricAlgorithm::EcdsaSha256) => {
                der::ecdsa_raw_to_der(curve, &sign(&Mechanism::Ecdsa, digest)?)
            }
            (Pair::Rsa { bits }, AsymmetricAlgorithm::RsaPkcs1Sha256) => {
                let mut info = der::SHA256_DIGEST_INFO_PREFIX.to_vec();
                info.extend_from_slice(digest);
                rsa_signature(bits, sign(&Mechanism::RsaPkcs, &info)?)
            }
            (Pair::Rsa { bits }, AsymmetricAlgorithm::RsaPssSha256) => {
                let params = PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: (DIGEST_LEN as u64).into(),
                };
                rsa_signature(bits, sign(&Mechanism::RsaPkcsPss(params), digest)?)
            }
            _ => Err(unsupported_asym(spec, alg)),
        }
    }

    fn asymmetric_decrypt(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let pair = Pair::of(spec)?;
        let (bits, hash) = match (pair, alg) {
            (Pair::Rsa { bits }, AsymmetricAlgorithm::RsaesOaepSha256) => (bits, OaepHash::Sha256),
            (Pair::Rsa { bits }, AsymmetricAlgorithm::RsaesOaepSha1) => (bits, OaepHash::Sha1),
            _ => return Err(unsupported_asym(spec, alg)),
        };
        let (mech_hash, mgf, refused) = match hash {
            OaepHash::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, &self.oaep_refused[0]),
            OaepHash::Sha256 => (
                MechanismType::SHA256,
                PkcsMgfType::MGF1_SHA256,
                &self.oaep_refused[1],
            ),
        };
        let k = bits / 8;
        if ciphertext.len() != k {
            return Err(Error::DecryptFailed);
        }
        let out = self.with_key(id, ObjectClass::PRIVATE_KEY, |s, key| {
            if !refused.load(Ordering::Relaxed) {
                let params = PkcsOaepParams::new(mech_hash, mgf, PkcsOaepSource::empty());
                match s.decrypt(&Mechanism::RsaPkcsOaep(params), key, ciphertext) {
                    Ok(plain) => return Ok(OaepOutput::Plaintext(Zeroizing::new(plain))),
                    // The token cannot run OAEP with this hash (SoftHSM2 2.6: SHA-1 only).
                    Err(CkError::Pkcs11(
                        RvError::ArgumentsBad | RvError::MechanismParamInvalid | RvError::MechanismInvalid,
                        Function::DecryptInit,
                    )) => refused.store(true, Ordering::Relaxed),
                    Err(e) => return Err(e),
                }
            }
            s.decrypt(&Mechanism::RsaX509, key, ciphertext)
                .map(|em| OaepOutput::Encoded(Zeroizing::new(em)))
        })?;
        match out {
            OaepOutput::Plaintext(plain) => Ok(plain),
            OaepOutput::Encoded(em) => oaep::decode(hash, k, &em),
        }
    }

    fn public_key(&self, id: &MaterialId, spec: KeySpec) -> Result<Vec<u8>> {
        let pair = Pair::of(spec)?;
        if let Some(spki) = self
            .public_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(spki.clone());
        }
        let subject = id.to_string();
        let lease = self.pool.get()?;
        let handle = match Self::find_material(&lease, id, ObjectClass::PUBLIC_KEY) {
            Ok(Some(h)) => h,
            Ok(None) => return Err(Self::missing(lease, id)),
            Err(e) => return Err(lease.fail(e, &subject)),
        };
        let types = match pair {
            Pair::Ec(_) => [AttributeType::EcParams, AttributeType::EcPoint],
            Pair::Rsa { .. } => [AttributeType::Modulus, AttributeType::PublicExponent],
        };
        let attrs = match lease.get_attributes(handle, &types) {
            Ok(a) => a,
            Err(e) => return Err(lease.fail(e, &subject)),
        };
        drop(lease);
        let spki = spki_of(pair, spec, &attrs, &subject)?;
        self.public_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), spki.clone());
        Ok(spki)
    }

    fn destroy(&self, key: &KeyId) -> Result<()> {
        let subject = key.to_string();
        let _w = self.write_lock();
        let result = self.call(&subject, |s| {
            // Secret keys, and private and public keys of key pairs.
            let found = s.find_objects(&[
                Attribute::Token(true),
                Attribute::Id(key.as_str().as_bytes().to_vec()),
            ])?;
            // Only kmskit's own material objects of this key, whatever else shares the CKA_ID.
            let prefix = format!("{MATERIAL_LABEL_PREFIX}{key}/");
            for h in found {
                let ours = s
                    .get_attributes(h, &[AttributeType::Label])?
                    .iter()
                    .any(|a| matches!(a, Attribute::Label(l) if l.starts_with(prefix.as_bytes())));
                if ours {
                    s.destroy_object(h)?;
                }
            }
            Ok(())
        });
        self.forget_key_handles(key);
        self.public_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| &id.key_id != key);
        result
    }

    fn save_key(&self, record: &KeyRecord) -> Result<()> {
        self.put_record(&key_label(&record.key_id), record)
    }

    fn save_alias(&self, alias: &AliasRecord) -> Result<()> {
        self.put_record(&alias_label(&alias.name), alias)
    }

    fn delete_alias(&self, name: &AliasName) -> Result<()> {
        self.delete_records(&alias_label(name))
    }
}
