//! The wire format of the Alibaba Cloud KMS RPC API (spec §1, §2, §5): request parsing, response and
//! error bodies. Independent of the HTTP stack, so the kmskit-remote client and the fuzz target use it as
//! the server does.
//!
//! - [`parse_form`] decodes a query string or `application/x-www-form-urlencoded` body (`+` is a space,
//!   `%XX` a byte, the result must be UTF-8).
//! - [`parse_request`] turns an [`HttpRequest`] into an [`RpcRequest`]: the action, the merged query and
//!   form parameters, and what the signature check needs ([`Auth`], V2 or V3, with its string to sign).
//! - [`render_success`] and [`render_error`] write JSON (default) or XML (`Format=XML`) bodies; an error
//!   body carries `RequestId`, `HostId`, `Code`, `Message` and `Recommend`.
//!
//! Every failure is an [`ApiError`] with the spec's code and HTTP status; nothing here panics on input.
//!
//! ```
//! use kmskit_server::wire::{self, HttpRequest};
//!
//! let req = HttpRequest {
//!     method: "POST",
//!     path: "/",
//!     query: "Action=Encrypt&KeyId=alias%2Fdemo&Plaintext=Hello+KMS&Version=2016-01-20&AccessKeyId=ak\
//!             &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=n1\
//!             &Timestamp=2026-11-28T14%3A55%3A40Z&Signature=xyz",
//!     headers: &[],
//!     body: b"",
//! };
//! let rpc = wire::parse_request(&req).unwrap();
//! assert_eq!(rpc.action, "Encrypt");
//! assert_eq!(rpc.params.get("Plaintext"), Some("Hello KMS"));
//! assert_eq!(rpc.auth.access_key_id(), "ak");
//!
//! let err = wire::parse_form(b"a=%zz").unwrap_err();
//! assert_eq!((err.code(), err.status()), ("ParseRequestParameterException", 400));
//! ```

use std::borrow::Cow;
use std::fmt;

use kmskit_core::ErrorCode;

use crate::sign;

/// An API error: a wire code, its HTTP status and a message. Every failure the server answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    code: Cow<'static, str>,
    status: u16,
    message: String,
}

impl ApiError {
    /// An error with one of kmskit's stable codes.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: Cow::Borrowed(code.as_str()),
            status: code.http_status(),
            message: message.into(),
        }
    }

    /// An error with a code outside kmskit's table (for example `DryRunOperationError`).
    pub fn custom(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code: Cow::Borrowed(code),
            status,
            message: message.into(),
        }
    }

    /// `MissingParameter` for `name`.
    pub fn missing(name: &str) -> Self {
        Self::new(
            ErrorCode::MissingParameter,
            format!("The parameter \"{name}\" is needed but not provided."),
        )
    }

    /// `InvalidParameter` for `name`.
    pub fn invalid(name: &str, why: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidParameter,
            format!("The specified parameter \"{name}\" is not valid: {why}"),
        )
    }

    /// `ParseRequestParameterException`.
    pub fn unparsable(why: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::ParseRequestParameterException,
            format!("The request parameters cannot be parsed: {why}"),
        )
    }

    /// `InvalidAction.NotFound`.
    pub fn unknown_action() -> Self {
        Self::new(
            ErrorCode::InvalidActionNotFound,
            "Specified api is not found, please check your url and method.",
        )
    }

    /// The wire code, e.g. `Forbidden.KeyNotFound`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<kmskit_core::Error> for ApiError {
    fn from(e: kmskit_core::Error) -> Self {
        let code = e.code();
        let message = match code {
            // Internal details stay in the server log, never in the response.
            ErrorCode::InternalFailure | ErrorCode::StoreCorrupted => "Internal Failure.".to_owned(),
            ErrorCode::ServiceUnavailableTemporary => "The service is temporarily unavailable.".to_owned(),
            _ => e.to_string(),
        };
        Self::new(code, message)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_component(raw: &[u8]) -> Result<String, ApiError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let (Some(h), Some(l)) = (
                    raw.get(i + 1).copied().and_then(hex_val),
                    raw.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(ApiError::unparsable("a '%' is not followed by two hex digits"));
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::unparsable("a parameter is not UTF-8"))
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body) into `out`.
///
/// Empty segments (`a=1&&b=2`) are skipped; a name without `=` has the empty value.
///
/// # Errors
/// `ParseRequestParameterException` for a bad `%` escape or bytes that are not UTF-8 after decoding.
pub fn parse_form(input: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    parse_form_into(input, &mut out)?;
    Ok(out)
}

