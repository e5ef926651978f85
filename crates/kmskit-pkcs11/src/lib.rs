//! # kmskit-pkcs11
//!
//! [`Pkcs11Store`], a [`KeyStore`](kmskit_core::KeyStore) that keeps keys in a PKCS#11 token (an HSM,
//! a cloud HSM, a YubiHSM, or SoftHSM2 for tests) through [`cryptoki`], and [`Pkcs11Kms`] =
//! [`Kms<Pkcs11Store>`](kmskit_core::Kms): the full kmskit engine (lifecycle, aliases, deletion windows,
//! the blob format) with key material that is generated inside the token and never leaves it.
//! [`ProtectionLevel`](kmskit_core::ProtectionLevel) is `HSM`.
//!
//! ```no_run
//! use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef};
//! use kmskit_pkcs11::{Pin, Pkcs11Config, Pkcs11Kms, Pkcs11KmsExt};
//!
//! # fn main() -> kmskit_core::Result<()> {
//! // A token labelled "kmskit" with user PIN 1234, e.g. made by
//! // `softhsm2-util --init-token --free --label kmskit --so-pin 5678 --pin 1234`.
//! let config = Pkcs11Config::new("/usr/lib/softhsm/libsofthsm2.so", "kmskit", Pin::new("1234"));
//! // Or: Pkcs11Config::from_env()?  (KMSKIT_PKCS11_MODULE, _TOKEN, _PIN, _POOL_SIZE)
//! let kms = Pkcs11Kms::open_pkcs11(&config)?; // a wrong PIN fails here: Forbidden.NoPermission
//! let caller = Caller::local();
//! let ctx = EncryptionContext::from_pairs([("table", "orders")])?;
//! kmskit_core::block_on(async {
//!     let key = kms.create_key(&caller, CreateKey::new("orders")).await?;
//!     assert_eq!(key.protection_level.as_str(), "HSM");
//!     let enc = kms.encrypt(&caller, &KeyRef::Id(key.key_id), b"Hello HSM", &ctx).await?;
//!     let dec = kms.decrypt(&caller, &enc.ciphertext_blob, &ctx).await?;
//!     assert_eq!(&dec.plaintext[..], b"Hello HSM");
//!     Ok(())
//! })
//! # }
//! ```
//!
//! The `pkcs11_softhsm` example (`examples/pkcs11_softhsm.rs`) runs this against SoftHSM2 with the
//! set-up steps in its doc comment.
//!
//! ## What lives in the token
//!
//! | object | class | attributes |
//! |---|---|---|
//! | key material, one per key version | `CKO_SECRET_KEY`, `CKK_AES`, 32 bytes | `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, `CKA_ENCRYPT` and `CKA_DECRYPT` only (no wrap, unwrap, sign, derive), not modifiable; `CKA_LABEL` = `kmskit/material/<key id>/<version id>` ([`material_label`]), `CKA_ID` = the key id |
//! | an asymmetric version's private key (`EC_P256`, `EC_P256K`, `RSA_2048`, `RSA_3072`) | `CKO_PRIVATE_KEY`, `CKK_EC` (`CKA_EC_PARAMS` = the named curve prime256v1 or secp256k1) or `CKK_RSA` (e = 65537) | as AES material: `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, not modifiable, no unwrap or derive; `CKA_SIGN`, and for RSA also `CKA_DECRYPT` (the store is not told the key's usage; the engine enforces it); same label and `CKA_ID` |
//! | its public key | `CKO_PUBLIC_KEY` | `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_VERIFY` (RSA: `CKA_ENCRYPT`), not modifiable; same label and `CKA_ID` |
//! | a key record | `CKO_DATA` | `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_APPLICATION` = `kmskit`, `CKA_LABEL` = `kmskit/key/<key id>`, `CKA_VALUE` = JSON `{format, seq, record}` |
//! | an alias record | `CKO_DATA` | as a key record, `CKA_LABEL` = `kmskit/alias/<alias name>` |
//!
//! Material is made by `C_GenerateKey` (`CKM_AES_KEY_GEN`) inside the token, and Encrypt, Decrypt and
//! the data-key calls run `CKM_AES_GCM` in the token (96-bit nonce, 128-bit tag, the blob header and
//! encryption context as AAD): the engine never sees a key byte. `CKA_VALUE` of a material object
//! cannot be read, and `C_WrapKey` refuses it (`CKR_KEY_UNEXTRACTABLE`); both are tested. Purging a
//! key (after its deletion window) is `C_DestroyObject` on every version's object (both objects of a
//! key pair).
//!
//! Asymmetric versions are key pairs made by `C_GenerateKeyPair` (`CKM_EC_KEY_PAIR_GEN`,
//! `CKM_RSA_PKCS_KEY_PAIR_GEN`). Private-key operations run in the token over the digest the engine
//! passes:
//!
//! | algorithm | in the token | here |
//! |---|---|---|
//! | `ECDSA_SHA_256` | `CKM_ECDSA` over the 32-byte digest | the raw `r ‖ s` becomes a DER `ECDSA-Sig-Value` |
//! | `RSA_PKCS1_SHA_256` | `CKM_RSA_PKCS` over `DigestInfo(SHA-256, digest)` | — |
//! | `RSA_PSS_SHA_256` | `CKM_RSA_PKCS_PSS`, hash SHA-256, MGF1-SHA-256, salt 32 bytes | — |
//! | `RSAES_OAEP_SHA_256`, `RSAES_OAEP_SHA_1` | `CKM_RSA_PKCS_OAEP`, same hash for MGF1, no label | — |
//!
//! A token that refuses `CKM_RSA_PKCS_OAEP` with the hash asked for (`CKR_ARGUMENTS_BAD`,
//! `CKR_MECHANISM_PARAM_INVALID`; SoftHSM2 2.6 accepts only SHA-1 there) decrypts with
//! `CKM_RSA_X_509` instead, and the store decodes EME-OAEP itself, in constant time and with one opaque
//! failure; the store remembers the refusal. The plaintext leaves the token either way. `EC_SM2` is
//! refused with `Rejected.UnsupportedOperation`: PKCS#11 has no standard SM2 mechanisms.
//!
//! The public key (`CKA_EC_POINT`, unwrapped from its DER OCTET STRING, or `CKA_MODULUS` and
//! `CKA_PUBLIC_EXPONENT`) is returned as a DER SubjectPublicKeyInfo, read once per version and cached;
//! the engine verifies and encrypts with it itself.
//!
//! ## Why the records are token data objects
//!
//! The alternative is a companion file store beside the token. Records live in the token instead
//! because:
//! - **One custody.** A key's record and its material are backed up, replicated (HSM clusters and
//!   cloud HSMs replicate token objects) and restored together; a companion directory can be lost,
//!   rolled back or restored from another day independently of the token, leaving material without
//!   records (unusable keys) or records without material.
//! - **One access control.** Records are `CKA_PRIVATE`: only a session logged in with the user PIN
//!   reads them, the same gate as the keys. A file store would need a second secret (its root key).
//! - **Every host with the token sees the same keys**, with no shared file system.
//!
//! The cost is token storage (a record is a few hundred bytes of JSON) and one object write per
//! change; changes are rare next to Encrypt and Decrypt, which touch no record. Each write creates the
//! new object before destroying the old one, and a record carries a sequence number, so a crash in
//! between leaves the old or the new record, never neither, and the next open keeps the newer and
//! removes the other. Durability is the module's: an HSM commits objects before `C_CreateObject`
//! returns. (SoftHSM2 writes object files without `fsync`; it is a test token.)
//!
//! On open, every record is read; a record that does not parse, and a key version whose material
//! object is missing (destroyed outside kmskit), are reported in
//! [`Kms::load_problems`](kmskit_core::Kms::load_problems) by label and key id; the rest loads.
//!
//! One engine per token at a time: like the file store, the engine holds the records in memory, so two
//! processes changing one token's keys would not see each other's changes.
//!
//! ## Sessions, login and failures
//!
//! - The module is loaded and `C_Initialize`d once per process and shared by every store on it
//!   ([`context`]); it is never finalised.
//! - The token is found by label ([`find_slot`]): SoftHSM and other modules reassign slot ids.
//! - A pool of read-write sessions ([`Pkcs11Config::with_pool_size`], default
//!   [`DEFAULT_POOL_SIZE`]) serves concurrent callers: a cryptoki `Session` is `Send` but not `Sync`
//!   and runs one operation at a time, so each call leases a session of its own for the length of its
//!   token call. Calls are blocking, as the [`KeyStore`](kmskit_core::KeyStore) contract says.
//! - The user logs in once per token (login is per application in PKCS#11). A wrong PIN is refused at
//!   open with `Forbidden.NoPermission`, also when this process is already logged in to the token
//!   through another store (the PIN is compared with the one that logged in).
//! - A lost session, token or library (`CKR_SESSION_HANDLE_INVALID`, `CKR_DEVICE_REMOVED`,
//!   `CKR_TOKEN_NOT_PRESENT`, `CKR_CRYPTOKI_NOT_INITIALIZED`, …) fails the call with a retryable
//!   `ServiceUnavailableTemporary`; the pool drops its sessions, and the next call finds the token by
//!   label again, opens new sessions and logs in again. A login lost behind our back (a `C_Logout`
//!   elsewhere in the process, a token reset: private objects then look missing) is recognised from
//!   the session state and handled the same way, rather than reported as a missing key.
//!
//! Errors are mapped in one function:
//!
//! | PKCS#11 | kmskit code |
//! |---|---|
//! | `CKR_ENCRYPTED_DATA_INVALID`, `CKR_ENCRYPTED_DATA_LEN_RANGE`, and `CKR_GENERAL_ERROR` from `C_Decrypt` (what SoftHSM answers for a bad tag or AAD, bad OAEP padding, an RSA ciphertext not below the modulus); an RSA ciphertext of the wrong length, and bad OAEP padding decoded here | `InvalidParameter`, the opaque decryption failure |
//! | `CKR_KEY_HANDLE_INVALID`, `CKR_OBJECT_HANDLE_INVALID`, material not in the token | `Forbidden.KeyNotFound`, naming the key id and version |
//! | `CKR_PIN_INCORRECT` and the other PIN and login errors | `Forbidden.NoPermission` |
//! | lost session, token or library | `ServiceUnavailableTemporary`, retryable |
//! | module cannot be loaded | `ServiceUnavailableTemporary`, not retryable |
//! | anything else | `InternalFailure`, with the `(C_Function, CKR_…)` pair |
//!
//! ## Tests
//!
//! The tests run on a real SoftHSM2 token. `scripts/test.sh` installs `softhsm2` when it is missing,
//! writes a private `SOFTHSM2_CONF` with its own token directory, and sets
//! `KMSKIT_PKCS11_MODULE`; the tests then initialise a token of their own per case
//! ([`init_token`]). Without `KMSKIT_PKCS11_MODULE` they are skipped with a message, except when `CI`
//! is set: then a missing module fails them.
//!
//! ## Crate features
//! - `aws-lc` (default), `rust-crypto` (default): passed on to kmskit-core (the token does the
//!   sealing either way).

