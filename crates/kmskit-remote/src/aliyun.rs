//! [`AliyunKms`]: the [`KeyProvider`] API on Alibaba Cloud KMS (or a kmskit-server), over the RPC API
//! with V2 (HMAC-SHA1) signatures, signed by kmskit-server's shared `sign` module.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kmskit_core::key::{AsymmetricAlgorithm, KeyVersion, Tag};
use kmskit_core::provider::{
    AliasInfo, AsymmetricEncrypted, Caller, CreateKey, DataKeyLength, Decrypted, Encrypted, GeneratedDataKey,
    KeyProvider, KeySummary, ListKeys, Page, PageRequest, PublicKey, Signed, Verified,
};
use kmskit_core::{
    AliasName, CiphertextBlob, DataKey, EncryptionContext, Error, ErrorCode, KeyId, KeyMetadata, KeyRef,
    KeyVersionId, Result, SecretBytes, Zeroizing,
};
use kmskit_server::sign::{self, AccessKeySecret};
use serde_json::Value;
use zeroize::Zeroize;

use crate::retry::{Failure, RetryPolicy, Transport};

/// The environment variable with the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
/// The environment variable with the access key secret.
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
/// The environment variable with an STS security token.
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds an [`AliyunKms`]: endpoint, credentials, timeouts, retries and the connection pool.
pub struct AliyunKmsBuilder {
    endpoint: Option<String>,
    access_key_id: Option<String>,
    secret: Option<AccessKeySecret>,
    security_token: Option<Zeroizing<String>>,
    connect_timeout: Duration,
    read_timeout: Duration,
    retry: RetryPolicy,
    max_connections: usize,
}

impl fmt::Debug for AliyunKmsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunKmsBuilder")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("retry", &self.retry)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for AliyunKmsBuilder {
    fn default() -> Self {
        Self {
            endpoint: None,
            access_key_id: None,
            secret: None,
            security_token: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_connections: 32,
        }
    }
}

impl AliyunKmsBuilder {
    /// The endpoint of a region: `https://kms.<region>.aliyuncs.com`.
    #[must_use]
    pub fn region(mut self, region: &str) -> Self {
        self.endpoint = Some(format!("https://kms.{region}.aliyuncs.com"));
        self
    }

    /// An explicit endpoint URL (`https://…` or, for a local kmskit-server, `http://127.0.0.1:PORT`).
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// The access key (instead of the environment variables).
    #[must_use]
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret = Some(AccessKeySecret::new(secret.into()));
        self
    }

    /// An STS security token sent with every request.
    #[must_use]
    pub fn security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(Zeroizing::new(token.into()));
        self
    }

    /// The TCP connect timeout (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// The time one attempt may take to answer (default 30 s).
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

    /// At most this many requests in flight and idle pooled connections (default 32).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Builds the client. Credentials not given come from `ALIBABA_CLOUD_ACCESS_KEY_ID`,
    /// `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and (optionally) `ALIBABA_CLOUD_SECURITY_TOKEN`.
    ///
    /// # Errors
    /// `MissingParameter` without an endpoint or credentials; `InvalidParameter` for a bad endpoint URL;
    /// `InternalFailure` when the system's root certificates cannot be loaded.
    pub fn build(self) -> Result<AliyunKms> {
        let endpoint = self.endpoint.ok_or(Error::MissingParameter("Endpoint"))?;
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|e| Error::invalid("Endpoint", format!("{e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(Error::invalid("Endpoint", "must be an http:// or https:// URL"));
        }
        let (access_key_id, secret) = match (self.access_key_id, self.secret) {
            (Some(id), Some(secret)) => (id, secret),
            _ => {
                let id =
                    std::env::var(ENV_ACCESS_KEY_ID).map_err(|_| Error::MissingParameter("AccessKeyId"))?;
                let secret = std::env::var(ENV_ACCESS_KEY_SECRET)
                    .map_err(|_| Error::MissingParameter("AccessKeySecret"))?;
                (id, AccessKeySecret::new(secret))
            }
        };
        let security_token = self.security_token.or_else(|| {
            std::env::var(ENV_SECURITY_TOKEN)
                .ok()
                .filter(|t| !t.is_empty())
                .map(Zeroizing::new)
        });
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::Internal(format!("loading root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client: HttpsClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(self.max_connections)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(AliyunKms {
            endpoint,
            access_key_id,
            secret,
            security_token,
            client,
            read_timeout: self.read_timeout,
            transport: Transport::new(self.retry, self.max_connections),
        })
    }
}