fn parse_form_into(input: &[u8], out: &mut Vec<(String, String)>) -> Result<(), ApiError> {
    for seg in input.split(|&b| b == b'&') {
        if seg.is_empty() {
            continue;
        }
        let (k, v) = match seg.iter().position(|&b| b == b'=') {
            Some(p) => (&seg[..p], &seg[p + 1..]),
            None => (seg, &[][..]),
        };
        let k = decode_component(k)?;
        if k.is_empty() {
            return Err(ApiError::unparsable("a parameter has an empty name"));
        }
        out.push((k, decode_component(v)?));
    }
    Ok(())
}

/// Request parameters, query and form body merged, in arrival order. A name may appear once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parameters from pairs.
    ///
    /// # Errors
    /// `InvalidParameter` when a name repeats (which of two values was signed and which used would be
    /// ambiguous).
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        // A set, not pairwise comparison: a hostile request may carry tens of thousands of names.
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        for (k, _) in &pairs {
            if !seen.insert(k.as_str()) {
                return Err(ApiError::invalid(k, "the parameter is given more than once"));
            }
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The non-empty value of `name`.
    ///
    /// # Errors
    /// `MissingParameter` when absent or empty.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(name)),
        }
    }

    /// An optional boolean (`true`/`false`, any case; empty means absent).
    ///
    /// # Errors
    /// `InvalidParameter` for any other text.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }

    /// A required boolean.
    ///
    /// # Errors
    /// `MissingParameter` or `InvalidParameter`.
    pub fn required_bool(&self, name: &str) -> Result<bool, ApiError> {
        self.opt_bool(name)?.ok_or_else(|| ApiError::missing(name))
    }

    /// An optional unsigned integer (decimal; empty means absent).
    ///
    /// # Errors
    /// `InvalidParameter` for anything that is not a decimal `u32`.
    pub fn opt_u32(&self, name: &str) -> Result<Option<u32>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<u32>()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, "must be a non-negative integer")),
        }
    }

    /// Every pair.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// An HTTP request as the parser sees it. Header names are lower case.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path (without query).
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// Headers, lower-case names, values as received.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body.
    pub body: &'a [u8],
}

impl HttpRequest<'_> {
    /// Every value of header `name` (lower case) that is valid UTF-8.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect()
    }

    /// The first value of header `name`.
    ///
    /// # Errors
    /// `ParseRequestParameterException` when the value is not UTF-8.
    pub fn header(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            None => Ok(None),
            Some((_, v)) => std::str::from_utf8(v)
                .map(|s| Some(s.trim()))
                .map_err(|_| ApiError::unparsable(format!("header {name} is not UTF-8"))),
        }
    }
}

/// The response format (`Format` parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// JSON (default).
    #[default]
    Json,
    /// XML (`Format=XML`).
    Xml,
}

/// What a signature check needs, by signature version.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// V2: HMAC-SHA1 in the `Signature` parameter.
    V2 {
        /// `AccessKeyId`.
        access_key_id: String,
        /// `Signature` (Base64).
        signature: String,
        /// `SignatureNonce`.
        nonce: String,
        /// `Timestamp` (Unix seconds).
        timestamp: u64,
        /// The server's string to sign.
        string_to_sign: String,
    },
    /// V3: ACS3-HMAC-SHA256 in the `Authorization` header.
    V3 {
        /// `Credential`.
        access_key_id: String,
        /// `Signature` (hex).
        signature: String,
        /// `x-acs-signature-nonce`.
        nonce: String,
        /// `x-acs-date` (Unix seconds).
        timestamp: u64,
        /// The server's string to sign.
        string_to_sign: String,
    },
}

impl Auth {
    /// The AccessKeyId.
    pub fn access_key_id(&self) -> &str {
        match self {
            Auth::V2 { access_key_id, .. } | Auth::V3 { access_key_id, .. } => access_key_id,
        }
    }

    /// The signature nonce.
    pub fn nonce(&self) -> &str {
        match self {
            Auth::V2 { nonce, .. } | Auth::V3 { nonce, .. } => nonce,
        }
    }

    /// The request time, Unix seconds.
    pub fn timestamp(&self) -> u64 {
        match self {
            Auth::V2 { timestamp, .. } | Auth::V3 { timestamp, .. } => *timestamp,
        }
    }

