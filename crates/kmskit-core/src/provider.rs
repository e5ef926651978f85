//! The KMS API: [`KeyProvider`], the [`Caller`] every call carries, and the request and response types.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::blob::CiphertextBlob;
use crate::context::EncryptionContext;
use crate::error::{Error, Result};
use crate::id::{AliasName, KeyId, KeyRef, KeyVersionId};
use crate::key::{
    AsymmetricAlgorithm, DataKeySpec, KeyMetadata, KeySpec, KeyState, KeyUsage, KeyVersion, Origin,
    ProtectionLevel, Tag,
};
use crate::secret::{DataKey, SecretBytes};

/// Who is calling: principal, source address, request id. Every API call takes one.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The principal (user or role name; `local` for the trusted in-process caller).
    pub principal: String,
    /// The network address the request came from, when it came over a network.
    pub source_ip: Option<IpAddr>,
    /// The request id, unique per call (for audit correlation).
    pub request_id: String,
    /// Whether the request arrived over TLS (or in-process).
    pub secure_transport: bool,
}

impl Caller {
    /// The trusted local caller for single-tenant embedding, with a fresh request id.
    pub fn local() -> Self {
        Self::new("local")
    }

    /// A caller named `principal`, in-process, with a fresh request id.
    pub fn new(principal: impl Into<String>) -> Self {
        Self {
            principal: principal.into(),
            source_ip: None,
            request_id: KeyId::generate().to_string(),
            secure_transport: true,
        }
    }

    /// Sets the source address.
    #[must_use]
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = id.into();
        self
    }

    /// Sets whether the transport was secure.
    #[must_use]
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }
}

/// Parameters of CreateKey.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateKey {
    /// Description, 0–8192 characters.
    pub description: String,
    /// Key spec (default `Aliyun_AES_256`).
    pub key_spec: Option<KeySpec>,
    /// Usage (default: the spec's default).
    pub key_usage: Option<KeyUsage>,
    /// Origin (default `Aliyun_KMS`; `EXTERNAL` makes a key in `PendingImport`).
    pub origin: Option<Origin>,
    /// Protection level (default: the backend's).
    pub protection_level: Option<ProtectionLevel>,
    /// Tags (at most 20).
    pub tags: Vec<Tag>,
}

impl CreateKey {
    /// A default AES-256 key with `description`.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            ..Self::default()
        }
    }

    /// Sets the key spec.
    #[must_use]
    pub fn key_spec(mut self, spec: KeySpec) -> Self {
        self.key_spec = Some(spec);
        self
    }

    /// Sets the usage.
    #[must_use]
    pub fn key_usage(mut self, usage: KeyUsage) -> Self {
        self.key_usage = Some(usage);
        self
    }

    /// Sets the origin.
    #[must_use]
    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Sets the protection level.
    #[must_use]
    pub fn protection_level(mut self, level: ProtectionLevel) -> Self {
        self.protection_level = Some(level);
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, tag: Tag) -> Self {
        self.tags.push(tag);
        self
    }
}

/// Paging parameters: `PageNumber` ≥ 1 (default 1), `PageSize` 1–100 (default 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// The page, from 1.
    pub page_number: u32,
    /// Items per page, 1–100.
    pub page_size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page_number: 1,
            page_size: 10,
        }
    }
}

impl PageRequest {
    /// The largest page size.
    pub const MAX_PAGE_SIZE: u32 = 100;

    /// A validated page request.
    ///
    /// # Errors
    /// `InvalidParameter` when `page_number` is 0 or `page_size` is outside 1–100.
    pub fn new(page_number: u32, page_size: u32) -> Result<Self> {
        let p = Self {
            page_number,
            page_size,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// `InvalidParameter` when `page_number` is 0 or `page_size` is outside 1–100.
    pub fn validate(&self) -> Result<()> {
        if self.page_number == 0 {
            return Err(Error::invalid("PageNumber", "must be at least 1"));
        }
        if self.page_size == 0 || self.page_size > Self::MAX_PAGE_SIZE {
            return Err(Error::invalid("PageSize", "must be 1 to 100"));
        }
        Ok(())
    }

    /// Cuts one page out of `items` (already in their listing order).
    pub fn slice<T: Clone>(&self, items: &[T]) -> Page<T> {
        let start = (self.page_number as usize - 1).saturating_mul(self.page_size as usize);
        let page = items
            .iter()
            .skip(start)
            .take(self.page_size as usize)
            .cloned()
            .collect();
        Page {
            items: page,
            total_count: items.len() as u64,
            page_number: self.page_number,
            page_size: self.page_size,
        }
    }
}

/// One page of a listing.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Items in the whole listing.
    pub total_count: u64,
    /// This page's number.
    pub page_number: u32,
    /// The page size asked for.
    pub page_size: u32,
}

/// What a ListKeys filter matches on.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterKey {
    /// The key state.
    KeyState,
    /// The key spec.
    KeySpec,
    /// The key usage.
    KeyUsage,
    /// Who created it (`User` for keys made through this API).
    CreatorType,
    /// The protection level.
    ProtectionLevel,
}

