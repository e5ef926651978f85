//! Key types: spec, usage, state, origin, protection level, and the metadata DescribeKey returns.
//!
//! Enum values serialise with the model service's spellings (`Aliyun_AES_256`, `ENCRYPT/DECRYPT`, …), and
//! [`KeyMetadata`] serialises with its field names (`KeyId`, `KeyState`, …), so JSON output matches the
//! API spec.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::id::{KeyId, KeyVersionId};

macro_rules! api_enum {
    ($(#[$doc:meta])* $name:ident, $param:literal { $( $(#[$vdoc:meta])* $variant:ident => $s:literal, )* }) => {
        $(#[$doc])*
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $s)] $variant, )*
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The API spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $s, )* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            /// Parses the API spelling (case-sensitive, as the model service).
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $( $s => Ok($name::$variant), )*
                    _ => Err(Error::invalid($param, format!("unknown value {s:?}"))),
                }
            }
        }
    };
}

api_enum!(
    /// The kind of key material.
    KeySpec, "KeySpec" {
        /// AES-256 (AES-256-GCM).
        Aes256 => "Aliyun_AES_256",
        /// SM4 (SM4-GCM, GB/T 32907), through the same blob format as AES.
        Sm4 => "Aliyun_SM4",
        /// RSA 2048: RSA-PSS / PKCS#1 v1.5 signatures or RSAES-OAEP encryption.
        Rsa2048 => "RSA_2048",
        /// RSA 3072: RSA-PSS / PKCS#1 v1.5 signatures or RSAES-OAEP encryption.
        Rsa3072 => "RSA_3072",
        /// NIST P-256 (secp256r1): ECDSA signatures.
        EcP256 => "EC_P256",
        /// secp256k1: ECDSA signatures.
        EcP256K => "EC_P256K",
        /// SM2 (GB/T 32918): SM2DSA signatures or SM2PKE encryption.
        EcSm2 => "EC_SM2",
    }
);

impl KeySpec {
    /// Whether keys of this spec are symmetric.
    pub const fn is_symmetric(self) -> bool {
        matches!(self, KeySpec::Aes256 | KeySpec::Sm4)
    }

    /// The usages this spec allows (spec §6).
    pub const fn allowed_usages(self) -> &'static [KeyUsage] {
        match self {
            KeySpec::Aes256 | KeySpec::Sm4 => &[KeyUsage::EncryptDecrypt],
            KeySpec::EcP256 | KeySpec::EcP256K => &[KeyUsage::SignVerify],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::EcSm2 => {
                &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify]
            }
        }
    }

    /// The default usage for this spec.
    pub const fn default_usage(self) -> KeyUsage {
        match self {
            KeySpec::EcP256 | KeySpec::EcP256K => KeyUsage::SignVerify,
            _ => KeyUsage::EncryptDecrypt,
        }
    }
}

api_enum!(
    /// An algorithm of the asymmetric actions (AsymmetricSign/Verify/Encrypt/Decrypt), with the model
    /// service's spellings.
    AsymmetricAlgorithm, "Algorithm" {
        /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32.
        RsaPssSha256 => "RSA_PSS_SHA_256",
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RsaPkcs1Sha256 => "RSA_PKCS1_SHA_256",
        /// ECDSA over a SHA-256 digest; DER-encoded signature.
        EcdsaSha256 => "ECDSA_SHA_256",
        /// SM2 signature (GB/T 32918.2) over the digest SM3(Z(A) ‖ M); DER-encoded signature.
        Sm2Dsa => "SM2DSA",
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
        RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
        /// RSAES-OAEP with SHA-1 and MGF1-SHA-1.
        RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
        /// SM2 public-key encryption (GB/T 32918.4); DER-encoded ciphertext.
        Sm2Pke => "SM2PKE",
    }
);

