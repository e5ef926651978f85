//! [`AwsKms`]: the [`KeyProvider`] API on AWS KMS, through the official `aws-sdk-kms` crate.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::Credentials;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types as aws;
use kmskit_core::key::{
    AsymmetricAlgorithm, DataKeySpec, KeySpec, KeyState, KeyUsage, KeyVersion, Origin, ProtectionLevel, Tag,
};
use kmskit_core::provider::{
    AliasInfo, AsymmetricEncrypted, Caller, CreateKey, DataKeyLength, Decrypted, Encrypted, GeneratedDataKey,
    KeyProvider, KeySummary, ListKeys, Page, PageRequest, PublicKey, Signed, Verified,
};
use kmskit_core::{
    AliasName, CiphertextBlob, DataKey, EncryptionContext, Error, ErrorCode, KeyId, KeyMetadata, KeyRef,
    KeyVersionId, Result, SecretBytes, Timestamp, Zeroizing,
};

use crate::retry::{Failure, RetryPolicy, Transport};

/// The largest plaintext AWS KMS `Encrypt` takes.
pub const AWS_MAX_PLAINTEXT: usize = 4096;
/// The longest deletion window AWS KMS allows, in days.
pub const AWS_MAX_PENDING_WINDOW_DAYS: u32 = 30;

/// Builds an [`AwsKms`]: region, endpoint, credentials, timeouts, retries and the in-flight bound.
///
/// Whatever is not set comes from the standard AWS configuration chain (environment variables,
/// profiles, instance metadata).
pub struct AwsKmsBuilder {
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<StaticCredentials>,
    connect_timeout: Duration,
    read_timeout: Duration,
    retry: RetryPolicy,
    max_in_flight: usize,
}

struct StaticCredentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for AwsKmsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsBuilder")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|c| format!("{} / [REDACTED]", c.access_key_id)),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("retry", &self.retry)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl Default for AwsKmsBuilder {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            credentials: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_in_flight: 64,
        }
    }
}

impl AwsKmsBuilder {
    /// The AWS region, e.g. `us-east-1`.
    #[must_use]
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// An explicit endpoint (a VPC endpoint, or a local test server such as moto).
    #[must_use]
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Static credentials instead of the default chain; the secret is zeroized on drop and never shown
    /// by `Debug`.
    #[must_use]
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            session_token: session_token.map(Zeroizing::new),
        });
        self
    }

    /// The TCP connect timeout (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// The read timeout of one attempt (default 30 s).
    #[must_use]
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.read_timeout = t;
        self
    }

    /// The retry policy (default: 4 attempts, 50 ms – 2 s jittered backoff).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// At most this many requests in flight at once, so at most this many pooled connections
    /// (default 64).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Loads the AWS configuration and builds the client. No request is made.
    pub async fn build(self) -> AwsKms {
        // The SDK's own retries are off: ours retry throttling, 5xx and transport failures only.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .read_timeout(self.read_timeout)
                    .operation_attempt_timeout(self.read_timeout + self.connect_timeout)
                    .build(),
            );
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(c) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.as_str(),
                c.session_token.as_ref().map(|t| t.to_string()),
                None,
                "kmskit",
            ));
        }
        let conf = loader.load().await;
        AwsKms {
            client: Client::new(&conf),
            region: conf.region().map(ToString::to_string),
            endpoint_url: self.endpoint_url,
            transport: Transport::new(self.retry, self.max_in_flight),
        }
    }
}

/// AWS KMS as a [`KeyProvider`].
///
/// | ours | AWS KMS |
/// |---|---|
/// | `Aliyun_AES_256` | `SYMMETRIC_DEFAULT` (RSA and ECC specs map by name; SM4 is refused) |
/// | key states | `Enabled`, `Disabled`, `PendingDeletion`, `PendingImport` (`Creating`/`Updating` read as `Enabled`, `Unavailable` as `Disabled`) |
/// | encryption context | AWS encryption context (same semantics) |
/// | key version | AWS hides versions: the key id stands for the one visible version |
/// | error codes | mapped to ours ([`Error::Remote`]); the message keeps AWS's code and HTTP status |
/// | `RSA_2048`, `RSA_3072`, `EC_P256`, `EC_P256K`, `EC_SM2` | `RSA_2048`, `RSA_3072`, `ECC_NIST_P256`, `ECC_SECG_P256K1`, `SM2` (SM2 in AWS China regions only) |
/// | `RSA_PSS_SHA_256`, `RSA_PKCS1_SHA_256`, `ECDSA_SHA_256`, `SM2DSA` | `RSASSA_PSS_SHA_256`, `RSASSA_PKCS1_V1_5_SHA_256`, `ECDSA_SHA_256`, `SM2DSA`, always with `MessageType=DIGEST` |
/// | `RSAES_OAEP_SHA_256`, `RSAES_OAEP_SHA_1`, `SM2PKE` | the same `EncryptionAlgorithm` names |
/// | AsymmetricVerify of a bad signature | AWS's `KMSInvalidSignatureException` is `valid: false` |
/// | GetPublicKey | AWS's DER SubjectPublicKeyInfo, written as PEM |
///
/// Asymmetric keys: AWS KMS keys have no versions, so the asymmetric calls take the **key id as the
/// `KeyVersionId`** (ListKeyVersions lists it; asymmetric keys have no `PrimaryKeyVersion`); any other
/// version is `Forbidden.KeyVersionNotFound`. A new key pair is a new AWS key (AWS KMS does not
/// rotate asymmetric keys). The digest is signed as given (`MessageType=DIGEST`): for `SM2DSA` it must
/// already be SM3(Z(A) ‖ M), as AWS KMS documents for SM2 digests.
///
/// Not supported (answer `Rejected.UnsupportedOperation`): deletion protection, new key versions
/// (ListKeyVersions shows the one version, the key id), ListKeys filters, `acs:` ARNs. `CancelKeyDeletion` enables the key again, as ours does (AWS leaves it
/// disabled). Data keys come back raw: [`KeyProvider::decrypt_data_key`] is overridden to match.
///
/// ```no_run
/// # async fn demo() -> kmskit_core::Result<()> {
/// use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef};
/// use kmskit_remote::AwsKms;
///
/// let kms = AwsKms::builder().region("us-east-1").build().await;
/// let caller = Caller::local();
/// let key = kms.create_key(&caller, CreateKey::new("orders")).await?;
/// let ctx = EncryptionContext::from_pairs([("tenant", "t1")])?;
/// let sealed = kms.encrypt(&caller, &KeyRef::Id(key.key_id), b"secret", &ctx).await?;
/// let opened = kms.decrypt(&caller, &sealed.ciphertext_blob, &ctx).await?;
/// assert_eq!(&opened.plaintext[..], b"secret");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AwsKms {
    client: Client,
    region: Option<String>,
    endpoint_url: Option<String>,
    transport: Transport,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("retry", &self.transport.policy)
            .finish_non_exhaustive()
    }
}

