//! The actions of spec §8 over a [`KeyProvider`]: parameters in, JSON out.

use base64::Engine as _;
use kmskit_core::key::{AsymmetricAlgorithm, KeyVersion};
use kmskit_core::provider::{AliasInfo, KeyFilter, Page};
use kmskit_core::rotate::{RotationPolicy, Rotator};
use kmskit_core::{
    AliasName, Caller, CiphertextBlob, CreateKey, DataKeyLength, DataKeySpec, EncryptionContext, KeyProvider,
    KeyRef, KeyVersionId, ListKeys, PageRequest, Tag,
};
use serde_json::{Value, json};

use crate::wire::{ApiError, Params};

/// Every action this server answers (the actions of spec §8 that [`KeyProvider`] offers). Any other
/// action gets `InvalidAction.NotFound`.
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "UpdateKeyDescription",
    "SetDeletionProtection",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "ListAliasesByKeyId",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ListKeyVersions",
    "DescribeKeyVersion",
    "TagResource",
    "UntagResource",
    "ListResourceTags",
    "TagResources",
    "UntagResources",
    "ListTagResources",
    "AsymmetricSign",
    "AsymmetricVerify",
    "AsymmetricEncrypt",
    "AsymmetricDecrypt",
    "GetPublicKey",
];

/// The actions served only when the server has a [`Rotator`] (`ServerBuilder::rotator`); without one
/// they get `InvalidAction.NotFound`.
pub const ROTATION_ACTIONS: &[&str] = &["CreateKeyVersion", "UpdateRotationPolicy"];

/// Whether `action` is one of [`SUPPORTED_ACTIONS`].
pub fn is_supported(action: &str) -> bool {
    SUPPORTED_ACTIONS.contains(&action)
}

/// Whether `action` is one of [`ROTATION_ACTIONS`].
pub fn is_rotation(action: &str) -> bool {
    ROTATION_ACTIONS.contains(&action)
}

/// The policy of `EnableAutomaticRotation` + `RotationInterval` (required when enabling; `7d`, `604800s`).
fn rotation_policy(p: &Params, enabled: bool) -> Result<RotationPolicy, ApiError> {
    if !enabled {
        return Ok(RotationPolicy::disabled());
    }
    match p.get("RotationInterval") {
        None | Some("") => Err(ApiError::missing("RotationInterval")),
        Some(s) => Ok(RotationPolicy::parse_interval(s)?),
    }
}

fn key_ref(p: &Params, name: &'static str) -> Result<KeyRef, ApiError> {
    let s = p.required(name)?;
    KeyRef::parse(s).map_err(|e| match e {
        kmskit_core::Error::InvalidParameter { reason, .. } => ApiError::invalid(name, reason),
        other => other.into(),
    })
}

fn context(p: &Params, name: &'static str) -> Result<EncryptionContext, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(EncryptionContext::new()),
        Some(s) => EncryptionContext::from_json(s).map_err(|e| match e {
            kmskit_core::Error::InvalidParameter { reason, .. } => ApiError::invalid(name, reason),
            other => other.into(),
        }),
    }
}

fn blob(p: &Params, name: &'static str) -> Result<CiphertextBlob, ApiError> {
    let s = p.required(name)?;
    CiphertextBlob::from_base64(s).map_err(|_| ApiError::invalid(name, "not a ciphertext blob"))
}

/// A required Base64 parameter (spec §7: Digest, Value, Plaintext and CiphertextBlob of the asymmetric
/// actions are Base64 of raw bytes): `MissingParameter` when absent or empty, `InvalidParameter` when it
/// is not standard Base64 (with or without padding).
fn base64_param(p: &Params, name: &'static str) -> Result<Vec<u8>, ApiError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let s = p.required(name)?;
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .map_err(|_| ApiError::invalid(name, "not Base64"))
}