impl AsymmetricAlgorithm {
    /// The usage a key needs for this algorithm.
    pub const fn usage(self) -> KeyUsage {
        match self {
            AsymmetricAlgorithm::RsaPssSha256
            | AsymmetricAlgorithm::RsaPkcs1Sha256
            | AsymmetricAlgorithm::EcdsaSha256
            | AsymmetricAlgorithm::Sm2Dsa => KeyUsage::SignVerify,
            AsymmetricAlgorithm::RsaesOaepSha256
            | AsymmetricAlgorithm::RsaesOaepSha1
            | AsymmetricAlgorithm::Sm2Pke => KeyUsage::EncryptDecrypt,
        }
    }

    /// Whether keys of `spec` can run this algorithm (whatever their usage).
    pub const fn fits(self, spec: KeySpec) -> bool {
        match self {
            AsymmetricAlgorithm::RsaPssSha256
            | AsymmetricAlgorithm::RsaPkcs1Sha256
            | AsymmetricAlgorithm::RsaesOaepSha256
            | AsymmetricAlgorithm::RsaesOaepSha1 => {
                matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072)
            }
            AsymmetricAlgorithm::EcdsaSha256 => matches!(spec, KeySpec::EcP256 | KeySpec::EcP256K),
            AsymmetricAlgorithm::Sm2Dsa | AsymmetricAlgorithm::Sm2Pke => matches!(spec, KeySpec::EcSm2),
        }
    }

    /// The digest length a signature algorithm signs (32 bytes for all of them: SHA-256 or SM3);
    /// `None` for encryption algorithms.
    pub const fn digest_len(self) -> Option<usize> {
        match self.usage() {
            KeyUsage::SignVerify => Some(32),
            KeyUsage::EncryptDecrypt => None,
        }
    }

    /// Refuses this algorithm for a key of `spec` and `usage` with `Rejected.UnsupportedOperation`
    /// (spec §8: wrong usage or an algorithm the key cannot run).
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming the mismatch.
    pub fn check(self, spec: KeySpec, usage: KeyUsage) -> Result<()> {
        if !self.fits(spec) {
            return Err(Error::Unsupported(format!(
                "algorithm {self} cannot be used with a {spec} key"
            )));
        }
        if self.usage() != usage {
            return Err(Error::Unsupported(format!(
                "algorithm {self} needs a {} key; this key is {usage}",
                self.usage()
            )));
        }
        Ok(())
    }
}

api_enum!(
    /// What a key may be used for.
    KeyUsage, "KeyUsage" {
        /// Encrypt and decrypt.
        EncryptDecrypt => "ENCRYPT/DECRYPT",
        /// Sign and verify.
        SignVerify => "SIGN/VERIFY",
    }
);

api_enum!(
    /// The lifecycle state of a key.
    KeyState, "KeyState" {
        /// Usable.
        Enabled => "Enabled",
        /// Not usable for cryptography until enabled.
        Disabled => "Disabled",
        /// Scheduled for deletion; purged at `DeleteDate` unless cancelled.
        PendingDeletion => "PendingDeletion",
        /// Waiting for imported material (origin `EXTERNAL`).
        PendingImport => "PendingImport",
    }
);

api_enum!(
    /// Where the key material came from.
    Origin, "Origin" {
        /// Generated by the KMS.
        Kms => "Aliyun_KMS",
        /// Imported by the user (BYOK).
        External => "EXTERNAL",
    }
);

api_enum!(
    /// How the key material is protected.
    ProtectionLevel, "ProtectionLevel" {
        /// In software (memory, file).
        Software => "SOFTWARE",
        /// In a hardware security module.
        Hsm => "HSM",
    }
);

api_enum!(
    /// The automatic-rotation status DescribeKey reports.
    AutomaticRotation, "AutomaticRotation" {
        /// Rotation on schedule.
        Enabled => "Enabled",
        /// No automatic rotation.
        Disabled => "Disabled",
        /// Enabled, but the key is disabled or pending deletion.
        Suspended => "Suspended",
    }
);