/// Alibaba Cloud KMS (or a kmskit-server) as a [`KeyProvider`].
///
/// Requests are `POST`s with a form body, signed with V2 (HMAC-SHA1) by kmskit-server's `sign` module,
/// so client and server share one implementation. Plaintexts travel as text, as in the model service:
/// [`KeyProvider::encrypt`] takes UTF-8 plaintexts only (envelope encryption and streams are not
/// affected: their data keys travel Base64-encoded).
///
/// ```no_run
/// # async fn demo() -> kmskit_core::Result<()> {
/// use kmskit_core::{Caller, CreateKey, KeyProvider};
/// use kmskit_remote::AliyunKms;
///
/// // Credentials from ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET.
/// let kms = AliyunKms::builder().region("cn-hangzhou").build()?;
/// let key = kms.create_key(&Caller::local(), CreateKey::new("orders")).await?;
/// # let _ = key; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AliyunKms {
    endpoint: String,
    access_key_id: String,
    secret: AccessKeySecret,
    security_token: Option<Zeroizing<String>>,
    client: HttpsClient,
    read_timeout: Duration,
    transport: Transport,
}

impl fmt::Debug for AliyunKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunKms")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"[REDACTED]")
            .field("retry", &self.transport.policy)
            .finish_non_exhaustive()
    }
}

fn s(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Internal(format!("{what} does not parse: {e}")))
}

fn ctx_param(ctx: &EncryptionContext) -> Option<String> {
    (!ctx.is_empty()).then(|| ctx.to_json())
}

fn page_params(p: &PageRequest) -> [(&'static str, String); 2] {
    [
        ("PageNumber", p.page_number.to_string()),
        ("PageSize", p.page_size.to_string()),
    ]
}

/// A page from `{outer: {inner: [..]}, TotalCount, PageNumber, PageSize}`.
fn paged<T: serde::de::DeserializeOwned + Clone>(v: &Value, outer: &str, inner: &str) -> Result<Page<T>> {
    let items: Vec<T> = match v.get(outer).and_then(|o| o.get(inner)) {
        Some(list) => parse(list.clone(), inner)?,
        None => Vec::new(),
    };
    let n = |f: &str| v.get(f).and_then(Value::as_u64).unwrap_or(0);
    let mut page = PageRequest {
        page_number: 1,
        page_size: u32::try_from(items.len()).unwrap_or(u32::MAX),
    }
    .slice(&items);
    page.total_count = n("TotalCount");
    page.page_number = u32::try_from(n("PageNumber")).unwrap_or(1);
    page.page_size = u32::try_from(n("PageSize")).unwrap_or(10);
    Ok(page)
}

fn encrypted(v: &Value) -> Result<Encrypted> {
    Ok(Encrypted::new(
        KeyId::new(s(v, "KeyId"))?,
        KeyVersionId::new(s(v, "KeyVersionId"))?,
        CiphertextBlob::from_base64(&s(v, "CiphertextBlob"))?,
    ))
}

/// The parameters every asymmetric action starts with.
fn asym_params(
    key: &KeyRef,
    version: &KeyVersionId,
    algorithm: Option<AsymmetricAlgorithm>,
) -> Vec<(&'static str, String)> {
    let mut p = vec![("KeyId", key.to_string()), ("KeyVersionId", version.to_string())];
    if let Some(a) = algorithm {
        p.push(("Algorithm", a.as_str().to_owned()));
    }
    p
}

/// The `KeyId` and `KeyVersionId` of an answer.
fn ids(v: &Value) -> Result<(KeyId, KeyVersionId)> {
    Ok((
        KeyId::new(s(v, "KeyId"))?,
        KeyVersionId::new(s(v, "KeyVersionId"))?,
    ))
}

/// A Base64 field of an answer (spec §7: the asymmetric actions' bytes travel as Base64).
fn b64_field(v: &Value, field: &str, action: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s(v, field))
        .map_err(|_| Error::Internal(format!("{action} answered a {field} that is not Base64")))
}