/// The required `KeyVersionId` (asymmetric keys have no primary version, so every asymmetric action
/// names one).
fn key_version(p: &Params) -> Result<KeyVersionId, ApiError> {
    let s = p.required("KeyVersionId")?;
    KeyVersionId::new(s).map_err(|e| match e {
        kmskit_core::Error::InvalidParameter { reason, .. } => ApiError::invalid("KeyVersionId", reason),
        other => other.into(),
    })
}

/// The required `Algorithm` (spec §6 spellings); an unknown name is `InvalidParameter`, a known one the
/// key cannot run is the engine's `Rejected.UnsupportedOperation`.
fn algorithm(p: &Params) -> Result<AsymmetricAlgorithm, ApiError> {
    let s = p.required("Algorithm")?;
    s.parse()
        .map_err(|_| ApiError::invalid("Algorithm", format!("unknown algorithm {s:?}")))
}

fn page(p: &Params) -> Result<PageRequest, ApiError> {
    let n = p.opt_u32("PageNumber")?.unwrap_or(1);
    let s = p.opt_u32("PageSize")?.unwrap_or(10);
    Ok(PageRequest::new(n, s)?)
}

fn alias(p: &Params) -> Result<AliasName, ApiError> {
    Ok(AliasName::new(p.required("AliasName")?)?)
}

fn dry_run(p: &Params) -> Result<(), ApiError> {
    if p.opt_bool("DryRun")? == Some(true) {
        return Err(ApiError::custom(
            "DryRunOperationError",
            412,
            "The request would have succeeded, but DryRun was set.",
        ));
    }
    Ok(())
}

fn data_key_len(p: &Params) -> Result<DataKeyLength, ApiError> {
    if let Some(n) = p.opt_u32("NumberOfBytes")? {
        let n = u16::try_from(n)
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| ApiError::invalid("NumberOfBytes", "must be 1 to 1024"))?;
        return Ok(DataKeyLength::Bytes(n));
    }
    match p.get("KeySpec") {
        None | Some("") => Ok(DataKeyLength::default()),
        Some(s) => Ok(DataKeyLength::Spec(s.parse::<DataKeySpec>()?)),
    }
}

fn tags_json(p: &Params, name: &'static str) -> Result<Vec<Tag>, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(Vec::new()),
        Some(s) => {
            let tags: Vec<Tag> = serde_json::from_str(s)
                .map_err(|_| ApiError::invalid(name, "must be a JSON list of {\"TagKey\",\"TagValue\"}"))?;
            for t in &tags {
                t.validate()?;
            }
            Ok(tags)
        }
    }
}

/// Removes `null` members (fields the model service leaves out when they do not apply).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, ApiError> {
    serde_json::to_value(t)
        .map(strip_nulls)
        .map_err(|e| kmskit_core::Error::Internal(format!("serialising a response: {e}")).into())
}

fn paged<T>(
    outer: &str,
    inner: &str,
    page: Page<T>,
    f: impl Fn(&T) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let items = page.items.iter().map(f).collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        outer: { inner: items },
        "TotalCount": page.total_count,
        "PageNumber": page.page_number,
        "PageSize": page.page_size,
    }))
}

fn alias_value(a: &AliasInfo) -> Result<Value, ApiError> {
    to_value(a)
}

fn version_value(v: &KeyVersion) -> Result<Value, ApiError> {
    to_value(v)
}

/// Text of a Decrypt plaintext: the bytes as given to Encrypt when they are UTF-8 (spec §7); other bytes
/// (encrypted by an in-process caller) come back as their Base64.
fn plaintext_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// A repeat-list parameter (`Name.1`, `Name.2`, …; with `suffix`, `Name.N.suffix`), in index order.
fn repeat_list<'a>(p: &'a Params, name: &str, suffix: Option<&str>) -> Result<Vec<(u32, &'a str)>, ApiError> {
    let mut out = Vec::new();
    for (k, v) in p.iter() {
        let Some(rest) = k.strip_prefix(name).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let idx = match suffix {
            None => rest,
            Some(sfx) => match rest.split_once('.') {
                Some((i, s)) if s == sfx => i,
                _ => continue,
            },
        };
        let n: u32 = idx
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid("RepeatList", format!("bad index in {k}")))?;
        out.push((n, v));
    }
    out.sort_unstable_by_key(|(n, _)| *n);
    Ok(out)
}