#![forbid(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![doc(test(attr(deny(warnings))))]

mod config;
mod der;
mod error;
mod module;
mod oaep;
mod pool;
mod store;

pub use config::{DEFAULT_POOL_SIZE, MODULE_ENV, PIN_ENV, POOL_SIZE_ENV, Pin, Pkcs11Config, TOKEN_ENV};
/// The `cryptoki` crate this one is built on, for direct PKCS#11 work on the same [`context`].
pub use cryptoki;
pub use module::{MAX_LABEL_LEN, context, find_slot, init_token};
pub use store::{
    ALIAS_LABEL_PREFIX, APPLICATION, KEY_LABEL_PREFIX, MATERIAL_LABEL_PREFIX, Pkcs11Store, material_label,
};

use kmskit_core::{Kms, KmsConfig, Result};

/// The kmskit engine over [`Pkcs11Store`].
pub type Pkcs11Kms = Kms<Pkcs11Store>;

/// Constructors for [`Pkcs11Kms`].
pub trait Pkcs11KmsExt: Sized {
    /// Opens the token of `config` with default engine settings and loads its keys.
    ///
    /// # Errors
    /// As [`Pkcs11Store::open`], and when the token's records cannot be read at all.
    fn open_pkcs11(config: &Pkcs11Config) -> Result<Self>;