/// One ListKeys filter: the key matches when its field equals any of `values`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KeyFilter {
    /// The field.
    pub key: FilterKey,
    /// Accepted values.
    pub values: Vec<String>,
}

impl KeyFilter {
    /// A filter.
    pub fn new(key: FilterKey, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            key,
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// Parses the API's JSON form, `[{"Key":"KeyState","Values":["Enabled"]}]` (at most 10 entries).
    ///
    /// # Errors
    /// `InvalidParameter` (`Filters`) for malformed JSON, unknown keys or values, or too many entries.
    pub fn parse_list(json: &str) -> Result<Vec<KeyFilter>> {
        if json.trim().is_empty() {
            return Ok(Vec::new());
        }
        let filters: Vec<KeyFilter> =
            serde_json::from_str(json).map_err(|e| Error::invalid("Filters", e.to_string()))?;
        validate_filters(&filters)?;
        Ok(filters)
    }
}

/// Checks filter count and values.
///
/// # Errors
/// `InvalidParameter` (`Filters`).
pub fn validate_filters(filters: &[KeyFilter]) -> Result<()> {
    if filters.len() > 10 {
        return Err(Error::invalid("Filters", "at most 10 filters"));
    }
    for f in filters {
        if f.values.is_empty() {
            return Err(Error::invalid("Filters", "a filter needs at least one value"));
        }
        for v in &f.values {
            let ok = match f.key {
                FilterKey::KeyState => v.parse::<KeyState>().is_ok(),
                FilterKey::KeySpec => v.parse::<KeySpec>().is_ok(),
                FilterKey::KeyUsage => v.parse::<KeyUsage>().is_ok(),
                FilterKey::ProtectionLevel => v.parse::<ProtectionLevel>().is_ok(),
                FilterKey::CreatorType => matches!(v.as_str(), "User" | "Service"),
            };
            if !ok {
                return Err(Error::invalid(
                    "Filters",
                    format!("unknown value {v:?} for {:?}", f.key),
                ));
            }
        }
    }
    Ok(())
}

/// Parameters of ListKeys.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListKeys {
    /// Paging.
    pub page: PageRequest,
    /// Filters; all must match.
    pub filters: Vec<KeyFilter>,
}

impl ListKeys {
    /// A listing with paging and no filters.
    pub fn new(page: PageRequest) -> Self {
        Self {
            page,
            filters: Vec::new(),
        }
    }

    /// Adds a filter.
    #[must_use]
    pub fn filter(mut self, f: KeyFilter) -> Self {
        self.filters.push(f);
        self
    }
}

/// A ListKeys row.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySummary {
    /// The key id.
    pub key_id: KeyId,
    /// Its ARN.
    pub key_arn: String,
}

impl KeySummary {
    /// A row.
    pub fn new(key_id: KeyId, key_arn: String) -> Self {
        Self { key_id, key_arn }
    }
}

/// A ListAliases row.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasInfo {
    /// The alias name (`alias/…`).
    pub alias_name: AliasName,
    /// Its ARN.
    pub alias_arn: String,
    /// The key it points to.
    pub key_id: KeyId,
}

impl AliasInfo {
    /// A row.
    pub fn new(alias_name: AliasName, alias_arn: String, key_id: KeyId) -> Self {
        Self {
            alias_name,
            alias_arn,
            key_id,
        }
    }
}

/// The result of Encrypt, ReEncrypt and GenerateDataKeyWithoutPlaintext.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encrypted {
    /// The key that encrypted (the real id, whatever reference was given).
    pub key_id: KeyId,
    /// The version used.
    pub key_version_id: KeyVersionId,
    /// The ciphertext.
    pub ciphertext_blob: CiphertextBlob,
}