api_enum!(
    /// The spec of a generated data key.
    DataKeySpec, "KeySpec" {
        /// 32 bytes.
        Aes256 => "AES_256",
        /// 16 bytes.
        Aes128 => "AES_128",
    }
);

impl DataKeySpec {
    /// The key length in bytes.
    pub const fn byte_len(self) -> usize {
        match self {
            DataKeySpec::Aes256 => 32,
            DataKeySpec::Aes128 => 16,
        }
    }
}

/// Serialises `Option<Timestamp>` as the empty string when absent, as the model service does.
mod opt_ts {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_string()),
            None => s.serialize_str(""),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            Ok(None)
        } else {
            Timestamp::parse(&s).map(Some).map_err(serde::de::Error::custom)
        }
    }
}

/// Everything DescribeKey tells about a key, with the API's field names.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    /// The key id.
    pub key_id: KeyId,
    /// `acs:kms:<region>:<account>:key/<id>`.
    pub arn: String,
    /// Automatic rotation status.
    pub automatic_rotation: AutomaticRotation,
    /// When the key was made.
    pub creation_date: Timestamp,
    /// Who made it (the caller's account or principal).
    pub creator: String,
    /// The dedicated KMS instance id (empty: none).
    #[serde(rename = "DKMSInstanceId")]
    pub dkms_instance_id: String,
    /// When a key pending deletion will be purged (omitted unless `PendingDeletion`).
    #[serde(with = "opt_ts", default, skip_serializing_if = "Option::is_none")]
    pub delete_date: Option<Timestamp>,
    /// The description.
    pub description: String,
    /// The key spec.
    pub key_spec: KeySpec,
    /// The state.
    pub key_state: KeyState,
    /// The usage.
    pub key_usage: KeyUsage,
    /// When the key was last rotated (its creation if never).
    #[serde(with = "opt_ts")]
    pub last_rotation_date: Option<Timestamp>,
    /// When imported material expires (none: never; then omitted).
    #[serde(with = "opt_ts", default, skip_serializing_if = "Option::is_none")]
    pub material_expire_time: Option<Timestamp>,
    /// When the next automatic rotation is due (omitted unless a rotation policy is enabled or
    /// suspended, as the model service).
    #[serde(with = "opt_ts", default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<Timestamp>,
    /// Where the material came from.
    pub origin: Origin,
    /// The primary version (symmetric keys; omitted for asymmetric ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_version: Option<KeyVersionId>,
    /// How the material is protected.
    pub protection_level: ProtectionLevel,
    /// The rotation interval, `<seconds>s`, when rotation is enabled or suspended (else omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_interval: Option<String>,
    /// `Enabled` or `Disabled`.
    pub deletion_protection: String,
    /// Why deletion protection is on.
    pub deletion_protection_description: String,
}

/// A key version, as ListKeyVersions and DescribeKeyVersion return it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyVersion {
    /// The key id.
    pub key_id: KeyId,
    /// The version id.
    pub key_version_id: KeyVersionId,
    /// When the version was made.
    pub creation_date: Timestamp,
}

impl KeyVersion {
    /// A key version.
    pub fn new(key_id: KeyId, key_version_id: KeyVersionId, creation_date: Timestamp) -> Self {
        Self {
            key_id,
            key_version_id,
            creation_date,
        }
    }
}

/// A resource tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// The tag key (1–128 characters, not starting with `aliyun` or `acs:`).
    pub tag_key: String,
    /// The tag value (0–128 characters).
    pub tag_value: String,
}

impl Tag {
    /// Maximum tags on one key.
    pub const MAX_PER_KEY: usize = 20;