    /// The string to sign the server computed.
    pub fn string_to_sign(&self) -> &str {
        match self {
            Auth::V2 { string_to_sign, .. } | Auth::V3 { string_to_sign, .. } => string_to_sign,
        }
    }

    /// `2` or `3`.
    pub fn version(&self) -> u8 {
        match self {
            Auth::V2 { .. } => 2,
            Auth::V3 { .. } => 3,
        }
    }

    /// Checks the signature against `secret` in constant time.
    ///
    /// # Errors
    /// `SignatureDoesNotMatch`, with the server's string to sign in the message (spec §3).
    pub fn verify(&self, secret: &sign::AccessKeySecret) -> Result<(), ApiError> {
        let ok = match self {
            Auth::V2 {
                signature,
                string_to_sign,
                ..
            } => sign::verify_v2(secret, string_to_sign, signature),
            Auth::V3 {
                signature,
                string_to_sign,
                ..
            } => sign::verify_v3(secret, string_to_sign, signature),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::SignatureDoesNotMatch,
                format!(
                    "Specified signature is not matched with our calculation. server string to sign is:{}",
                    self.string_to_sign()
                ),
            ))
        }
    }
}

/// A parsed RPC request: the action, its parameters and its authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcRequest {
    /// The action (`Action` parameter, else the `x-acs-action` header).
    pub action: String,
    /// Query and form parameters, merged.
    pub params: Params,
    /// The response format.
    pub format: Format,
    /// The signature to check.
    pub auth: Auth,
}

fn parse_time(s: &str) -> Result<u64, ApiError> {
    kmskit_core::Timestamp::parse(s)
        .map(kmskit_core::Timestamp::unix)
        .map_err(|_| {
            ApiError::new(
                ErrorCode::IllegalTimestamp,
                format!("The timestamp {s:?} is not in the form YYYY-MM-DDThh:mm:ssZ."),
            )
        })
}

fn check_version(v: Option<&str>) -> Result<(), ApiError> {
    match v {
        Some(sign::API_VERSION) => Ok(()),
        None | Some("") => Err(ApiError::missing("Version")),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidVersion,
            "Specified parameter Version is not valid.",
        )),
    }
}

fn incomplete(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::IncompleteSignature,
        format!("The request signature does not conform to Aliyun standards: {why}"),
    )
}