impl Encrypted {
    /// A result.
    pub fn new(key_id: KeyId, key_version_id: KeyVersionId, ciphertext_blob: CiphertextBlob) -> Self {
        Self {
            key_id,
            key_version_id,
            ciphertext_blob,
        }
    }
}

/// The result of Decrypt. `Debug` does not show the plaintext.
#[non_exhaustive]
pub struct Decrypted {
    /// The key that decrypted.
    pub key_id: KeyId,
    /// The version used.
    pub key_version_id: KeyVersionId,
    /// The plaintext, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl Decrypted {
    /// A result.
    pub fn new(key_id: KeyId, key_version_id: KeyVersionId, plaintext: Zeroizing<Vec<u8>>) -> Self {
        Self {
            key_id,
            key_version_id,
            plaintext,
        }
    }
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("key_id", &self.key_id)
            .field("key_version_id", &self.key_version_id)
            .field("plaintext", &format_args!("[REDACTED; {}]", self.plaintext.len()))
            .finish()
    }
}

/// The result of AsymmetricSign.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The key that signed (the real id).
    pub key_id: KeyId,
    /// The version that signed.
    pub key_version_id: KeyVersionId,
    /// The signature: DER for ECDSA and SM2DSA, the raw `k`-byte value for RSA.
    pub signature: Vec<u8>,
}

impl Signed {
    /// A result.
    pub fn new(key_id: KeyId, key_version_id: KeyVersionId, signature: Vec<u8>) -> Self {
        Self {
            key_id,
            key_version_id,
            signature,
        }
    }
}

/// The result of AsymmetricVerify. A signature that does not verify is `valid: false`, not an error.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The key (the real id).
    pub key_id: KeyId,
    /// The version.
    pub key_version_id: KeyVersionId,
    /// Whether the signature is valid for the digest.
    pub valid: bool,
}

impl Verified {
    /// A result.
    pub fn new(key_id: KeyId, key_version_id: KeyVersionId, valid: bool) -> Self {
        Self {
            key_id,
            key_version_id,
            valid,
        }
    }
}

/// The result of AsymmetricEncrypt: a raw public-key ciphertext (not a kmskit blob: it names no key, so
/// AsymmetricDecrypt takes the key and version again, as the model service).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsymmetricEncrypted {
    /// The key (the real id).
    pub key_id: KeyId,
    /// The version.
    pub key_version_id: KeyVersionId,
    /// The ciphertext: the RSA block for OAEP, DER (C1, C3, C2) for SM2PKE.
    pub ciphertext: Vec<u8>,
}

impl AsymmetricEncrypted {
    /// A result.
    pub fn new(key_id: KeyId, key_version_id: KeyVersionId, ciphertext: Vec<u8>) -> Self {
        Self {
            key_id,
            key_version_id,
            ciphertext,
        }
    }
}

/// The result of GetPublicKey: the version's public key as a PEM SubjectPublicKeyInfo.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The key (the real id).
    pub key_id: KeyId,
    /// The version.
    pub key_version_id: KeyVersionId,
    /// `-----BEGIN PUBLIC KEY-----` … (SubjectPublicKeyInfo, RFC 7468).
    pub pem: String,
}

impl PublicKey {
    /// A result.
    pub fn new(key_id: KeyId, key_version_id: KeyVersionId, pem: String) -> Self {
        Self {
            key_id,
            key_version_id,
            pem,
        }
    }
}

/// The result of GenerateDataKey: the plaintext data key and its wrapped form. `Debug` hides the key.
#[non_exhaustive]
#[derive(Debug)]
pub struct GeneratedDataKey {
    /// The wrapping key.
    pub key_id: KeyId,
    /// The wrapping key's version.
    pub key_version_id: KeyVersionId,
    /// The plaintext data key.
    pub plaintext: DataKey,
    /// The wrapped data key. As in the model service, it decrypts (with Decrypt) to the Base64 text of
    /// the key; [`KeyProvider::decrypt_data_key`] returns the raw key.
    pub ciphertext_blob: CiphertextBlob,
}

impl GeneratedDataKey {
    /// A result.
    pub fn new(
        key_id: KeyId,
        key_version_id: KeyVersionId,
        plaintext: DataKey,
        ciphertext_blob: CiphertextBlob,
    ) -> Self {
        Self {
            key_id,
            key_version_id,
            plaintext,
            ciphertext_blob,
        }
    }
}