    /// Opens the token of `config` with `kms` settings (region, account, clock).
    ///
    /// # Errors
    /// As [`Pkcs11KmsExt::open_pkcs11`].
    fn open_pkcs11_with(config: &Pkcs11Config, kms: KmsConfig) -> Result<Self>;
}

impl Pkcs11KmsExt for Pkcs11Kms {
    fn open_pkcs11(config: &Pkcs11Config) -> Result<Self> {
        Self::open_pkcs11_with(config, KmsConfig::default())
    }

    fn open_pkcs11_with(config: &Pkcs11Config, kms: KmsConfig) -> Result<Self> {
        Kms::with_config(Pkcs11Store::open(config)?, kms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmskit_core::ErrorCode;

    #[test]
    fn a_module_that_cannot_be_loaded_is_a_permanent_unavailability() {
        let config = Pkcs11Config::new("/nonexistent/libkmskit-no-such-module.so", "t", Pin::new("1234"));
        let err = Pkcs11Store::open(&config).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ServiceUnavailableTemporary, "{err}");
        assert!(!err.is_retryable(), "{err}");
        assert!(
            err.to_string().contains("cannot load the PKCS#11 module"),
            "{err}"
        );
    }

    #[test]
    fn token_labels_are_checked_before_the_module_is_asked() {
        let err = init_token(
            std::path::Path::new("/nonexistent/libkmskit-no-such-module.so"),
            &"x".repeat(MAX_LABEL_LEN + 1),
            &Pin::new("1"),
            &Pin::new("2"),
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidParameter, "{err}");
    }
}
