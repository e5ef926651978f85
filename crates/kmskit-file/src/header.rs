//! The keystore header, `keystore.header`: one record (kind 1) whose plain JSON body says how to derive
//! the root key and lets a wrong one be recognised. Written once, atomically, when the keystore is made.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kmskit_core::{Error, Result, Timestamp};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::format::{self, FORMAT_VERSION, Header, Kind};
use crate::root::{Argon2Params, Derived, KdfParams, RootKey, derive_keys, random_array};

/// File name of the header.
pub(crate) const HEADER_FILE: &str = "keystore.header";

/// The cipher every sealed record uses in format version 1.
pub(crate) const CIPHER: &str = "AES-256-GCM";

/// The header's JSON body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct HeaderBody {
    /// Format version of the keystore (also in the record framing).
    pub(crate) format: u16,
    /// A random id naming this keystore.
    pub(crate) keystore_id: String,
    /// When it was made.
    pub(crate) created: Timestamp,
    /// The AEAD sealing records.
    pub(crate) cipher: String,
    /// How the root key is derived from a passphrase; absent for a raw root key.
    pub(crate) kdf: Option<KdfParams>,
    /// Base64 of the 32-byte HKDF salt.
    pub(crate) hkdf_salt: String,
    /// Base64 of the 32-byte verifier derived from the root key.
    pub(crate) verifier: String,
}

impl HeaderBody {
    /// A new header for `root`, and the keys derived for it.
    pub(crate) fn create(root: &RootKey, argon2: Argon2Params, dir: &Path) -> Result<(Self, Derived)> {
        let kdf = root.is_passphrase().then(|| KdfParams::new(argon2));
        let salt: [u8; 32] = random_array();
        let root_bytes = root.derive(kdf.as_ref(), dir)?;
        let derived = derive_keys(&root_bytes, &salt);
        let id: [u8; 16] = random_array();
        let body = Self {
            format: FORMAT_VERSION,
            keystore_id: id.iter().map(|b| format!("{b:02x}")).collect(),
            created: Timestamp::from_system(std::time::SystemTime::now()),
            cipher: CIPHER.to_owned(),
            kdf,
            hkdf_salt: B64.encode(salt),
            verifier: B64.encode(derived.verifier),
        };
        Ok((body, derived))
    }

    /// The header file's bytes.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Internal(format!("header encoding: {e}")))?;
        let mut out = Vec::new();
        format::encode_plain(&mut out, Kind::Header, "header", &json);
        Ok(out)
    }

    /// Parses the header file's bytes. Errors name `path`.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupted = |reason: String| Error::Corrupted {
            path: path.display().to_string(),
            record: "header".to_owned(),
            reason,
        };
        let info = match format::parse_header(bytes) {
            Header::Ok(info) => info,
            Header::NeedMore(_) => return Err(corrupted("truncated".into())),
            Header::Bad => {
                return Err(corrupted(
                    "not a kmskit keystore header (bad magic or header checksum)".into(),
                ));
            }
        };
        if bytes.len() < info.total_len() {
            return Err(corrupted("truncated".into()));
        }
        if bytes.len() > info.total_len() {
            return Err(corrupted("unexpected bytes after the header record".into()));
        }
        if info.kind != Kind::Header as u8 {
            return Err(corrupted(format!("record kind {} is not a header", info.kind)));
        }
        if let Err(why) = format::check_version(info.version, Some(Kind::Header)) {
            return Err(Error::Unsupported(format!("keystore {}: {why}", path.display())));
        }
        if format::check_body(&info, bytes) != format::BodyState::Ok {
            return Err(corrupted("checksum mismatch (damaged or edited)".into()));
        }
        let body = &bytes[info.body_start()..info.body_start() + info.body_len];
        let h: Self =
            serde_json::from_slice(body).map_err(|e| corrupted(format!("unreadable header: {e}")))?;
        if h.format != info.version {
            return Err(corrupted(format!(
                "format {} in the body differs from version {} in the framing",
                h.format, info.version
            )));
        }
        if h.cipher != CIPHER {
            return Err(Error::Unsupported(format!(
                "keystore {}: unknown cipher {:?}",
                path.display(),
                h.cipher
            )));
        }
        Ok(h)
    }

    /// Derives the keys from `root` and checks them against the verifier.
    ///
    /// A wrong root key gives [`Error::AccessDenied`].
    pub(crate) fn unlock(&self, root: &RootKey, dir: &Path, path: &Path) -> Result<Derived> {
        let corrupted = |reason: &str| Error::Corrupted {
            path: path.display().to_string(),
            record: "header".to_owned(),
            reason: reason.to_owned(),
        };
        let salt = B64
            .decode(&self.hkdf_salt)
            .map_err(|_| corrupted("hkdf_salt is not Base64"))?;
        let verifier = B64
            .decode(&self.verifier)
            .map_err(|_| corrupted("verifier is not Base64"))?;
        let root_bytes = root.derive(self.kdf.as_ref(), dir)?;
        let derived = derive_keys(&root_bytes, &salt);
        if !bool::from(derived.verifier.as_slice().ct_eq(&verifier)) {
            return Err(Error::AccessDenied {
                reason: format!("wrong root key for keystore {}", dir.display()),
                source: None,
            });
        }
        Ok(derived)
    }
}