/// Parses an RPC request (spec §1–§4). It checks the form of everything; the signature itself, the
/// timestamp window and the nonce are checked by the caller with [`Auth`].
///
/// # Errors
/// `UnsupportedHTTPMethod` for methods other than GET and POST; `ParseRequestParameterException` for
/// undecodable parameters; `InvalidParameter` for a repeated name; `MissingParameter` (`Action`,
/// `Version`, `AccessKeyId`, …); `InvalidVersion`; `IncompleteSignature` for missing or malformed
/// signature fields; `IllegalTimestamp`.
pub fn parse_request(req: &HttpRequest<'_>) -> Result<RpcRequest, ApiError> {
    let method = req.method;
    if method != "GET" && method != "POST" {
        return Err(ApiError::new(
            ErrorCode::UnsupportedHttpMethod,
            format!("The HTTP method {method} is not supported."),
        ));
    }
    let mut query_pairs = Vec::new();
    parse_form_into(req.query.as_bytes(), &mut query_pairs)?;
    let n_query = query_pairs.len();
    let mut pairs = query_pairs;
    let content_type = req.header("content-type")?.unwrap_or("");
    let is_form = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if is_form || (content_type.is_empty() && !req.body.is_empty()) {
        parse_form_into(req.body, &mut pairs)?;
    }
    let params = Params::new(pairs)?;
    let format = match params.get("Format") {
        Some(f) if f.eq_ignore_ascii_case("xml") => Format::Xml,
        None | Some("") => Format::Json,
        Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
        Some(_) => return Err(ApiError::invalid("Format", "must be JSON or XML")),
    };

    let authorization = req.header("authorization")?;
    let auth = match authorization {
        Some(a) if a.starts_with("ACS3-") => {
            let a = sign::Authorization::parse(a).map_err(incomplete)?;
            if a.algorithm != sign::V3_ALGORITHM {
                return Err(incomplete("only ACS3-HMAC-SHA256 is supported"));
            }
            check_version(req.header("x-acs-version")?.or(params.get("Version")))?;
            let date = req.header("x-acs-date")?.ok_or_else(|| {
                ApiError::new(ErrorCode::IllegalTimestamp, "The header x-acs-date is missing.")
            })?;
            let timestamp = parse_time(date)?;
            let nonce = req
                .header("x-acs-signature-nonce")?
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::missing("x-acs-signature-nonce"))?
                .to_owned();
            for required in ["host", "x-acs-date", "x-acs-signature-nonce"] {
                if !a.signed_headers.iter().any(|h| h == required) {
                    return Err(incomplete("a required header is not signed"));
                }
            }
            let payload = sign::sha256_hex(req.body);
            if let Some(claimed) = req.header("x-acs-content-sha256")? {
                if !claimed.eq_ignore_ascii_case(&payload) {
                    return Err(incomplete("x-acs-content-sha256 does not match the body"));
                }
            }
            for h in &a.signed_headers {
                if req.header_values(h).is_empty()
                    && req.headers.iter().all(|(k, _)| !k.eq_ignore_ascii_case(h))
                {
                    return Err(incomplete("a signed header is missing"));
                }
            }
            let cr = sign::v3_canonical_request(
                method,
                req.path,
                params.pairs[..n_query]
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
                &a.signed_headers,
                |name| req.header_values(name),
                &payload,
            );
            Auth::V3 {
                access_key_id: a.access_key_id,
                signature: a.signature,
                nonce,
                timestamp,
                string_to_sign: sign::v3_string_to_sign(&cr),
            }
        }
        // An Authorization header of another scheme (added by a proxy, say) does not stop a V2
        // request, which carries its signature in the parameters.
        Some(_) if params.get("Signature").is_none() => {
            return Err(incomplete("unsupported Authorization scheme"));
        }
        _ => {
            let Some(signature) = params.get("Signature") else {
                return Err(incomplete("the request carries no signature"));
            };
            let access_key_id = params.required("AccessKeyId")?.to_owned();
            check_version(params.get("Version"))?;
            match params.get("SignatureMethod") {
                Some(sign::V2_METHOD) => {}
                None | Some("") => return Err(ApiError::missing("SignatureMethod")),
                Some(_) => return Err(incomplete("SignatureMethod must be HMAC-SHA1")),
            }
            match params.get("SignatureVersion") {
                Some(sign::V2_VERSION) => {}
                None | Some("") => return Err(ApiError::missing("SignatureVersion")),
                Some(_) => return Err(incomplete("SignatureVersion must be 1.0")),
            }
            let nonce = params.required("SignatureNonce")?.to_owned();
            let timestamp = match params.get("Timestamp") {
                None | Some("") => {
                    return Err(ApiError::new(
                        ErrorCode::IllegalTimestamp,
                        "The Timestamp parameter is missing.",
                    ));
                }
                Some(t) => parse_time(t)?,
            };
            let sts = sign::v2_string_to_sign(method, params.iter().filter(|(k, _)| *k != "Signature"));
            Auth::V2 {
                access_key_id,
                signature: signature.to_owned(),
                nonce,
                timestamp,
                string_to_sign: sts,
            }
        }
    };
    let action = match params.get("Action") {
        Some(a) if !a.is_empty() => a.to_owned(),
        _ => req
            .header("x-acs-action")?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ApiError::missing("Action"))?
            .to_owned(),
    };
    Ok(RpcRequest {
        action,
        params,
        format,
        auth,
    })
}

/// The content type of a body in `format`.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json;charset=utf-8",
        Format::Xml => "text/xml;charset=utf-8",
    }
}

/// Renders a success body: `value` (a JSON object) with `RequestId` added. XML wraps it in
/// `<{action}Response>`.
pub fn render_success(
    format: Format,
    action: &str,
    request_id: &str,
    mut value: serde_json::Value,
) -> Vec<u8> {
    if let serde_json::Value::Object(m) = &mut value {
        m.insert(
            "RequestId".to_owned(),
            serde_json::Value::String(request_id.to_owned()),
        );
    }
    match format {
        Format::Json => serde_json::to_vec(&value).unwrap_or_default(),
        Format::Xml => {
            let root = format!("{}Response", sanitize_xml_name(action));
            to_xml(&root, &value).into_bytes()
        }
    }
}