    /// A validated tag.
    ///
    /// # Errors
    /// `InvalidParameter` when the key is empty, too long or reserved, or the value is too long.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let tag = Tag {
            tag_key: key.into(),
            tag_value: value.into(),
        };
        tag.validate()?;
        Ok(tag)
    }

    /// Checks the length and reserved-prefix rules.
    ///
    /// # Errors
    /// `InvalidParameter` naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        validate_tag_key(&self.tag_key)?;
        if self.tag_value.chars().count() > 128 {
            return Err(Error::invalid(
                "Tags",
                "a tag value is longer than 128 characters",
            ));
        }
        Ok(())
    }
}

/// Checks a tag key: 1–128 characters, not starting with `aliyun` or `acs:`.
///
/// # Errors
/// `InvalidParameter` naming what is wrong.
pub fn validate_tag_key(key: &str) -> Result<()> {
    let n = key.chars().count();
    if n == 0 || n > 128 {
        return Err(Error::invalid("Tags", "a tag key must be 1 to 128 characters"));
    }
    let lower = key.to_ascii_lowercase();
    if lower.starts_with("aliyun") || lower.starts_with("acs:") {
        return Err(Error::invalid(
            "Tags",
            "tag keys may not start with \"aliyun\" or \"acs:\"",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_spellings() {
        assert_eq!(KeySpec::Aes256.as_str(), "Aliyun_AES_256");
        assert_eq!(
            "ENCRYPT/DECRYPT".parse::<KeyUsage>().unwrap(),
            KeyUsage::EncryptDecrypt
        );
        assert!("enabled".parse::<KeyState>().is_err());
        assert_eq!(serde_json::to_string(&Origin::External).unwrap(), "\"EXTERNAL\"");
        for s in KeyState::ALL {
            assert_eq!(s.as_str().parse::<KeyState>().unwrap(), *s);
        }
    }

    #[test]
    fn usage_rules() {
        assert_eq!(KeySpec::Aes256.allowed_usages(), &[KeyUsage::EncryptDecrypt]);
        assert_eq!(KeySpec::EcP256.default_usage(), KeyUsage::SignVerify);
        assert!(KeySpec::Rsa2048.allowed_usages().contains(&KeyUsage::SignVerify));
    }

    /// The optional fields are omitted when absent, as the model service (DeleteDate only while
    /// PendingDeletion, rotation fields only with a policy, PrimaryKeyVersion only for symmetric keys),
    /// and read back from either an omitted field or the empty string older kmskit versions wrote.
    #[test]
    fn optional_metadata_fields_are_omitted() {
        let json = serde_json::json!({
            "KeyId": "k1", "Arn": "acs:kms:r:1:key/k1", "AutomaticRotation": "Disabled",
            "CreationDate": "2026-01-01T00:00:00Z", "Creator": "local", "DKMSInstanceId": "",
            "DeleteDate": "", "Description": "", "KeySpec": "EC_P256", "KeyState": "Enabled",
            "KeyUsage": "SIGN/VERIFY", "LastRotationDate": "2026-01-01T00:00:00Z",
            "Origin": "Aliyun_KMS", "ProtectionLevel": "SOFTWARE", "DeletionProtection": "Disabled",
            "DeletionProtectionDescription": ""
        });
        let meta: KeyMetadata = serde_json::from_value(json).unwrap();
        assert_eq!((meta.delete_date, meta.next_rotation_date), (None, None));
        assert_eq!(meta.primary_key_version, None);
        let back = serde_json::to_value(&meta).unwrap();
        for absent in [
            "DeleteDate",
            "MaterialExpireTime",
            "NextRotationDate",
            "PrimaryKeyVersion",
            "RotationInterval",
        ] {
            assert!(back.get(absent).is_none(), "{absent} in {back}");
        }
        assert_eq!(back["LastRotationDate"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn tags_validate() {
        assert!(Tag::new("env", "prod").is_ok());
        assert!(Tag::new("", "x").is_err());
        assert!(Tag::new("aliyun-x", "x").is_err());
        assert!(Tag::new("ACS:x", "x").is_err());
        assert!(Tag::new("k", "v".repeat(129)).is_err());
    }
}