/// How many bytes a data key has: a spec, or an explicit count (1–1024) that wins over it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKeyLength {
    /// The spec's length.
    Spec(DataKeySpec),
    /// `NumberOfBytes`, 1–1024.
    Bytes(u16),
}

impl Default for DataKeyLength {
    fn default() -> Self {
        DataKeyLength::Spec(DataKeySpec::Aes256)
    }
}

impl DataKeyLength {
    /// The length in bytes, validated.
    ///
    /// # Errors
    /// `InvalidParameter` (`NumberOfBytes`) outside 1–1024.
    pub fn bytes(self) -> Result<usize> {
        match self {
            DataKeyLength::Spec(s) => Ok(s.byte_len()),
            DataKeyLength::Bytes(n) if (1..=1024).contains(&n) => Ok(n as usize),
            DataKeyLength::Bytes(_) => Err(Error::invalid("NumberOfBytes", "must be 1 to 1024")),
        }
    }
}

impl From<DataKeySpec> for DataKeyLength {
    fn from(s: DataKeySpec) -> Self {
        DataKeyLength::Spec(s)
    }
}

/// Encodes a data key the way GenerateDataKey's blob carries it (Base64 text).
pub fn data_key_to_wire(key: &SecretBytes) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .encode(key.expose_secret())
            .into_bytes(),
    )
}

/// Decodes a data key from the plaintext of a GenerateDataKey blob (Base64 text).
///
/// # Errors
/// [`Error::DecryptFailed`] when the plaintext is not Base64 (the blob was not a data key).
pub fn data_key_from_wire(plaintext: &[u8]) -> Result<DataKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(plaintext)
        .map_err(|_| Error::invalid("CiphertextBlob", "not a data key ciphertext"))?;
    Ok(DataKey::new(SecretBytes::new(bytes)))
}