fn key_resources(p: &Params, required: bool) -> Result<Vec<KeyRef>, ApiError> {
    let rt = p.required("ResourceType")?;
    if !rt.eq_ignore_ascii_case("key") {
        return Err(
            kmskit_core::Error::Unsupported(format!("ResourceType {rt:?}: only key is supported")).into(),
        );
    }
    let ids = repeat_list(p, "ResourceId", None)?;
    if ids.len() > 50 {
        return Err(ApiError::invalid("ResourceId", "at most 50 resources"));
    }
    if required && ids.is_empty() {
        return Err(ApiError::missing("ResourceId.1"));
    }
    ids.into_iter()
        .map(|(_, v)| KeyRef::parse(v).map_err(|e| ApiError::invalid("ResourceId", e)))
        .collect()
}

fn new_style_tags(p: &Params) -> Result<Vec<Tag>, ApiError> {
    let keys = repeat_list(p, "Tag", Some("Key"))?;
    let values = repeat_list(p, "Tag", Some("Value"))?;
    if keys.len() > 20 {
        return Err(ApiError::invalid("Tag", "at most 20 tags"));
    }
    keys.into_iter()
        .map(|(n, k)| {
            let v = values.iter().find(|(m, _)| *m == n).map_or("", |(_, v)| *v);
            Tag::new(k, v).map_err(ApiError::from)
        })
        .collect()
}

/// Rows of ListTagResources per page.
const TAG_ROWS_PER_PAGE: usize = 200;

/// Runs `action` with `params` on `provider` for `caller`. Returns the response fields (without
/// `RequestId`).
///
/// # Errors
/// `InvalidAction.NotFound` for an action outside [`SUPPORTED_ACTIONS`]; parameter errors; the provider's
/// errors with their codes.
pub async fn dispatch(
    provider: &dyn KeyProvider,
    caller: &Caller,
    action: &str,
    p: &Params,
) -> Result<Value, ApiError> {
    dispatch_with(provider, None, caller, action, p).await
}