impl AliyunKms {
    /// A builder; see [`AliyunKmsBuilder`].
    pub fn builder() -> AliyunKmsBuilder {
        AliyunKmsBuilder::default()
    }

    /// The endpoint this client calls.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Signs and sends one action; retries per the policy; returns the JSON answer.
    async fn call(&self, action: &str, params: &[(&str, String)]) -> Result<Value> {
        self.transport
            .run(|| async { self.attempt(action, params).await })
            .await
    }

    async fn attempt(&self, action: &str, params: &[(&str, String)]) -> Result<Value, Failure> {
        let mut pairs: Vec<(String, String)> =
            params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        if let Some(t) = &self.security_token {
            pairs.push(("SecurityToken".to_owned(), t.to_string()));
        }
        let now = kmskit_core::Timestamp::from_system(std::time::SystemTime::now()).unix();
        sign::sign_v2(
            "POST",
            action,
            &mut pairs,
            &self.access_key_id,
            &self.secret,
            &sign::new_nonce(),
            &sign::format_timestamp(now),
        );
        let body = Zeroizing::new(sign::encode_pairs(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ));
        for (_, v) in &mut pairs {
            v.zeroize();
        }
        let req = hyper::Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| Failure::fatal(Error::Internal(format!("building a request: {e}"))))?;
        let unavailable = |what: String| Failure {
            error: Error::Unavailable {
                message: format!("{action} to {}: {what}", self.endpoint),
                retryable: true,
                source: None,
            },
            retryable: true,
        };
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unavailable(format!("{e:?}")))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .to_bytes();
            Ok::<_, Failure>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.read_timeout, exchange)
            .await
            .map_err(|_| unavailable("timed out".into()))??;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(v);
        }
        let code = s(&v, "Code");
        let message = s(&v, "Message");
        let ours = ErrorCode::from_code_str(&code).unwrap_or(match status {
            500.. => ErrorCode::ServiceUnavailableTemporary,
            403 => ErrorCode::NoPermission,
            404 => ErrorCode::KeyNotFound,
            _ => ErrorCode::InvalidParameter,
        });
        let retryable = status >= 500 || status == 429 || code.starts_with("Throttling");
        Err(Failure {
            error: Error::Remote {
                code: ours,
                message: format!("{code} (HTTP {status}): {message}"),
            },
            retryable,
        })
    }
}

#[async_trait]
impl KeyProvider for AliyunKms {
    async fn create_key(&self, _caller: &Caller, req: CreateKey) -> Result<KeyMetadata> {
        let mut p = vec![("Description", req.description.clone())];
        if let Some(s) = req.key_spec {
            p.push(("KeySpec", s.as_str().to_owned()));
        }
        if let Some(u) = req.key_usage {
            p.push(("KeyUsage", u.as_str().to_owned()));
        }
        if let Some(o) = req.origin {
            p.push(("Origin", o.as_str().to_owned()));
        }
        if let Some(l) = req.protection_level {
            p.push(("ProtectionLevel", l.as_str().to_owned()));
        }
        if !req.tags.is_empty() {
            p.push(("Tags", tags_json(&req.tags)?));
        }
        let v = self.call("CreateKey", &p).await?;
        parse(
            v.get("KeyMetadata").cloned().unwrap_or(Value::Null),
            "KeyMetadata",
        )
    }