/// The KMS API, implemented once for every local store by `Kms<S>` and by each remote client.
///
/// Every call takes a [`Caller`]. Key references accept an id, `alias/<name>` or an ARN; results name
/// the real key id.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// CreateKey: a new key, `Enabled` (or `PendingImport` for origin `EXTERNAL`).
    async fn create_key(&self, caller: &Caller, req: CreateKey) -> Result<KeyMetadata>;
    /// DescribeKey.
    async fn describe_key(&self, caller: &Caller, key: &KeyRef) -> Result<KeyMetadata>;
    /// ListKeys: keys in creation order, filtered and paged.
    async fn list_keys(&self, caller: &Caller, req: ListKeys) -> Result<Page<KeySummary>>;
    /// EnableKey.
    async fn enable_key(&self, caller: &Caller, key: &KeyRef) -> Result<()>;
    /// DisableKey.
    async fn disable_key(&self, caller: &Caller, key: &KeyRef) -> Result<()>;
    /// ScheduleKeyDeletion, with a window of 7–366 days.
    async fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key: &KeyRef,
        pending_window_in_days: u32,
    ) -> Result<()>;
    /// CancelKeyDeletion: back to `Enabled`.
    async fn cancel_key_deletion(&self, caller: &Caller, key: &KeyRef) -> Result<()>;
    /// UpdateKeyDescription.
    async fn update_key_description(&self, caller: &Caller, key: &KeyRef, description: &str) -> Result<()>;
    /// SetDeletionProtection.
    async fn set_deletion_protection(
        &self,
        caller: &Caller,
        key: &KeyRef,
        enabled: bool,
        description: &str,
    ) -> Result<()>;
    /// CreateAlias.
    async fn create_alias(&self, caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()>;
    /// UpdateAlias: point an alias at another key.
    async fn update_alias(&self, caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()>;
    /// DeleteAlias.
    async fn delete_alias(&self, caller: &Caller, alias: &AliasName) -> Result<()>;
    /// ListAliases, in name order.
    async fn list_aliases(&self, caller: &Caller, page: PageRequest) -> Result<Page<AliasInfo>>;
    /// ListAliasesByKeyId, in name order.
    async fn list_aliases_by_key_id(
        &self,
        caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<AliasInfo>>;
    /// Encrypt at most 6 KiB under the key's primary version.
    async fn encrypt(
        &self,
        caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted>;
    /// Decrypt: the blob names its key and version.
    async fn decrypt(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Decrypted>;
    /// ReEncrypt: decrypt under the source context and encrypt under `dest_key` and `dest_ctx`, without
    /// releasing the plaintext.
    async fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        source_ctx: &EncryptionContext,
        dest_key: &KeyRef,
        dest_ctx: &EncryptionContext,
    ) -> Result<Encrypted>;
    /// GenerateDataKey.
    async fn generate_data_key(
        &self,
        caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey>;
    /// GenerateDataKeyWithoutPlaintext.
    async fn generate_data_key_without_plaintext(
        &self,
        caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted>;
    /// ListKeyVersions, in creation order.
    async fn list_key_versions(
        &self,
        caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<KeyVersion>>;
    /// DescribeKeyVersion.
    async fn describe_key_version(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<KeyVersion>;
    /// TagResource: add or replace tags (at most 20 per key).
    async fn tag_resource(&self, caller: &Caller, key: &KeyRef, tags: &[Tag]) -> Result<()>;
    /// UntagResource: remove tags by key (absent keys are ignored).
    async fn untag_resource(&self, caller: &Caller, key: &KeyRef, tag_keys: &[String]) -> Result<()>;
    /// ListResourceTags, in tag-key order.
    async fn list_resource_tags(&self, caller: &Caller, key: &KeyRef) -> Result<Vec<Tag>>;

    /// AsymmetricSign: signs a pre-computed `digest` (32 bytes: SHA-256, or SM3(Z(A) ‖ M) for SM2DSA)
    /// with the named version of a SIGN/VERIFY key.
    ///
    /// The default refuses with `Rejected.UnsupportedOperation`, for providers without asymmetric keys.
    ///
    /// # Errors
    /// `Rejected.UnsupportedOperation` for an algorithm the key cannot run or the wrong usage;
    /// `InvalidParameter` for a digest of the wrong length; state errors as Encrypt.
    async fn asymmetric_sign(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Signed> {
        let _ = (caller, key, version, algorithm, digest);
        Err(unsupported_asymmetric())
    }

    /// AsymmetricVerify: whether `signature` is valid for `digest` under the named version.
    ///
    /// # Errors
    /// As [`KeyProvider::asymmetric_sign`]; a malformed or wrong signature is `valid: false`.
    async fn asymmetric_verify(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<Verified> {
        let _ = (caller, key, version, algorithm, digest, signature);
        Err(unsupported_asymmetric())
    }

    /// AsymmetricEncrypt: encrypts `plaintext` with the named version's public key.
    ///
    /// # Errors
    /// `Rejected.UnsupportedOperation` (algorithm/usage), `InvalidParameter` for a plaintext over the
    /// algorithm's limit; state errors as Encrypt.
    async fn asymmetric_encrypt(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        plaintext: &[u8],
    ) -> Result<AsymmetricEncrypted> {
        let _ = (caller, key, version, algorithm, plaintext);
        Err(unsupported_asymmetric())
    }

    /// AsymmetricDecrypt: decrypts a ciphertext made by AsymmetricEncrypt (or by anyone with the public
    /// key) with the named version's private key.
    ///
    /// # Errors
    /// [`Error::DecryptFailed`] when it does not decrypt; otherwise as
    /// [`KeyProvider::asymmetric_encrypt`].
    async fn asymmetric_decrypt(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Decrypted> {
        let _ = (caller, key, version, algorithm, ciphertext);
        Err(unsupported_asymmetric())
    }

    /// GetPublicKey: the named version's public key as PEM.
    ///
    /// # Errors
    /// `Rejected.UnsupportedOperation` for a symmetric key; state errors.
    async fn get_public_key(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<PublicKey> {
        let _ = (caller, key, version);
        Err(unsupported_asymmetric())
    }

    /// Decrypts a GenerateDataKey blob and returns the raw data key.
    ///
    /// The default decrypts and Base64-decodes, the model service's convention; providers whose
    /// service returns raw bytes override it.
    ///
    /// # Errors
    /// As [`KeyProvider::decrypt`], and `InvalidParameter` when the blob holds no data key.
    async fn decrypt_data_key(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<DataKey> {
        let d = self.decrypt(caller, blob, ctx).await?;
        data_key_from_wire(&d.plaintext)
    }
}

fn unsupported_asymmetric() -> Error {
    Error::Unsupported("this provider has no asymmetric keys".into())
}