/// Renders an error body (spec §5): `RequestId`, `HostId`, `Code`, `Message`, `Recommend`.
pub fn render_error(format: Format, request_id: &str, host_id: &str, err: &ApiError) -> Vec<u8> {
    let value = serde_json::json!({
        "RequestId": request_id,
        "HostId": host_id,
        "Code": err.code(),
        "Message": err.message(),
        "Recommend": format!("https://next.api.aliyun.com/troubleshoot?q={}", err.code()),
    });
    match format {
        Format::Json => serde_json::to_vec(&value).unwrap_or_default(),
        Format::Xml => to_xml("Error", &value).into_bytes(),
    }
}

fn sanitize_xml_name(s: &str) -> String {
    let s: String = s.chars().filter(char::is_ascii_alphanumeric).collect();
    if s.is_empty() { "Rpc".to_owned() } else { s }
}

fn xml_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// Renders a JSON value as Alibaba-style XML: objects become child elements, an array repeats its
/// parent's element name (`{"Keys":{"Key":[a,b]}}` → `<Keys><Key>a</Key><Key>b</Key></Keys>`).
pub fn to_xml(root: &str, value: &serde_json::Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    xml_element(&mut out, root, value);
    out
}

fn xml_element(out: &mut String, name: &str, value: &serde_json::Value) {
    use serde_json::Value;
    if let Value::Array(items) = value {
        for item in items {
            xml_element(out, name, item);
        }
        return;
    }
    out.push('<');
    out.push_str(name);
    out.push('>');
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                xml_element(out, &sanitize_xml_name(k), v);
            }
        }
        Value::String(s) => xml_escape_into(out, s),
        Value::Null => {}
        other => out.push_str(&other.to_string()),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let p = parse_form(b"a=1+2&b=%2B%20&c&&d=").unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "+ ".into()),
                ("c".into(), String::new()),
                ("d".into(), String::new())
            ]
        );
        assert_eq!(parse_form(b"x=%C3%A9").unwrap()[0].1, "é");
        for bad in [&b"a=%"[..], b"a=%4", b"a=%g1", b"a=%FF", b"=v", b"\xff=1"] {
            let e = parse_form(bad).unwrap_err();
            assert_eq!(e.code(), "ParseRequestParameterException", "{bad:?}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn params_accessors() {
        let p = Params::new(parse_form(b"b=True&n=12&e=&x=maybe").unwrap()).unwrap();
        assert_eq!(p.opt_bool("b").unwrap(), Some(true));
        assert_eq!(p.opt_bool("e").unwrap(), None);
        assert_eq!(p.opt_bool("x").unwrap_err().code(), "InvalidParameter");
        assert_eq!(p.opt_u32("n").unwrap(), Some(12));
        assert_eq!(p.opt_u32("x").unwrap_err().code(), "InvalidParameter");
        assert_eq!(p.required("e").unwrap_err().code(), "MissingParameter");
        assert_eq!(p.required("zz").unwrap_err().code(), "MissingParameter");
        assert_eq!(
            Params::new(parse_form(b"a=1&a=2").unwrap()).unwrap_err().code(),
            "InvalidParameter"
        );
    }

    #[test]
    fn xml_rendering() {
        let v = serde_json::json!({"Keys": {"Key": [{"KeyId": "a<b"}, {"KeyId": "c"}]}, "TotalCount": 2});
        let x = String::from_utf8(render_success(Format::Xml, "ListKeys", "r1", v)).unwrap();
        assert_eq!(
            x,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListKeysResponse><Keys><Key><KeyId>a&lt;b</KeyId></Key>\
             <Key><KeyId>c</KeyId></Key></Keys><RequestId>r1</RequestId><TotalCount>2</TotalCount></ListKeysResponse>"
        );
    }

    #[test]
    fn error_body_shape() {
        let e = ApiError::new(ErrorCode::KeyNotFound, "The specified Key is not found.");
        let body: serde_json::Value =
            serde_json::from_slice(&render_error(Format::Json, "rid", "host", &e)).unwrap();
        assert_eq!(body["Code"], "Forbidden.KeyNotFound");
        assert_eq!(body["RequestId"], "rid");
        assert_eq!(body["HostId"], "host");
        assert_eq!(body["Message"], "The specified Key is not found.");
        assert!(
            body["Recommend"]
                .as_str()
                .unwrap()
                .contains("Forbidden.KeyNotFound")
        );
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn internal_errors_are_opaque() {
        let e: ApiError = kmskit_core::Error::Internal("secret detail /path".into()).into();
        assert_eq!(e.code(), "InternalFailure");
        assert!(!e.message().contains("secret"));
    }
}