    async fn describe_key(&self, _caller: &Caller, key: &KeyRef) -> Result<KeyMetadata> {
        let v = self.call("DescribeKey", &[("KeyId", key.to_string())]).await?;
        parse(
            v.get("KeyMetadata").cloned().unwrap_or(Value::Null),
            "KeyMetadata",
        )
    }

    async fn list_keys(&self, _caller: &Caller, req: ListKeys) -> Result<Page<KeySummary>> {
        req.page.validate()?;
        let mut p = page_params(&req.page).to_vec();
        if !req.filters.is_empty() {
            p.push((
                "Filters",
                serde_json::to_string(&req.filters).map_err(|e| Error::invalid("Filters", e.to_string()))?,
            ));
        }
        paged(&self.call("ListKeys", &p).await?, "Keys", "Key")
    }

    async fn enable_key(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        self.call("EnableKey", &[("KeyId", key.to_string())])
            .await
            .map(drop)
    }

    async fn disable_key(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        self.call("DisableKey", &[("KeyId", key.to_string())])
            .await
            .map(drop)
    }

    async fn schedule_key_deletion(&self, _caller: &Caller, key: &KeyRef, days: u32) -> Result<()> {
        self.call(
            "ScheduleKeyDeletion",
            &[
                ("KeyId", key.to_string()),
                ("PendingWindowInDays", days.to_string()),
            ],
        )
        .await
        .map(drop)
    }

    async fn cancel_key_deletion(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        self.call("CancelKeyDeletion", &[("KeyId", key.to_string())])
            .await
            .map(drop)
    }

    async fn update_key_description(&self, _caller: &Caller, key: &KeyRef, description: &str) -> Result<()> {
        self.call(
            "UpdateKeyDescription",
            &[
                ("KeyId", key.to_string()),
                ("Description", description.to_owned()),
            ],
        )
        .await
        .map(drop)
    }

    async fn set_deletion_protection(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        enabled: bool,
        description: &str,
    ) -> Result<()> {
        self.call(
            "SetDeletionProtection",
            &[
                ("KeyId", key.to_string()),
                ("EnableDeletionProtection", enabled.to_string()),
                ("DeletionProtectionDescription", description.to_owned()),
            ],
        )
        .await
        .map(drop)
    }

    async fn create_alias(&self, _caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        self.call(
            "CreateAlias",
            &[("AliasName", alias.to_string()), ("KeyId", key.to_string())],
        )
        .await
        .map(drop)
    }

    async fn update_alias(&self, _caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        self.call(
            "UpdateAlias",
            &[("AliasName", alias.to_string()), ("KeyId", key.to_string())],
        )
        .await
        .map(drop)
    }

    async fn delete_alias(&self, _caller: &Caller, alias: &AliasName) -> Result<()> {
        self.call("DeleteAlias", &[("AliasName", alias.to_string())])
            .await
            .map(drop)
    }

    async fn list_aliases(&self, _caller: &Caller, page: PageRequest) -> Result<Page<AliasInfo>> {
        page.validate()?;
        paged(
            &self.call("ListAliases", &page_params(&page)).await?,
            "Aliases",
            "Alias",
        )
    }