/// What a call was doing, to pick our code for AWS's less specific ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Uses the key for cryptography: a state refusal names the state.
    Crypto,
    /// Changes the key's state: a state refusal is `Rejected.StateModifiedFailed`.
    State,
    /// Anything else.
    Other,
}

/// Maps an SDK failure to ours; transport failures, throttling and 5xx are retryable.
fn map_err<E>(err: SdkError<E, HttpResponse>, op: Op, alias: bool) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return Failure {
                error: Error::Unavailable {
                    message: format!("AWS KMS unreachable: {}", DisplayErrorContext(&err)),
                    retryable: true,
                    source: Some(Box::new(err)),
                },
                retryable: true,
            };
        }
        _ => None,
    };
    let Some(status) = status else {
        return Failure::fatal(Error::Internal(format!(
            "AWS KMS request failed: {}",
            DisplayErrorContext(&err)
        )));
    };
    let remote = err.code().unwrap_or("").to_owned();
    let message = err.message().unwrap_or("").to_owned();
    let ours = map_code(&remote, &message, status, op, alias);
    let retryable = status >= 500 || status == 429 || remote.contains("Throttl");
    Failure {
        error: Error::Remote {
            code: ours,
            message: format!("AWS KMS {remote} (HTTP {status}): {message}"),
        },
        retryable,
    }
}

/// AWS error code (and message, for state errors) to our code.
fn map_code(remote: &str, message: &str, status: u16, op: Op, alias: bool) -> ErrorCode {
    let lower = message.to_ascii_lowercase();
    match remote {
        "NotFoundException" if lower.contains("alias") => ErrorCode::AliasNotFound,
        "NotFoundException" if alias && !lower.contains("key") => ErrorCode::AliasNotFound,
        "NotFoundException" => ErrorCode::KeyNotFound,
        "AlreadyExistsException" => ErrorCode::AliasAlreadyExists,
        "DisabledException" => ErrorCode::Disabled,
        "KMSInvalidStateException" if op == Op::Crypto => {
            if lower.contains("pending deletion") || lower.contains("pendingdeletion") {
                ErrorCode::PendingDeletion
            } else if lower.contains("pending import") || lower.contains("pendingimport") {
                ErrorCode::PendingImport
            } else if lower.contains("disabled") {
                ErrorCode::Disabled
            } else {
                ErrorCode::StateModifiedFailed
            }
        }
        "KMSInvalidStateException" => ErrorCode::StateModifiedFailed,
        // AWS answers InvalidKeyUsageException; moto a ValidationException naming the algorithm or usage.
        "ValidationException"
            if lower.contains("signingalgorithm")
                || lower.contains("encryptionalgorithm")
                || lower.contains("key with usage") =>
        {
            ErrorCode::UnsupportedOperation
        }
        "InvalidCiphertextException"
        | "IncorrectKeyException"
        | "ValidationException"
        | "InvalidArnException"
        | "InvalidAliasNameException"
        | "InvalidMarkerException"
        | "TagException"
        | "InvalidGrantTokenException"
        | "SerializationException" => ErrorCode::InvalidParameter,
        "InvalidKeyUsageException" | "UnsupportedOperationException" => ErrorCode::UnsupportedOperation,
        "LimitExceededException" => ErrorCode::LimitExceeded,
        "ThrottlingException" => ErrorCode::Throttling,
        "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" => {
            ErrorCode::NoPermission
        }
        "KMSInternalException" => ErrorCode::InternalFailure,
        "DependencyTimeoutException" | "KeyUnavailableException" => ErrorCode::ServiceUnavailableTemporary,
        _ if status == 429 => ErrorCode::Throttling,
        _ if status >= 500 => ErrorCode::ServiceUnavailableTemporary,
        _ if status == 403 => ErrorCode::NoPermission,
        _ => ErrorCode::InvalidParameter,
    }
}

/// The AWS `KeyId` parameter for a reference.
fn key_param(key: &KeyRef) -> Result<String> {
    match key {
        KeyRef::Id(id) => Ok(id.to_string()),
        KeyRef::Alias(a) => Ok(a.as_str().to_owned()),
        KeyRef::Arn(_) => Err(Error::Unsupported(
            "AWS KMS takes key ids, aliases or arn:aws ARNs, not acs ARNs".into(),
        )),
        _ => Err(Error::Unsupported("this key reference form".into())),
    }
}