/// As [`dispatch`], and with a `rotator` also the [`ROTATION_ACTIONS`] (`CreateKeyVersion`,
/// `UpdateRotationPolicy`) and CreateKey's `EnableAutomaticRotation`.
///
/// # Errors
/// As [`dispatch`]; `InvalidAction.NotFound` for a rotation action without a rotator.
pub async fn dispatch_with(
    provider: &dyn KeyProvider,
    rotator: Option<&dyn Rotator>,
    caller: &Caller,
    action: &str,
    p: &Params,
) -> Result<Value, ApiError> {
    let v = match action {
        "CreateKey" => {
            let mut req = CreateKey::new(p.get("Description").unwrap_or(""));
            if let Some(s) = p.get("KeySpec").filter(|s| !s.is_empty()) {
                req = req.key_spec(s.parse()?);
            }
            if let Some(s) = p.get("KeyUsage").filter(|s| !s.is_empty()) {
                req = req.key_usage(s.parse()?);
            }
            if let Some(s) = p.get("Origin").filter(|s| !s.is_empty()) {
                req = req.origin(s.parse().map_err(|_| {
                    ApiError::new(
                        kmskit_core::ErrorCode::UnsupportedOrigin,
                        format!("Origin {s:?} is not supported."),
                    )
                })?);
            }
            if let Some(s) = p.get("ProtectionLevel").filter(|s| !s.is_empty()) {
                req = req.protection_level(s.parse().map_err(|_| {
                    ApiError::new(
                        kmskit_core::ErrorCode::UnsupportedProtectionLevel,
                        format!("ProtectionLevel {s:?} is not supported."),
                    )
                })?);
            }
            let policy = match (p.opt_bool("EnableAutomaticRotation")? == Some(true), rotator) {
                (false, _) => None,
                (true, Some(r)) => Some((r, rotation_policy(p, true)?)),
                (true, None) => {
                    return Err(kmskit_core::Error::Unsupported(
                        "automatic rotation is not offered by this provider".into(),
                    )
                    .into());
                }
            };
            for t in tags_json(p, "Tags")? {
                req = req.tag(t);
            }
            let mut meta = provider.create_key(caller, req).await?;
            if let Some((r, policy)) = policy {
                let key = KeyRef::Id(meta.key_id.clone());
                r.set_rotation_policy(caller, &key, policy).await?;
                meta = provider.describe_key(caller, &key).await?;
            }
            json!({ "KeyMetadata": to_value(&meta)? })
        }
        "DescribeKey" => {
            let meta = provider.describe_key(caller, &key_ref(p, "KeyId")?).await?;
            json!({ "KeyMetadata": to_value(&meta)? })
        }
        "ListKeys" => {
            let mut req = ListKeys::new(page(p)?);
            if let Some(f) = p.get("Filters") {
                for filter in KeyFilter::parse_list(f)? {
                    req = req.filter(filter);
                }
            }
            let pg = provider.list_keys(caller, req).await?;
            paged("Keys", "Key", pg, to_value)?
        }
        "EnableKey" => {
            provider.enable_key(caller, &key_ref(p, "KeyId")?).await?;
            json!({})
        }
        "DisableKey" => {
            provider.disable_key(caller, &key_ref(p, "KeyId")?).await?;
            json!({})
        }
        "ScheduleKeyDeletion" => {
            let key = key_ref(p, "KeyId")?;
            let days = p
                .opt_u32("PendingWindowInDays")?
                .ok_or_else(|| ApiError::missing("PendingWindowInDays"))?;
            provider.schedule_key_deletion(caller, &key, days).await?;
            json!({})
        }
        "CancelKeyDeletion" => {
            provider
                .cancel_key_deletion(caller, &key_ref(p, "KeyId")?)
                .await?;
            json!({})
        }
        "UpdateKeyDescription" => {
            let key = key_ref(p, "KeyId")?;
            let d = p
                .get("Description")
                .ok_or_else(|| ApiError::missing("Description"))?;
            provider.update_key_description(caller, &key, d).await?;
            json!({})
        }
        "SetDeletionProtection" => {
            let enabled = p.required_bool("EnableDeletionProtection")?;
            let key = match (
                p.get("ProtectedResourceArn").filter(|s| !s.is_empty()),
                p.get("KeyId"),
            ) {
                (Some(arn), _) => {
                    KeyRef::parse(arn).map_err(|e| ApiError::invalid("ProtectedResourceArn", e))?
                }
                (None, Some(k)) if !k.is_empty() => key_ref(p, "KeyId")?,
                _ => return Err(ApiError::missing("ProtectedResourceArn")),
            };
            let d = p.get("DeletionProtectionDescription").unwrap_or("");
            provider.set_deletion_protection(caller, &key, enabled, d).await?;
            json!({})
        }
        "CreateAlias" => {
            let a = alias(p)?;
            provider.create_alias(caller, &a, &key_ref(p, "KeyId")?).await?;
            json!({})
        }
        "UpdateAlias" => {
            let a = alias(p)?;
            provider.update_alias(caller, &a, &key_ref(p, "KeyId")?).await?;
            json!({})
        }
        "DeleteAlias" => {
            provider.delete_alias(caller, &alias(p)?).await?;
            json!({})
        }
        "ListAliases" => {
            let pg = provider.list_aliases(caller, page(p)?).await?;
            paged("Aliases", "Alias", pg, alias_value)?
        }
        "ListAliasesByKeyId" => {
            let key = key_ref(p, "KeyId")?;
            let pg = provider.list_aliases_by_key_id(caller, &key, page(p)?).await?;
            paged("Aliases", "Alias", pg, alias_value)?
        }
        "Encrypt" => {
            let key = key_ref(p, "KeyId")?;
            let pt = p.required("Plaintext")?;
            let ctx = context(p, "EncryptionContext")?;
            dry_run(p)?;
            let e = provider.encrypt(caller, &key, pt.as_bytes(), &ctx).await?;
            json!({
                "KeyId": e.key_id.as_str(),
                "KeyVersionId": e.key_version_id.as_str(),
                "CiphertextBlob": e.ciphertext_blob.to_base64(),
            })
        }
        "Decrypt" => {
            let b = blob(p, "CiphertextBlob")?;
            let ctx = context(p, "EncryptionContext")?;
            dry_run(p)?;
            let d = provider.decrypt(caller, &b, &ctx).await?;
            json!({
                "KeyId": d.key_id.as_str(),
                "KeyVersionId": d.key_version_id.as_str(),
                "Plaintext": plaintext_text(&d.plaintext),
            })
        }
        "ReEncrypt" => {
            let b = blob(p, "CiphertextBlob")?;
            let dest = key_ref(p, "DestinationKeyId")?;
            let src_ctx = context(p, "SourceEncryptionContext")?;
            let dest_ctx = context(p, "DestinationEncryptionContext")?;
            if p.get("SourceKeyId").is_some_and(|s| !s.is_empty())
                || p.get("SourceKeyVersionId").is_some_and(|s| !s.is_empty())
            {
                return Err(kmskit_core::Error::Unsupported(
                    "asymmetric source ciphertexts are not supported".into(),
                )
                .into());
            }
            dry_run(p)?;
            let e = provider
                .re_encrypt(caller, &b, &src_ctx, &dest, &dest_ctx)
                .await?;
            json!({
                "KeyId": e.key_id.as_str(),
                "KeyVersionId": e.key_version_id.as_str(),
                "CiphertextBlob": e.ciphertext_blob.to_base64(),
            })
        }
        "GenerateDataKey" => {
            let key = key_ref(p, "KeyId")?;
            let len = data_key_len(p)?;
            let ctx = context(p, "EncryptionContext")?;
            dry_run(p)?;
            let g = provider.generate_data_key(caller, &key, len, &ctx).await?;
            let pt = zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(g.plaintext.expose_secret()),
            );
            json!({
                "KeyId": g.key_id.as_str(),
                "KeyVersionId": g.key_version_id.as_str(),
                "Plaintext": pt.as_str(),
                "CiphertextBlob": g.ciphertext_blob.to_base64(),
            })
        }
        "GenerateDataKeyWithoutPlaintext" => {
            let key = key_ref(p, "KeyId")?;
            let len = data_key_len(p)?;
            let ctx = context(p, "EncryptionContext")?;
            dry_run(p)?;
            let e = provider
                .generate_data_key_without_plaintext(caller, &key, len, &ctx)
                .await?;
            json!({
                "KeyId": e.key_id.as_str(),
                "KeyVersionId": e.key_version_id.as_str(),
                "CiphertextBlob": e.ciphertext_blob.to_base64(),
            })
        }
        "ListKeyVersions" => {
            let key = key_ref(p, "KeyId")?;
            let pg = provider.list_key_versions(caller, &key, page(p)?).await?;
            paged("KeyVersions", "KeyVersion", pg, version_value)?
        }
        "DescribeKeyVersion" => {
            let key = key_ref(p, "KeyId")?;
            let v = KeyVersionId::new(p.required("KeyVersionId")?)?;
            let kv = provider.describe_key_version(caller, &key, &v).await?;
            json!({ "KeyVersion": to_value(&kv)? })
        }
        "TagResource" => {
            let key = key_ref(p, "KeyId")?;
            let tags = tags_json(p, "Tags")?;
            if tags.is_empty() {
                return Err(ApiError::missing("Tags"));
            }
            provider.tag_resource(caller, &key, &tags).await?;
            json!({})
        }
        "UntagResource" => {
            let key = key_ref(p, "KeyId")?;
            let keys: Vec<String> = serde_json::from_str(p.required("TagKeys")?)
                .map_err(|_| ApiError::invalid("TagKeys", "must be a JSON list of strings"))?;
            provider.untag_resource(caller, &key, &keys).await?;
            json!({})
        }
        "ListResourceTags" => {
            let key = key_ref(p, "KeyId")?;
            let meta_id = provider.describe_key(caller, &key).await?.key_id;
            let tags = provider.list_resource_tags(caller, &key).await?;
            let rows: Vec<Value> = tags
                .iter()
                .map(|t| json!({"KeyId": meta_id.as_str(), "TagKey": t.tag_key, "TagValue": t.tag_value}))
                .collect();
            json!({ "Tags": { "Tag": rows } })
        }
        "TagResources" => {
            let keys = key_resources(p, true)?;
            let tags = new_style_tags(p)?;
            if tags.is_empty() {
                return Err(ApiError::missing("Tag.1.Key"));
            }
            for k in &keys {
                provider.tag_resource(caller, k, &tags).await?;
            }
            json!({})
        }
        "UntagResources" => {
            let keys = key_resources(p, true)?;
            let tag_keys: Vec<String> = repeat_list(p, "TagKey", None)?
                .into_iter()
                .map(|(_, v)| v.to_owned())
                .collect();
            let all = p.opt_bool("All")?.unwrap_or(false);
            if all && !tag_keys.is_empty() {
                return Err(ApiError::invalid("All", "only when no TagKey is given"));
            }
            if !all && tag_keys.is_empty() {
                return Err(ApiError::missing("TagKey.1"));
            }
            for k in &keys {
                let remove = if all {
                    provider
                        .list_resource_tags(caller, k)
                        .await?
                        .into_iter()
                        .map(|t| t.tag_key)
                        .collect()
                } else {
                    tag_keys.clone()
                };
                provider.untag_resource(caller, k, &remove).await?;
            }
            json!({})
        }
        "ListTagResources" => {
            let mut keys = key_resources(p, false)?;
            if keys.is_empty() {
                // Every key, page by page.
                let mut n = 1;
                loop {
                    let pg = provider
                        .list_keys(
                            caller,
                            ListKeys::new(PageRequest::new(n, PageRequest::MAX_PAGE_SIZE)?),
                        )
                        .await?;
                    let done = pg.items.len() < PageRequest::MAX_PAGE_SIZE as usize;
                    keys.extend(pg.items.into_iter().map(|k| KeyRef::Id(k.key_id)));
                    if done {
                        break;
                    }
                    n += 1;
                }
            }
            let wanted = new_style_tags(p)?;
            let mut rows = Vec::new();
            for k in &keys {
                let id = provider.describe_key(caller, k).await?.key_id;
                for t in provider.list_resource_tags(caller, k).await? {
                    if wanted.is_empty()
                        || wanted.iter().any(|w| {
                            w.tag_key == t.tag_key && (w.tag_value.is_empty() || w.tag_value == t.tag_value)
                        })
                    {
                        rows.push(json!({"ResourceId": id.as_str(), "ResourceType": "key", "TagKey": t.tag_key, "TagValue": t.tag_value}));
                    }
                }
            }
            let start: usize = match p.get("NextToken") {
                None | Some("") => 0,
                Some(t) => t
                    .parse()
                    .map_err(|_| ApiError::invalid("NextToken", "not a token from this server"))?,
            };
            let end = start.saturating_add(TAG_ROWS_PER_PAGE).min(rows.len());
            let next = if end < rows.len() {
                end.to_string()
            } else {
                String::new()
            };
            let page: Vec<Value> = rows.get(start..end).map(<[Value]>::to_vec).unwrap_or_default();
            json!({ "TagResources": { "TagResource": page }, "NextToken": next })
        }
        "AsymmetricSign" => {
            let key = key_ref(p, "KeyId")?;
            let version = key_version(p)?;
            let alg = algorithm(p)?;
            let digest = base64_param(p, "Digest")?;
            dry_run(p)?;
            let s = provider
                .asymmetric_sign(caller, &key, &version, alg, &digest)
                .await?;
            json!({
                "KeyId": s.key_id.as_str(),
                "KeyVersionId": s.key_version_id.as_str(),
                "Value": base64::engine::general_purpose::STANDARD.encode(&s.signature),
            })
        }
        "AsymmetricVerify" => {
            let key = key_ref(p, "KeyId")?;
            let version = key_version(p)?;
            let alg = algorithm(p)?;
            let digest = base64_param(p, "Digest")?;
            let signature = base64_param(p, "Value")?;
            dry_run(p)?;
            let v = provider
                .asymmetric_verify(caller, &key, &version, alg, &digest, &signature)
                .await?;
            // A JSON boolean (spec §5), not the text "true".
            json!({
                "KeyId": v.key_id.as_str(),
                "KeyVersionId": v.key_version_id.as_str(),
                "Value": v.valid,
            })
        }
        "AsymmetricEncrypt" => {
            let key = key_ref(p, "KeyId")?;
            let version = key_version(p)?;
            let alg = algorithm(p)?;
            let pt = zeroize::Zeroizing::new(base64_param(p, "Plaintext")?);
            dry_run(p)?;
            let e = provider
                .asymmetric_encrypt(caller, &key, &version, alg, &pt)
                .await?;
            json!({
                "KeyId": e.key_id.as_str(),
                "KeyVersionId": e.key_version_id.as_str(),
                "CiphertextBlob": base64::engine::general_purpose::STANDARD.encode(&e.ciphertext),
            })
        }
        "AsymmetricDecrypt" => {
            let key = key_ref(p, "KeyId")?;
            let version = key_version(p)?;
            let alg = algorithm(p)?;
            let ct = base64_param(p, "CiphertextBlob")?;
            dry_run(p)?;
            let d = provider
                .asymmetric_decrypt(caller, &key, &version, alg, &ct)
                .await?;
            let pt =
                zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&d.plaintext[..]));
            json!({
                "KeyId": d.key_id.as_str(),
                "KeyVersionId": d.key_version_id.as_str(),
                "Plaintext": pt.as_str(),
            })
        }
        "GetPublicKey" => {
            let key = key_ref(p, "KeyId")?;
            let version = key_version(p)?;
            dry_run(p)?;
            let k = provider.get_public_key(caller, &key, &version).await?;
            json!({
                "KeyId": k.key_id.as_str(),
                "KeyVersionId": k.key_version_id.as_str(),
                "PublicKey": k.pem,
            })
        }
        "CreateKeyVersion" => {
            let r = rotator.ok_or_else(ApiError::unknown_action)?;
            let kv = r.rotate(caller, &key_ref(p, "KeyId")?).await?;
            json!({ "KeyVersion": to_value(&kv)? })
        }
        "UpdateRotationPolicy" => {
            let r = rotator.ok_or_else(ApiError::unknown_action)?;
            let key = key_ref(p, "KeyId")?;
            let policy = rotation_policy(p, p.required_bool("EnableAutomaticRotation")?)?;
            r.set_rotation_policy(caller, &key, policy).await?;
            json!({})
        }
        _ => return Err(ApiError::unknown_action()),
    };
    Ok(v)
}