    async fn list_aliases_by_key_id(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<AliasInfo>> {
        page.validate()?;
        let mut p = page_params(&page).to_vec();
        p.push(("KeyId", key.to_string()));
        paged(&self.call("ListAliasesByKeyId", &p).await?, "Aliases", "Alias")
    }

    async fn encrypt(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let text = std::str::from_utf8(plaintext)
            .map_err(|_| Error::invalid("Plaintext", "the RPC API carries text plaintexts only (UTF-8)"))?;
        let mut p = vec![("KeyId", key.to_string()), ("Plaintext", text.to_owned())];
        if let Some(c) = ctx_param(ctx) {
            p.push(("EncryptionContext", c));
        }
        let result = self.call("Encrypt", &p).await;
        for (_, v) in &mut p {
            v.zeroize();
        }
        encrypted(&result?)
    }

    async fn decrypt(
        &self,
        _caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Decrypted> {
        let mut p = vec![("CiphertextBlob", blob.to_base64())];
        if let Some(c) = ctx_param(ctx) {
            p.push(("EncryptionContext", c));
        }
        let mut v = self.call("Decrypt", &p).await?;
        let plaintext = match v.get_mut("Plaintext") {
            Some(Value::String(s)) => Zeroizing::new(std::mem::take(s).into_bytes()),
            _ => Zeroizing::new(Vec::new()),
        };
        Ok(Decrypted::new(
            KeyId::new(s(&v, "KeyId"))?,
            KeyVersionId::new(s(&v, "KeyVersionId"))?,
            plaintext,
        ))
    }

    async fn re_encrypt(
        &self,
        _caller: &Caller,
        blob: &CiphertextBlob,
        source_ctx: &EncryptionContext,
        dest_key: &KeyRef,
        dest_ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let mut p = vec![
            ("CiphertextBlob", blob.to_base64()),
            ("DestinationKeyId", dest_key.to_string()),
        ];
        if let Some(c) = ctx_param(source_ctx) {
            p.push(("SourceEncryptionContext", c));
        }
        if let Some(c) = ctx_param(dest_ctx) {
            p.push(("DestinationEncryptionContext", c));
        }
        encrypted(&self.call("ReEncrypt", &p).await?)
    }

    async fn generate_data_key(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey> {
        let p = data_key_params(key, len, ctx)?;
        let mut v = self.call("GenerateDataKey", &p).await?;
        let text = match v.get_mut("Plaintext") {
            Some(Value::String(s)) => Zeroizing::new(std::mem::take(s)),
            _ => Zeroizing::new(String::new()),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| Error::Internal("GenerateDataKey answered a Plaintext that is not Base64".into()))?;
        let e = encrypted(&v)?;
        Ok(GeneratedDataKey::new(
            e.key_id,
            e.key_version_id,
            DataKey::new(SecretBytes::new(raw)),
            e.ciphertext_blob,
        ))
    }

    async fn generate_data_key_without_plaintext(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let p = data_key_params(key, len, ctx)?;
        encrypted(&self.call("GenerateDataKeyWithoutPlaintext", &p).await?)
    }

    async fn list_key_versions(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<KeyVersion>> {
        page.validate()?;
        let mut p = page_params(&page).to_vec();
        p.push(("KeyId", key.to_string()));
        paged(
            &self.call("ListKeyVersions", &p).await?,
            "KeyVersions",
            "KeyVersion",
        )
    }

    async fn describe_key_version(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<KeyVersion> {
        let v = self
            .call(
                "DescribeKeyVersion",
                &[("KeyId", key.to_string()), ("KeyVersionId", version.to_string())],
            )
            .await?;
        parse(v.get("KeyVersion").cloned().unwrap_or(Value::Null), "KeyVersion")
    }

    async fn tag_resource(&self, _caller: &Caller, key: &KeyRef, tags: &[Tag]) -> Result<()> {
        if tags.is_empty() {
            return Err(Error::MissingParameter("Tags"));
        }
        self.call(
            "TagResource",
            &[("KeyId", key.to_string()), ("Tags", tags_json(tags)?)],
        )
        .await
        .map(drop)
    }

    async fn untag_resource(&self, _caller: &Caller, key: &KeyRef, tag_keys: &[String]) -> Result<()> {
        let keys = serde_json::to_string(tag_keys).map_err(|e| Error::invalid("TagKeys", e.to_string()))?;
        self.call("UntagResource", &[("KeyId", key.to_string()), ("TagKeys", keys)])
            .await
            .map(drop)
    }

    async fn list_resource_tags(&self, _caller: &Caller, key: &KeyRef) -> Result<Vec<Tag>> {
        let v = self
            .call("ListResourceTags", &[("KeyId", key.to_string())])
            .await?;
        let rows = v
            .get("Tags")
            .and_then(|t| t.get("Tag"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        rows.iter()
            .map(|r| Tag::new(s(r, "TagKey"), s(r, "TagValue")))
            .collect()
    }

    async fn asymmetric_sign(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Signed> {
        let mut p = asym_params(key, version, Some(algorithm));
        p.push(("Digest", base64::engine::general_purpose::STANDARD.encode(digest)));
        let v = self.call("AsymmetricSign", &p).await?;
        let (key_id, version_id) = ids(&v)?;
        Ok(Signed::new(
            key_id,
            version_id,
            b64_field(&v, "Value", "AsymmetricSign")?,
        ))
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
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut p = asym_params(key, version, Some(algorithm));
        p.push(("Digest", b64.encode(digest)));
        p.push(("Value", b64.encode(signature)));
        let v = self.call("AsymmetricVerify", &p).await?;
        let (key_id, version_id) = ids(&v)?;
        // A JSON boolean (spec §5); tolerate the text form too.
        let valid = match v.get("Value") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(t)) if t.eq_ignore_ascii_case("true") => true,
            Some(Value::String(t)) if t.eq_ignore_ascii_case("false") => false,
            _ => {
                return Err(Error::Internal(
                    "AsymmetricVerify answered no boolean Value".into(),
                ));
            }
        };
        Ok(Verified::new(key_id, version_id, valid))
    }

    async fn asymmetric_encrypt(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        plaintext: &[u8],
    ) -> Result<AsymmetricEncrypted> {
        let mut p = asym_params(key, version, Some(algorithm));
        p.push((
            "Plaintext",
            base64::engine::general_purpose::STANDARD.encode(plaintext),
        ));
        let result = self.call("AsymmetricEncrypt", &p).await;
        for (_, v) in &mut p {
            v.zeroize();
        }
        let v = result?;
        let (key_id, version_id) = ids(&v)?;
        Ok(AsymmetricEncrypted::new(
            key_id,
            version_id,
            b64_field(&v, "CiphertextBlob", "AsymmetricEncrypt")?,
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
        let mut p = asym_params(key, version, Some(algorithm));
        p.push((
            "CiphertextBlob",
            base64::engine::general_purpose::STANDARD.encode(ciphertext),
        ));
        let mut v = self.call("AsymmetricDecrypt", &p).await?;
        let (key_id, version_id) = ids(&v)?;
        let text = match v.get_mut("Plaintext") {
            Some(Value::String(s)) => Zeroizing::new(std::mem::take(s)),
            _ => Zeroizing::new(String::new()),
        };
        let plaintext = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| {
                    Error::Internal("AsymmetricDecrypt answered a Plaintext that is not Base64".into())
                })?,
        );
        Ok(Decrypted::new(key_id, version_id, plaintext))
    }

    async fn get_public_key(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<PublicKey> {
        let v = self
            .call("GetPublicKey", &asym_params(key, version, None))
            .await?;
        let (key_id, version_id) = ids(&v)?;
        let pem = s(&v, "PublicKey");
        if !pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(Error::Internal("GetPublicKey answered no PEM public key".into()));
        }
        Ok(PublicKey::new(key_id, version_id, pem))
    }
}

fn tags_json(tags: &[Tag]) -> Result<String> {
    serde_json::to_string(tags).map_err(|e| Error::invalid("Tags", e.to_string()))
}

fn data_key_params(
    key: &KeyRef,
    len: DataKeyLength,
    ctx: &EncryptionContext,
) -> Result<Vec<(&'static str, String)>> {
    let mut p = vec![("KeyId", key.to_string())];
    match len {
        DataKeyLength::Spec(s) => p.push(("KeySpec", s.as_str().to_owned())),
        other => p.push(("NumberOfBytes", other.bytes()?.to_string())),
    }
    if let Some(c) = ctx_param(ctx) {
        p.push(("EncryptionContext", c));
    }
    Ok(p)
}