fn is_alias(key: &KeyRef) -> bool {
    matches!(key, KeyRef::Alias(_))
}

/// The key id in an AWS key id or key ARN (`arn:aws:kms:<region>:<account>:key/<id>`).
fn key_id_of(s: &str) -> Result<KeyId> {
    let id = s.rsplit_once("key/").map_or(s, |(_, id)| id);
    KeyId::new(id).map_err(|_| Error::Internal(format!("AWS KMS returned a key id we cannot read: {s:?}")))
}

/// AWS hides key versions; the key id stands for the one visible version.
fn version_of(id: &KeyId) -> KeyVersionId {
    KeyVersionId::new(id.as_str()).unwrap_or_else(|_| KeyVersionId::generate())
}

fn context_map(ctx: &EncryptionContext) -> Option<HashMap<String, String>> {
    if ctx.is_empty() {
        None
    } else {
        Some(ctx.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }
}

fn ts(t: Option<&aws_sdk_kms::primitives::DateTime>) -> String {
    t.map(|d| Timestamp::from_unix(u64::try_from(d.secs()).unwrap_or(0)).to_string())
        .unwrap_or_default()
}

fn spec_to_aws(spec: KeySpec) -> Result<aws::KeySpec> {
    Ok(match spec {
        KeySpec::Aes256 => aws::KeySpec::SymmetricDefault,
        KeySpec::Rsa2048 => aws::KeySpec::Rsa2048,
        KeySpec::Rsa3072 => aws::KeySpec::Rsa3072,
        KeySpec::EcP256 => aws::KeySpec::EccNistP256,
        KeySpec::EcP256K => aws::KeySpec::EccSecgP256K1,
        KeySpec::EcSm2 => aws::KeySpec::Sm2,
        other => return Err(Error::Unsupported(format!("key spec {other} on AWS KMS"))),
    })
}

fn spec_from_aws(spec: Option<&aws::KeySpec>) -> Result<KeySpec> {
    Ok(match spec {
        None | Some(aws::KeySpec::SymmetricDefault) => KeySpec::Aes256,
        Some(aws::KeySpec::Rsa2048) => KeySpec::Rsa2048,
        Some(aws::KeySpec::Rsa3072) => KeySpec::Rsa3072,
        Some(aws::KeySpec::EccNistP256) => KeySpec::EcP256,
        Some(aws::KeySpec::EccSecgP256K1) => KeySpec::EcP256K,
        Some(aws::KeySpec::Sm2) => KeySpec::EcSm2,
        Some(other) => return Err(Error::Unsupported(format!("AWS key spec {}", other.as_str()))),
    })
}

fn state_from_aws(state: Option<&aws::KeyState>) -> KeyState {
    match state {
        Some(aws::KeyState::Disabled | aws::KeyState::Unavailable) => KeyState::Disabled,
        Some(aws::KeyState::PendingDeletion | aws::KeyState::PendingReplicaDeletion) => {
            KeyState::PendingDeletion
        }
        Some(aws::KeyState::PendingImport) => KeyState::PendingImport,
        _ => KeyState::Enabled,
    }
}

/// AWS `KeyMetadata` to ours.
fn metadata(m: &aws::KeyMetadata) -> Result<KeyMetadata> {
    let key_id = key_id_of(m.key_id())?;
    let usage = match m.key_usage() {
        Some(aws::KeyUsageType::SignVerify) => KeyUsage::SignVerify,
        None | Some(aws::KeyUsageType::EncryptDecrypt) => KeyUsage::EncryptDecrypt,
        Some(other) => return Err(Error::Unsupported(format!("AWS key usage {}", other.as_str()))),
    };
    let origin = match m.origin() {
        Some(aws::OriginType::External) => Origin::External,
        _ => Origin::Kms,
    };
    let protection = match m.origin() {
        Some(aws::OriginType::AwsCloudhsm) => ProtectionLevel::Hsm,
        _ => ProtectionLevel::Software,
    };
    let state = state_from_aws(m.key_state());
    let spec = spec_from_aws(m.key_spec())?;
    let created = ts(m.creation_date());
    let json = serde_json::json!({
        "KeyId": key_id.as_str(),
        "Arn": m.arn().unwrap_or_default(),
        "AutomaticRotation": "Disabled",
        "CreationDate": if created.is_empty() { Timestamp::from_unix(0).to_string() } else { created },
        "Creator": m.aws_account_id().unwrap_or_default(),
        "DKMSInstanceId": "",
        "DeleteDate": if state == KeyState::PendingDeletion { ts(m.deletion_date()) } else { String::new() },
        "Description": m.description().unwrap_or_default(),
        "KeySpec": spec.as_str(),
        "KeyState": state.as_str(),
        "KeyUsage": usage.as_str(),
        "LastRotationDate": "",
        "MaterialExpireTime": ts(m.valid_to()),
        "NextRotationDate": "",
        "Origin": origin.as_str(),
        // Asymmetric keys have no primary version (spec §8); their one version is the key id too.
        "PrimaryKeyVersion": spec.is_symmetric().then(|| version_of(&key_id).to_string()),
        "ProtectionLevel": protection.as_str(),
        "RotationInterval": null,
        "DeletionProtection": "Disabled",
        "DeletionProtectionDescription": "",
    });
    serde_json::from_value(json)
        .map_err(|e| Error::Internal(format!("AWS KMS key metadata does not map: {e}")))
}

/// AWS's signing algorithm for ours.
fn signing_to_aws(a: AsymmetricAlgorithm) -> Result<aws::SigningAlgorithmSpec> {
    Ok(match a {
        AsymmetricAlgorithm::RsaPssSha256 => aws::SigningAlgorithmSpec::RsassaPssSha256,
        AsymmetricAlgorithm::RsaPkcs1Sha256 => aws::SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        AsymmetricAlgorithm::EcdsaSha256 => aws::SigningAlgorithmSpec::EcdsaSha256,
        AsymmetricAlgorithm::Sm2Dsa => aws::SigningAlgorithmSpec::Sm2Dsa,
        other => {
            return Err(Error::Unsupported(format!(
                "{other} is an encryption algorithm, not a signing one"
            )));
        }
    })
}

/// AWS's encryption algorithm for ours.
fn encryption_to_aws(a: AsymmetricAlgorithm) -> Result<aws::EncryptionAlgorithmSpec> {
    Ok(match a {
        AsymmetricAlgorithm::RsaesOaepSha256 => aws::EncryptionAlgorithmSpec::RsaesOaepSha256,
        AsymmetricAlgorithm::RsaesOaepSha1 => aws::EncryptionAlgorithmSpec::RsaesOaepSha1,
        AsymmetricAlgorithm::Sm2Pke => aws::EncryptionAlgorithmSpec::Sm2Pke,
        other => {
            return Err(Error::Unsupported(format!(
                "{other} is a signing algorithm, not an encryption one"
            )));
        }
    })
}

/// A digest for `a`: 32 bytes (SHA-256, or SM3 for SM2DSA), as our engine requires.
fn check_digest(a: AsymmetricAlgorithm, digest: &[u8]) -> Result<()> {
    match a.digest_len() {
        Some(n) if digest.len() != n => Err(Error::invalid(
            "Digest",
            format!("{a} signs a {n}-byte digest, not {} bytes", digest.len()),
        )),
        _ => Ok(()),
    }
}

/// The one version of an AWS key is the key id itself.
fn check_version(key_id: &KeyId, version: &KeyVersionId) -> Result<()> {
    if version.as_str() == key_id.as_str() {
        Ok(())
    } else {
        Err(Error::KeyVersionNotFound(format!(
            "{version} (AWS KMS keys have one version, named by the key id {key_id})"
        )))
    }
}

/// PEM (RFC 7468, 64-character lines) of a DER SubjectPublicKeyInfo.
fn spki_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

fn unsupported<T>(what: &str) -> Result<T> {
    Err(Error::Unsupported(format!("{what} on AWS KMS")))
}

impl AwsKms {
    /// A builder; see [`AwsKmsBuilder`].
    pub fn builder() -> AwsKmsBuilder {
        AwsKmsBuilder::default()
    }

    /// A client from the standard AWS configuration chain alone.
    pub async fn from_env() -> Self {
        Self::builder().build().await
    }

    /// The underlying SDK client, for calls this provider does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn describe(&self, key: &KeyRef) -> Result<aws::KeyMetadata> {
        let id = key_param(key)?;
        let alias = is_alias(key);
        self.transport
            .run(|| async {
                let out = self
                    .client
                    .describe_key()
                    .key_id(&id)
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, alias))?;
                out.key_metadata
                    .ok_or_else(|| Failure::fatal(Error::Internal("DescribeKey without KeyMetadata".into())))
            })
            .await
    }

    async fn resolve(&self, key: &KeyRef) -> Result<KeyId> {
        match key {
            KeyRef::Id(id) => Ok(id.clone()),
            _ => key_id_of(self.describe(key).await?.key_id()),
        }
    }

    async fn all_aliases(&self, key_id: Option<&KeyId>) -> Result<Vec<AliasInfo>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..10_000 {
            let page = self
                .transport
                .run(|| async {
                    self.client
                        .list_aliases()
                        .set_key_id(key_id.map(ToString::to_string))
                        .set_marker(marker.clone())
                        .limit(100)
                        .send()
                        .await
                        .map_err(|e| map_err(e, Op::Other, false))
                })
                .await?;
            for a in page.aliases() {
                let (Some(name), Some(target)) = (a.alias_name(), a.target_key_id()) else {
                    continue;
                };
                if name.starts_with("alias/aws/") {
                    continue;
                }
                let (Ok(name), Ok(target)) = (AliasName::new(name), key_id_of(target)) else {
                    continue;
                };
                out.push(AliasInfo::new(
                    name,
                    a.alias_arn().unwrap_or_default().to_owned(),
                    target,
                ));
            }
            match (page.truncated, page.next_marker) {
                (true, Some(m)) => marker = Some(m),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
        Ok(out)
    }

    /// The one version of an AWS key: the key id, made when the key was.
    async fn the_version(&self, key: &KeyRef) -> Result<KeyVersion> {
        let m = self.describe(key).await?;
        let key_id = key_id_of(m.key_id())?;
        let created = m
            .creation_date()
            .map_or(0, |d| u64::try_from(d.secs()).unwrap_or(0));
        Ok(KeyVersion::new(
            key_id.clone(),
            version_of(&key_id),
            Timestamp::from_unix(created),
        ))
    }

    /// The key id of `key` (a DescribeKey call for an alias) after checking that `version` is its one
    /// version.
    async fn versioned(&self, key: &KeyRef, version: &KeyVersionId) -> Result<KeyId> {
        let id = self.resolve(key).await?;
        check_version(&id, version)?;
        Ok(id)
    }

    async fn encrypt_raw(
        &self,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        if plaintext.len() > AWS_MAX_PLAINTEXT {
            return Err(Error::invalid("Plaintext", "AWS KMS encrypts at most 4096 bytes"));
        }
        let id = key_param(key)?;
        let alias = is_alias(key);
        let context = context_map(ctx);
        let out = self
            .transport
            .run(|| async {
                self.client
                    .encrypt()
                    .key_id(&id)
                    .plaintext(Blob::new(plaintext))
                    .set_encryption_context(context.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, alias))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| Error::Internal("Encrypt without CiphertextBlob".into()))?;
        Ok(Encrypted::new(
            key_id.clone(),
            version_of(&key_id),
            CiphertextBlob::from_bytes(blob.into_inner()),
        ))
    }
}

fn data_key_param(len: DataKeyLength) -> Result<(Option<aws::DataKeySpec>, Option<i32>)> {
    let n = len.bytes()?;
    Ok(match len {
        DataKeyLength::Spec(DataKeySpec::Aes128) => (Some(aws::DataKeySpec::Aes128), None),
        DataKeyLength::Spec(_) => (Some(aws::DataKeySpec::Aes256), None),
        _ => (None, Some(i32::try_from(n).unwrap_or(1024))),
    })
}

#[async_trait]
impl KeyProvider for AwsKms {
    async fn create_key(&self, _caller: &Caller, req: CreateKey) -> Result<KeyMetadata> {
        if req.description.chars().count() > 8192 {
            return Err(Error::invalid("Description", "at most 8192 characters"));
        }
        let spec = req.key_spec.unwrap_or(KeySpec::Aes256);
        let usage = req.key_usage.unwrap_or_else(|| spec.default_usage());
        if !spec.allowed_usages().contains(&usage) {
            return Err(Error::invalid(
                "KeyUsage",
                format!("{usage} is not allowed for {spec}"),
            ));
        }
        if req.protection_level == Some(ProtectionLevel::Hsm) {
            return Err(Error::UnsupportedProtectionLevel(
                "AWS KMS keys of the default key store are SOFTWARE here".into(),
            ));
        }
        if req.tags.len() > Tag::MAX_PER_KEY {
            return Err(Error::LimitExceeded("at most 20 tags per key".into()));
        }
        for t in &req.tags {
            t.validate()?;
        }
        let aws_spec = spec_to_aws(spec)?;
        let aws_usage = match usage {
            KeyUsage::SignVerify => aws::KeyUsageType::SignVerify,
            _ => aws::KeyUsageType::EncryptDecrypt,
        };
        let origin = match req.origin {
            Some(Origin::External) => aws::OriginType::External,
            _ => aws::OriginType::AwsKms,
        };
        let tags = aws_tags(&req.tags)?;
        let out = self
            .transport
            .run(|| async {
                self.client
                    .create_key()
                    .description(&req.description)
                    .key_spec(aws_spec.clone())
                    .key_usage(aws_usage.clone())
                    .origin(origin.clone())
                    .set_tags(if tags.is_empty() { None } else { Some(tags.clone()) })
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, false))
            })
            .await?;
        let m = out
            .key_metadata
            .ok_or_else(|| Error::Internal("CreateKey without KeyMetadata".into()))?;
        metadata(&m)
    }

    async fn describe_key(&self, _caller: &Caller, key: &KeyRef) -> Result<KeyMetadata> {
        metadata(&self.describe(key).await?)
    }

    async fn list_keys(&self, _caller: &Caller, req: ListKeys) -> Result<Page<KeySummary>> {
        req.page.validate()?;
        if !req.filters.is_empty() {
            return unsupported("ListKeys filters");
        }
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..10_000 {
            let page = self
                .transport
                .run(|| async {
                    self.client
                        .list_keys()
                        .set_marker(marker.clone())
                        .limit(1000)
                        .send()
                        .await
                        .map_err(|e| map_err(e, Op::Other, false))
                })
                .await?;
            for k in page.keys() {
                if let Some(id) = k.key_id() {
                    all.push(KeySummary::new(
                        key_id_of(id)?,
                        k.key_arn().unwrap_or_default().to_owned(),
                    ));
                }
            }
            match (page.truncated, page.next_marker) {
                (true, Some(m)) => marker = Some(m),
                _ => break,
            }
        }
        Ok(req.page.slice(&all))
    }

    async fn enable_key(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        let id = key_param(key)?;
        let alias = is_alias(key);
        self.transport
            .run(|| async {
                self.client
                    .enable_key()
                    .key_id(&id)
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::State, alias))
            })
            .await?;
        Ok(())
    }

    async fn disable_key(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        let id = key_param(key)?;
        let alias = is_alias(key);
        self.transport
            .run(|| async {
                self.client
                    .disable_key()
                    .key_id(&id)
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::State, alias))
            })
            .await?;
        Ok(())
    }

    async fn schedule_key_deletion(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        pending_window_in_days: u32,
    ) -> Result<()> {
        if !(7..=AWS_MAX_PENDING_WINDOW_DAYS).contains(&pending_window_in_days) {
            return Err(Error::invalid(
                "PendingWindowInDays",
                "must be 7 to 30 on AWS KMS",
            ));
        }
        let id = key_param(key)?;
        let alias = is_alias(key);
        let days = i32::try_from(pending_window_in_days).unwrap_or(30);
        self.transport
            .run(|| async {
                self.client
                    .schedule_key_deletion()
                    .key_id(&id)
                    .pending_window_in_days(days)
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::State, alias))
            })
            .await?;
        Ok(())
    }

    async fn cancel_key_deletion(&self, caller: &Caller, key: &KeyRef) -> Result<()> {
        let id = key_param(key)?;
        let alias = is_alias(key);
        self.transport
            .run(|| async {
                self.client
                    .cancel_key_deletion()
                    .key_id(&id)
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::State, alias))
            })
            .await?;
        // AWS leaves a cancelled key Disabled; ours goes back to Enabled.
        self.enable_key(caller, key).await
    }

    async fn update_key_description(&self, _caller: &Caller, key: &KeyRef, description: &str) -> Result<()> {
        if description.chars().count() > 8192 {
            return Err(Error::invalid("Description", "at most 8192 characters"));
        }
        let id = key_param(key)?;
        let alias = is_alias(key);
        self.transport
            .run(|| async {
                self.client
                    .update_key_description()
                    .key_id(&id)
                    .description(description)
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, alias))
            })
            .await?;
        Ok(())
    }

    async fn set_deletion_protection(
        &self,
        _caller: &Caller,
        _key: &KeyRef,
        _enabled: bool,
        _description: &str,
    ) -> Result<()> {
        unsupported("deletion protection")
    }

    async fn create_alias(&self, _caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        let target = self.resolve(key).await?;
        self.transport
            .run(|| async {
                self.client
                    .create_alias()
                    .alias_name(alias.as_str())
                    .target_key_id(target.as_str())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, false))
            })
            .await?;
        Ok(())
    }

    async fn update_alias(&self, _caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        let target = self.resolve(key).await?;
        self.transport
            .run(|| async {
                self.client
                    .update_alias()
                    .alias_name(alias.as_str())
                    .target_key_id(target.as_str())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, true))
            })
            .await?;
        Ok(())
    }

    async fn delete_alias(&self, _caller: &Caller, alias: &AliasName) -> Result<()> {
        self.transport
            .run(|| async {
                self.client
                    .delete_alias()
                    .alias_name(alias.as_str())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, true))
            })
            .await?;
        Ok(())
    }

    async fn list_aliases(&self, _caller: &Caller, page: PageRequest) -> Result<Page<AliasInfo>> {
        page.validate()?;
        Ok(page.slice(&self.all_aliases(None).await?))
    }

    async fn list_aliases_by_key_id(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<AliasInfo>> {
        page.validate()?;
        let id = self.resolve(key).await?;
        Ok(page.slice(&self.all_aliases(Some(&id)).await?))
    }

    async fn encrypt(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        self.encrypt_raw(key, plaintext, ctx).await
    }

    async fn decrypt(
        &self,
        _caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Decrypted> {
        let context = context_map(ctx);
        let out = self
            .transport
            .run(|| async {
                self.client
                    .decrypt()
                    .ciphertext_blob(Blob::new(blob.as_bytes()))
                    .set_encryption_context(context.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, false))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let plaintext = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        Ok(Decrypted::new(key_id.clone(), version_of(&key_id), plaintext))
    }

    async fn re_encrypt(
        &self,
        _caller: &Caller,
        blob: &CiphertextBlob,
        source_ctx: &EncryptionContext,
        dest_key: &KeyRef,
        dest_ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let dest = key_param(dest_key)?;
        let alias = is_alias(dest_key);
        let (src, dst) = (context_map(source_ctx), context_map(dest_ctx));
        let out = self
            .transport
            .run(|| async {
                self.client
                    .re_encrypt()
                    .ciphertext_blob(Blob::new(blob.as_bytes()))
                    .set_source_encryption_context(src.clone())
                    .destination_key_id(&dest)
                    .set_destination_encryption_context(dst.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, alias))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| Error::Internal("ReEncrypt without CiphertextBlob".into()))?;
        Ok(Encrypted::new(
            key_id.clone(),
            version_of(&key_id),
            CiphertextBlob::from_bytes(blob.into_inner()),
        ))
    }

    async fn generate_data_key(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey> {
        let (spec, bytes) = data_key_param(len)?;
        let id = key_param(key)?;
        let alias = is_alias(key);
        let context = context_map(ctx);
        let out = self
            .transport
            .run(|| async {
                self.client
                    .generate_data_key()
                    .key_id(&id)
                    .set_key_spec(spec.clone())
                    .set_number_of_bytes(bytes)
                    .set_encryption_context(context.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, alias))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let plaintext = out
            .plaintext
            .ok_or_else(|| Error::Internal("GenerateDataKey without Plaintext".into()))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| Error::Internal("GenerateDataKey without CiphertextBlob".into()))?;
        Ok(GeneratedDataKey::new(
            key_id.clone(),
            version_of(&key_id),
            DataKey::new(SecretBytes::new(plaintext.into_inner())),
            CiphertextBlob::from_bytes(blob.into_inner()),
        ))
    }

    async fn generate_data_key_without_plaintext(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let (spec, bytes) = data_key_param(len)?;
        let id = key_param(key)?;
        let alias = is_alias(key);
        let context = context_map(ctx);
        let out = self
            .transport
            .run(|| async {
                self.client
                    .generate_data_key_without_plaintext()
                    .key_id(&id)
                    .set_key_spec(spec.clone())
                    .set_number_of_bytes(bytes)
                    .set_encryption_context(context.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, alias))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let blob = out.ciphertext_blob.ok_or_else(|| {
            Error::Internal("GenerateDataKeyWithoutPlaintext without CiphertextBlob".into())
        })?;
        Ok(Encrypted::new(
            key_id.clone(),
            version_of(&key_id),
            CiphertextBlob::from_bytes(blob.into_inner()),
        ))
    }

    /// The one visible version of an AWS key: its key id (AWS rotates key material behind the id).
    async fn list_key_versions(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<KeyVersion>> {
        page.validate()?;
        let v = self.the_version(key).await?;
        Ok(page.slice(&[v]))
    }

    async fn describe_key_version(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<KeyVersion> {
        let v = self.the_version(key).await?;
        check_version(&v.key_id, version)?;
        Ok(v)
    }

    async fn tag_resource(&self, caller: &Caller, key: &KeyRef, tags: &[Tag]) -> Result<()> {
        if tags.is_empty() {
            return Err(Error::MissingParameter("Tags"));
        }
        for t in tags {
            t.validate()?;
        }
        let existing = self.list_resource_tags(caller, key).await?;
        let mut keys: Vec<&str> = existing.iter().map(|t| t.tag_key.as_str()).collect();
        keys.extend(tags.iter().map(|t| t.tag_key.as_str()));
        keys.sort_unstable();
        keys.dedup();
        if keys.len() > Tag::MAX_PER_KEY {
            return Err(Error::LimitExceeded("at most 20 tags per key".into()));
        }
        let id = key_param(key)?;
        let alias = is_alias(key);
        let tags = aws_tags(tags)?;
        self.transport
            .run(|| async {
                self.client
                    .tag_resource()
                    .key_id(&id)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, alias))
            })
            .await?;
        Ok(())
    }

    async fn untag_resource(&self, _caller: &Caller, key: &KeyRef, tag_keys: &[String]) -> Result<()> {
        if tag_keys.is_empty() {
            return Err(Error::MissingParameter("TagKeys"));
        }
        let id = key_param(key)?;
        let alias = is_alias(key);
        self.transport
            .run(|| async {
                self.client
                    .untag_resource()
                    .key_id(&id)
                    .set_tag_keys(Some(tag_keys.to_vec()))
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, alias))
            })
            .await?;
        Ok(())
    }

    async fn list_resource_tags(&self, _caller: &Caller, key: &KeyRef) -> Result<Vec<Tag>> {
        let id = key_param(key)?;
        let alias = is_alias(key);
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..1000 {
            let page = self
                .transport
                .run(|| async {
                    self.client
                        .list_resource_tags()
                        .key_id(&id)
                        .set_marker(marker.clone())
                        .send()
                        .await
                        .map_err(|e| map_err(e, Op::Other, alias))
                })
                .await?;
            for t in page.tags() {
                out.push(Tag::new(t.tag_key(), t.tag_value())?);
            }
            match (page.truncated, page.next_marker) {
                (true, Some(m)) => marker = Some(m),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.tag_key.cmp(&b.tag_key));
        Ok(out)
    }

    async fn asymmetric_sign(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Signed> {
        let alg = signing_to_aws(algorithm)?;
        check_digest(algorithm, digest)?;
        let id = self.versioned(key, version).await?;
        let out = self
            .transport
            .run(|| async {
                self.client
                    .sign()
                    .key_id(id.as_str())
                    .message(Blob::new(digest))
                    .message_type(aws::MessageType::Digest)
                    .signing_algorithm(alg.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, false))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let sig = out
            .signature
            .ok_or_else(|| Error::Internal("Sign without Signature".into()))?;
        Ok(Signed::new(key_id.clone(), version_of(&key_id), sig.into_inner()))
    }

    async fn asymmetric_verify(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<Verified> {
        let alg = signing_to_aws(algorithm)?;
        check_digest(algorithm, digest)?;
        let id = self.versioned(key, version).await?;
        if signature.is_empty() {
            // AWS refuses an empty Signature outright; it verifies nothing.
            return Ok(Verified::new(id.clone(), version_of(&id), false));
        }
        let out = self
            .transport
            .run(|| async {
                match self
                    .client
                    .verify()
                    .key_id(id.as_str())
                    .message(Blob::new(digest))
                    .message_type(aws::MessageType::Digest)
                    .signature(Blob::new(signature))
                    .signing_algorithm(alg.clone())
                    .send()
                    .await
                {
                    Ok(out) => Ok(out.signature_valid),
                    // AWS KMS answers a signature that does not verify with this error, not `false`.
                    Err(e) if e.code() == Some("KMSInvalidSignatureException") => Ok(false),
                    Err(e) => Err(map_err(e, Op::Crypto, false)),
                }
            })
            .await?;
        Ok(Verified::new(id.clone(), version_of(&id), out))
    }

    async fn asymmetric_encrypt(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        plaintext: &[u8],
    ) -> Result<AsymmetricEncrypted> {
        let alg = encryption_to_aws(algorithm)?;
        if plaintext.is_empty() {
            return Err(Error::invalid("Plaintext", "AWS KMS encrypts at least 1 byte"));
        }
        let id = self.versioned(key, version).await?;
        let out = self
            .transport
            .run(|| async {
                self.client
                    .encrypt()
                    .key_id(id.as_str())
                    .plaintext(Blob::new(plaintext))
                    .encryption_algorithm(alg.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, false))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| Error::Internal("Encrypt without CiphertextBlob".into()))?;
        Ok(AsymmetricEncrypted::new(
            key_id.clone(),
            version_of(&key_id),
            blob.into_inner(),
        ))
    }

    async fn asymmetric_decrypt(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Decrypted> {
        let alg = encryption_to_aws(algorithm)?;
        let id = self.versioned(key, version).await?;
        let out = self
            .transport
            .run(|| async {
                self.client
                    .decrypt()
                    .key_id(id.as_str())
                    .ciphertext_blob(Blob::new(ciphertext))
                    .encryption_algorithm(alg.clone())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Crypto, false))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let plaintext = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        Ok(Decrypted::new(key_id.clone(), version_of(&key_id), plaintext))
    }

    async fn get_public_key(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<PublicKey> {
        let id = self.versioned(key, version).await?;
        let out = self
            .transport
            .run(|| async {
                self.client
                    .get_public_key()
                    .key_id(id.as_str())
                    .send()
                    .await
                    .map_err(|e| map_err(e, Op::Other, false))
            })
            .await?;
        let key_id = key_id_of(out.key_id().unwrap_or_default())?;
        let der = out
            .public_key
            .ok_or_else(|| Error::Internal("GetPublicKey without PublicKey".into()))?;
        Ok(PublicKey::new(
            key_id.clone(),
            version_of(&key_id),
            spki_pem(der.as_ref()),
        ))
    }

    /// AWS returns data keys raw: the plaintext of a GenerateDataKey blob is the key itself.
    async fn decrypt_data_key(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<DataKey> {
        let mut d = self.decrypt(caller, blob, ctx).await?;
        let bytes = std::mem::take(&mut *d.plaintext);
        Ok(DataKey::new(SecretBytes::new(bytes)))
    }
}

fn aws_tags(tags: &[Tag]) -> Result<Vec<aws::Tag>> {
    tags.iter()
        .map(|t| {
            aws::Tag::builder()
                .tag_key(&t.tag_key)
                .tag_value(&t.tag_value)
                .build()
                .map_err(|e| Error::invalid("Tags", e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map() {
        assert_eq!(
            map_code("NotFoundException", "", 400, Op::Other, false),
            ErrorCode::KeyNotFound
        );
        assert_eq!(
            map_code("NotFoundException", "", 400, Op::Other, true),
            ErrorCode::AliasNotFound
        );
        assert_eq!(
            map_code(
                "KMSInvalidStateException",
                "key is pending deletion",
                400,
                Op::Crypto,
                false
            ),
            ErrorCode::PendingDeletion
        );
        assert_eq!(
            map_code(
                "KMSInvalidStateException",
                "key is pending deletion",
                400,
                Op::State,
                false
            ),
            ErrorCode::StateModifiedFailed
        );
        assert_eq!(
            map_code("DisabledException", "", 400, Op::Crypto, false),
            ErrorCode::Disabled
        );
        assert_eq!(
            map_code("ThrottlingException", "", 400, Op::Crypto, false),
            ErrorCode::Throttling
        );
        assert_eq!(
            map_code("", "", 503, Op::Crypto, false),
            ErrorCode::ServiceUnavailableTemporary
        );
        assert_eq!(
            map_code("InvalidCiphertextException", "", 400, Op::Crypto, false),
            ErrorCode::InvalidParameter
        );
    }

    #[test]
    fn asymmetric_names_map() {
        use AsymmetricAlgorithm as A;
        let sign: Vec<_> = [A::RsaPssSha256, A::RsaPkcs1Sha256, A::EcdsaSha256, A::Sm2Dsa]
            .into_iter()
            .map(|a| {
                signing_to_aws(a)
                    .expect("a signing algorithm")
                    .as_str()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            sign,
            [
                "RSASSA_PSS_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_256",
                "ECDSA_SHA_256",
                "SM2DSA"
            ]
        );
        let enc: Vec<_> = [A::RsaesOaepSha256, A::RsaesOaepSha1, A::Sm2Pke]
            .into_iter()
            .map(|a| {
                encryption_to_aws(a)
                    .expect("an encryption algorithm")
                    .as_str()
                    .to_owned()
            })
            .collect();
        assert_eq!(enc, ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "SM2PKE"]);
        assert_eq!(
            signing_to_aws(A::RsaesOaepSha256).map(drop).unwrap_err().code(),
            ErrorCode::UnsupportedOperation
        );
        assert_eq!(
            encryption_to_aws(A::EcdsaSha256).map(drop).unwrap_err().code(),
            ErrorCode::UnsupportedOperation
        );
        for (ours, theirs) in [
            (KeySpec::Rsa2048, "RSA_2048"),
            (KeySpec::Rsa3072, "RSA_3072"),
            (KeySpec::EcP256, "ECC_NIST_P256"),
            (KeySpec::EcP256K, "ECC_SECG_P256K1"),
            (KeySpec::EcSm2, "SM2"),
        ] {
            let aws_spec = spec_to_aws(ours).expect("an AWS spec");
            assert_eq!(aws_spec.as_str(), theirs);
            assert_eq!(spec_from_aws(Some(&aws_spec)).expect("ours again"), ours);
        }
        assert_eq!(
            map_code(
                "ValidationException",
                "Value 'ECDSA_SHA_256' at 'SigningAlgorithm' failed to satisfy constraint",
                400,
                Op::Crypto,
                false
            ),
            ErrorCode::UnsupportedOperation
        );
    }

    #[test]
    fn public_keys_as_pem_and_the_one_version() {
        let der: Vec<u8> = (0..=200u8).collect();
        let pem = spki_pem(&der);
        assert_eq!(pem, kmskit_core::crypto::asym::spki_to_pem(&der));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let id = KeyId::new("1234abcd-12ab-34cd-56ef-1234567890ab").expect("an id");
        assert!(check_version(&id, &version_of(&id)).is_ok());
        let other = KeyVersionId::new("00000000-0000-4000-8000-000000000000").expect("a version");
        assert_eq!(
            check_version(&id, &other).unwrap_err().code(),
            ErrorCode::KeyVersionNotFound
        );
    }

    #[test]
    fn key_ids_from_arns() {
        let id = key_id_of("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
            .expect("an ARN");
        assert_eq!(id.as_str(), "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(key_id_of("abc").expect("an id").as_str(), "abc");
    }
}
