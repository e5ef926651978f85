//! RAM-style access policies: documents, their parser, the evaluator and the role templates.
//!
//! A document is the model service's JSON form:
//!
//! ```json
//! {"Version": "1",
//!  "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
//!                 "Resource": "acs:kms:*:*:key/*",
//!                 "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}}]}
//! ```
//!
//! `Action` and `Resource` (and the optional `Principal` of a key policy) are a string or a list, with
//! `*` (any run of characters) and `?` (one character) wildcards; actions compare case-insensitively,
//! resources and principals exactly. Conditions: `IpAddress`/`NotIpAddress` on `acs:SourceIp` (IPv4 and
//! IPv6, a CIDR or a single address), `StringEquals`/`StringNotEquals`/`StringLike`/`StringNotLike` on
//! `kms:EncryptionContext.<key>` and `kms:tag/<key>`, `DateLessThan`/`DateGreaterThan` on
//! `acs:CurrentTime`, `Bool` on `acs:SecureTransport`. Within a statement every operator, and every key
//! under it, must hold; a key holds when any of its values matches. A key absent from the request (no
//! source address, no such context entry) makes a positive operator false and a negated one true.
//!
//! Evaluation over every policy that applies (the principal's attached policies and the target key's
//! key policy): an explicit `Deny` wins; otherwise an `Allow` allows; otherwise the call is denied.
//!
//! Parsing rejects unknown fields, unknown operators and condition keys, unknown action names and
//! malformed values, with a message naming the place (`Statement[2].Condition.IpAddress.acs:SourceIp[0]`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use serde_json::Value;

use crate::clock::Timestamp;
use crate::context::EncryptionContext;
use crate::error::{Error, Result};
use crate::id::KeyId;

/// The largest policy document accepted, in bytes (the model service's limit is 32 KiB).
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

macro_rules! actions {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// An API action as policies name it (`kms:<Name>`).
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $( $(#[$doc])* $variant, )*
        }

        impl Action {
            /// Every action.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The API name, e.g. `Encrypt`.
            pub const fn name(self) -> &'static str {
                match self { $( Action::$variant => $name, )* }
            }

            /// The policy name, e.g. `kms:Encrypt`.
            pub const fn policy_name(self) -> &'static str {
                match self { $( Action::$variant => concat!("kms:", $name), )* }
            }

            /// Looks an action up by its API name (case-insensitive).
            pub fn from_name(s: &str) -> Option<Action> {
                Self::ALL.iter().copied().find(|a| a.name().eq_ignore_ascii_case(s))
            }
        }
    };
}

actions! {
    /// CreateKey.
    CreateKey => "CreateKey",
    /// DescribeKey.
    DescribeKey => "DescribeKey",
    /// ListKeys.
    ListKeys => "ListKeys",
    /// EnableKey.
    EnableKey => "EnableKey",
    /// DisableKey.
    DisableKey => "DisableKey",
    /// ScheduleKeyDeletion.
    ScheduleKeyDeletion => "ScheduleKeyDeletion",
    /// CancelKeyDeletion.
    CancelKeyDeletion => "CancelKeyDeletion",
    /// UpdateKeyDescription.
    UpdateKeyDescription => "UpdateKeyDescription",
    /// SetDeletionProtection.
    SetDeletionProtection => "SetDeletionProtection",
    /// CreateAlias.
    CreateAlias => "CreateAlias",
    /// UpdateAlias.
    UpdateAlias => "UpdateAlias",
    /// DeleteAlias.
    DeleteAlias => "DeleteAlias",
    /// ListAliases.
    ListAliases => "ListAliases",
    /// ListAliasesByKeyId.
    ListAliasesByKeyId => "ListAliasesByKeyId",
    /// Encrypt.
    Encrypt => "Encrypt",
    /// Decrypt.
    Decrypt => "Decrypt",
    /// ReEncrypt.
    ReEncrypt => "ReEncrypt",
    /// GenerateDataKey.
    GenerateDataKey => "GenerateDataKey",
    /// GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
    /// ListKeyVersions.
    ListKeyVersions => "ListKeyVersions",
    /// DescribeKeyVersion.
    DescribeKeyVersion => "DescribeKeyVersion",
    /// CreateKeyVersion (rotation).
    CreateKeyVersion => "CreateKeyVersion",
    /// UpdateRotationPolicy.
    UpdateRotationPolicy => "UpdateRotationPolicy",
    /// TagResource.
    TagResource => "TagResource",
    /// UntagResource.
    UntagResource => "UntagResource",
    /// ListResourceTags.
    ListResourceTags => "ListResourceTags",
    /// Sets or removes a key policy (kmskit).
    PutKeyPolicy => "PutKeyPolicy",
    /// Attaches a policy to a principal (kmskit).
    AttachPolicy => "AttachPolicy",
    /// Detaches a policy from a principal (kmskit).
    DetachPolicy => "DetachPolicy",
    /// Approves a request held for dual control (kmskit).
    ApproveRequest => "ApproveRequest",
    /// Reads audit events (kmskit).
    LookupAuditEvents => "LookupAuditEvents",
    /// Verifies the audit hash chain (kmskit).
    VerifyAuditTrail => "VerifyAuditTrail",
    /// Reads usage counters and the cost report (kmskit).
    GetUsageReport => "GetUsageReport",
    /// A state change made by the engine itself (a purge when a deletion window ends); never in a
    /// caller's request.
    PurgeKey => "PurgeKey",
    /// Sets the minimum decryption version (a version floor) of a key (kmskit).
    SetMinDecryptionVersion => "SetMinDecryptionVersion",
    /// AsymmetricSign.
    AsymmetricSign => "AsymmetricSign",
    /// AsymmetricVerify.
    AsymmetricVerify => "AsymmetricVerify",
    /// AsymmetricEncrypt.
    AsymmetricEncrypt => "AsymmetricEncrypt",
    /// AsymmetricDecrypt.
    AsymmetricDecrypt => "AsymmetricDecrypt",
    /// GetPublicKey.
    GetPublicKey => "GetPublicKey",
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `Allow` or `Deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else grants.
    Deny,
}

/// The outcome of evaluating policies for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// An `Allow` matched and no `Deny` did.
    Allow,
    /// A `Deny` matched.
    ExplicitDeny,
    /// Nothing matched.
    ImplicitDeny,
}

/// A `*`/`?` wildcard pattern, pre-classified so the common forms match without backtracking.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    raw: String,
    kind: PatKind,
    ignore_case: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PatKind {
    Any,
    Exact,
    Prefix(String),
    Glob,
}

impl Pattern {
    fn new(raw: &str, ignore_case: bool) -> Self {
        let kind = if raw == "*" {
            PatKind::Any
        } else if !raw.contains(['*', '?']) {
            PatKind::Exact
        } else if raw.ends_with('*') && !raw[..raw.len() - 1].contains(['*', '?']) {
            PatKind::Prefix(raw[..raw.len() - 1].to_owned())
        } else {
            PatKind::Glob
        };
        Self {
            raw: raw.to_owned(),
            kind,
            ignore_case,
        }
    }

    fn matches(&self, s: &str) -> bool {
        match &self.kind {
            PatKind::Any => true,
            PatKind::Exact if self.ignore_case => self.raw.eq_ignore_ascii_case(s),
            PatKind::Exact => self.raw == s,
            PatKind::Prefix(p) => {
                s.len() >= p.len()
                    && s.is_char_boundary(p.len())
                    && if self.ignore_case {
                        s[..p.len()].eq_ignore_ascii_case(p)
                    } else {
                        s.starts_with(p.as_str())
                    }
            }
            PatKind::Glob => wildcard_match(&self.raw, s, self.ignore_case),
        }
    }
}

/// Matches `s` against `pat` where `*` is any run of characters and `?` exactly one character.
/// Linear-time backtracking on the last `*` (no exponential blow-up on hostile patterns).
pub fn wildcard_match(pat: &str, s: &str, ignore_case: bool) -> bool {
    if pat.is_ascii() && s.is_ascii() {
        return glob(pat.as_bytes(), s.as_bytes(), |a: u8, b: u8| {
            if ignore_case {
                a.eq_ignore_ascii_case(&b)
            } else {
                a == b
            }
        });
    }
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    glob(&p, &t, |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    })
}

/// The matcher over any symbol type, `*` and `?` being the wildcards.
fn glob<C: Copy + PartialEq + From<u8>>(p: &[C], t: &[C], eq: impl Fn(C, C) -> bool) -> bool {
    let (star_c, any_c) = (C::from(b'*'), C::from(b'?'));
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_c || (p[pi] != star_c && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_c {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == star_c {
        pi += 1;
    }
    pi == p.len()
}

/// A condition operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CondOp {
    IpAddress,
    NotIpAddress,
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    DateLessThan,
    DateGreaterThan,
    Bool,
}

impl CondOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "IpAddress" => CondOp::IpAddress,
            "NotIpAddress" => CondOp::NotIpAddress,
            "StringEquals" => CondOp::StringEquals,
            "StringNotEquals" => CondOp::StringNotEquals,
            "StringLike" => CondOp::StringLike,
            "StringNotLike" => CondOp::StringNotLike,
            "DateLessThan" => CondOp::DateLessThan,
            "DateGreaterThan" => CondOp::DateGreaterThan,
            "Bool" => CondOp::Bool,
            _ => return None,
        })
    }

    fn negated(self) -> bool {
        matches!(
            self,
            CondOp::NotIpAddress | CondOp::StringNotEquals | CondOp::StringNotLike
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CondKey {
    SourceIp,
    CurrentTime,
    SecureTransport,
    EncryptionContext(String),
    Tag(String),
}

impl CondKey {
    fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("acs:SourceIp") {
            Some(CondKey::SourceIp)
        } else if s.eq_ignore_ascii_case("acs:CurrentTime") {
            Some(CondKey::CurrentTime)
        } else if s.eq_ignore_ascii_case("acs:SecureTransport") {
            Some(CondKey::SecureTransport)
        } else if let Some(k) = strip_prefix_ci(s, "kms:EncryptionContext.") {
            (!k.is_empty()).then(|| CondKey::EncryptionContext(k.to_owned()))
        } else if let Some(k) = strip_prefix_ci(s, "kms:tag/") {
            (!k.is_empty()).then(|| CondKey::Tag(k.to_owned()))
        } else {
            None
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CondValue {
    Cidr(IpAddr, u8),
    Str(Pattern),
    Time(Timestamp),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Condition {
    op: CondOp,
    key: CondKey,
    values: Vec<CondValue>,
}

/// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `addr/n` into a network address and prefix length.
///
/// # Errors
/// A message when it is not an address or the prefix is too long for the family.
pub fn parse_cidr(s: &str) -> std::result::Result<(IpAddr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => {
            if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) || l.len() > 3 {
                return Err(format!("bad prefix length in {s:?}"));
            }
            (
                a,
                Some(
                    l.parse::<u8>()
                        .map_err(|_| format!("bad prefix length in {s:?}"))?,
                ),
            )
        }
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return Err(format!("prefix length {len} is longer than {max} in {s:?}"));
    }
    Ok((ip, len))
}

/// Whether `ip` is inside `net/len`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) matches IPv4 networks.
pub fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            (u32::from(n) & mask) == (u32::from(a) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            (u128::from(n) & mask) == (u128::from(a) & mask)
        }
        _ => false,
    }
}

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    /// Bit `a as usize` set when the `Action` patterns match action `a` (computed at parse time).
    action_mask: u64,
    actions: Vec<Pattern>,
    resources: Vec<Pattern>,
    principals: Option<Vec<Pattern>>,
    conditions: Vec<Condition>,
}

/// What a request asks, as the evaluator sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestContext<'a> {
    /// The calling principal.
    pub principal: &'a str,
    /// The action.
    pub action: Action,
    /// The names of the resource (a key ARN, and the alias ARN it was named by). A statement's
    /// `Resource` matches when it matches any of them.
    pub resource: &'a [String],
    /// Where the request came from.
    pub source_ip: Option<IpAddr>,
    /// Whether it came over TLS (or in-process).
    pub secure_transport: bool,
    /// The time of the request.
    pub now: Timestamp,
    /// The encryption context of the request, when it has one.
    pub encryption_context: Option<&'a EncryptionContext>,
    /// The tags of the target key, when known.
    pub tags: Option<&'a BTreeMap<String, String>>,
}

impl<'a> RequestContext<'a> {
    /// A request by `principal` for `action` on `resource`, at `now`, in-process.
    pub fn new(principal: &'a str, action: Action, resource: &'a [String], now: Timestamp) -> Self {
        Self {
            principal,
            action,
            resource,
            source_ip: None,
            secure_transport: true,
            now,
            encryption_context: None,
            tags: None,
        }
    }

    /// Sets the source address.
    #[must_use]
    pub fn source_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip;
        self
    }

    /// Sets whether the transport was secure.
    #[must_use]
    pub fn secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    /// Sets the encryption context.
    #[must_use]
    pub fn encryption_context(mut self, ctx: Option<&'a EncryptionContext>) -> Self {
        self.encryption_context = ctx;
        self
    }

    /// Sets the target key's tags.
    #[must_use]
    pub fn tags(mut self, tags: Option<&'a BTreeMap<String, String>>) -> Self {
        self.tags = tags;
        self
    }
}

impl Statement {
    fn applies(&self, req: &RequestContext<'_>) -> bool {
        self.action_mask & (1u64 << (req.action as u32)) != 0
            && self
                .resources
                .iter()
                .any(|p| req.resource.iter().any(|r| p.matches(r)))
            && self
                .principals
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p.matches(req.principal)))
            && self.conditions.iter().all(|c| c.holds(req))
    }
}

impl Condition {
    fn holds(&self, req: &RequestContext<'_>) -> bool {
        let present = match &self.key {
            CondKey::SourceIp => req.source_ip.is_some(),
            CondKey::EncryptionContext(k) => req.encryption_context.and_then(|c| c.get(k)).is_some(),
            CondKey::Tag(k) => req.tags.and_then(|t| t.get(k)).is_some(),
            CondKey::CurrentTime | CondKey::SecureTransport => true,
        };
        if !present {
            return self.op.negated();
        }
        let any = self.values.iter().any(|v| self.value_matches(v, req));
        if self.op.negated() { !any } else { any }
    }

    fn value_matches(&self, v: &CondValue, req: &RequestContext<'_>) -> bool {
        let string = || -> Option<&str> {
            match &self.key {
                CondKey::EncryptionContext(k) => req.encryption_context.and_then(|c| c.get(k)),
                CondKey::Tag(k) => req.tags.and_then(|t| t.get(k)).map(String::as_str),
                _ => None,
            }
        };
        match (self.op, v) {
            (CondOp::IpAddress | CondOp::NotIpAddress, CondValue::Cidr(net, len)) => {
                req.source_ip.is_some_and(|ip| cidr_contains(*net, *len, ip))
            }
            (CondOp::StringEquals | CondOp::StringNotEquals, CondValue::Str(p)) => {
                string().is_some_and(|s| s == p.raw)
            }
            (CondOp::StringLike | CondOp::StringNotLike, CondValue::Str(p)) => {
                string().is_some_and(|s| p.matches(s))
            }
            (CondOp::DateLessThan, CondValue::Time(t)) => req.now < *t,
            (CondOp::DateGreaterThan, CondValue::Time(t)) => req.now > *t,
            (CondOp::Bool, CondValue::Bool(b)) => req.secure_transport == *b,
            _ => false,
        }
    }
}

/// A parsed, validated policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
    json: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    #[serde(rename = "Version")]
    version: String,
    #[serde(rename = "Statement")]
    statement: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    #[serde(rename = "Effect")]
    effect: String,
    #[serde(rename = "Action")]
    action: Value,
    #[serde(rename = "Resource")]
    resource: Value,
    #[serde(rename = "Principal", default)]
    principal: Option<Value>,
    #[serde(rename = "Condition", default)]
    condition: Option<serde_json::Map<String, Value>>,
}

fn perr(place: impl fmt::Display, msg: impl fmt::Display) -> Error {
    Error::invalid("PolicyDocument", format!("{place}: {msg}"))
}

/// A string or a non-empty list of strings.
fn string_or_list(v: &Value, place: &str) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(s.clone()),
                _ => Err(perr(format!("{place}[{i}]"), "must be a string")),
            })
            .collect(),
        Value::Array(_) => Err(perr(place, "must not be an empty list")),
        _ => Err(perr(place, "must be a string or a list of strings")),
    }
}

impl Policy {
    /// Parses and validates a policy document.
    ///
    /// # Errors
    /// `InvalidParameter` (`PolicyDocument`) naming the place of the first problem: malformed JSON,
    /// an unknown field, operator or condition key, an unknown action, a bad CIDR or date.
    pub fn parse(json: &str) -> Result<Policy> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(perr("document", format!("longer than {MAX_POLICY_BYTES} bytes")));
        }
        let raw: RawDocument = serde_json::from_str(json).map_err(|e| perr("document", e))?;
        if raw.version != "1" {
            return Err(perr("Version", format!("must be \"1\", not {:?}", raw.version)));
        }
        let stmts: Vec<Value> = match raw.statement {
            Value::Array(v) => v,
            o @ Value::Object(_) => vec![o],
            _ => return Err(perr("Statement", "must be a list of statements")),
        };
        if stmts.is_empty() {
            return Err(perr("Statement", "must have at least one statement"));
        }
        let statements = stmts
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_statement(i, v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Policy {
            statements,
            json: json.to_owned(),
        })
    }

    /// The document as it was given.
    pub fn as_json(&self) -> &str {
        &self.json
    }

    /// The number of statements.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether it has no statements (never true for a parsed document).
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Evaluates this document alone.
    pub fn evaluate(&self, req: &RequestContext<'_>) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            if s.applies(req) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Policy::parse(s)
    }
}

fn parse_statement(i: usize, v: Value) -> Result<Statement> {
    let place = format!("Statement[{i}]");
    if !v.is_object() {
        return Err(perr(&place, "must be an object"));
    }
    let raw: RawStatement = serde_json::from_value(v).map_err(|e| perr(&place, e))?;
    let effect = match raw.effect.as_str() {
        "Allow" => Effect::Allow,
        "Deny" => Effect::Deny,
        other => {
            return Err(perr(
                format!("{place}.Effect"),
                format!("must be \"Allow\" or \"Deny\", not {other:?}"),
            ));
        }
    };
    let mut actions = Vec::new();
    for (j, a) in string_or_list(&raw.action, &format!("{place}.Action"))?
        .into_iter()
        .enumerate()
    {
        let at = format!("{place}.Action[{j}]");
        if a != "*" {
            let Some(name) = strip_prefix_ci(&a, "kms:") else {
                return Err(perr(at, format!("{a:?} is not \"*\" or \"kms:<Action>\"")));
            };
            if name.is_empty() {
                return Err(perr(at, "empty action name"));
            }
            if !name.contains(['*', '?']) && Action::from_name(name).is_none() {
                return Err(perr(at, format!("unknown action {a:?}")));
            }
        }
        actions.push(Pattern::new(&a, true));
    }
    let mut resources = Vec::new();
    for (j, r) in string_or_list(&raw.resource, &format!("{place}.Resource"))?
        .into_iter()
        .enumerate()
    {
        if r != "*" && !r.starts_with("acs:") {
            return Err(perr(
                format!("{place}.Resource[{j}]"),
                format!("{r:?} is not \"*\" or an acs: resource name"),
            ));
        }
        resources.push(Pattern::new(&r, false));
    }
    let principals = match &raw.principal {
        None => None,
        Some(p) => {
            let at = format!("{place}.Principal");
            let list = match p {
                Value::Object(m) => {
                    let mut out = Vec::new();
                    for (k, v) in m {
                        if k != "RAM" {
                            return Err(perr(&at, format!("unknown principal type {k:?}")));
                        }
                        out.extend(string_or_list(v, &format!("{at}.RAM"))?);
                    }
                    out
                }
                other => string_or_list(other, &at)?,
            };
            Some(list.iter().map(|s| Pattern::new(s, false)).collect())
        }
    };
    let mut conditions = Vec::new();
    if let Some(cond) = raw.condition {
        for (op_name, body) in cond {
            let at = format!("{place}.Condition.{op_name}");
            let op = CondOp::parse(&op_name).ok_or_else(|| perr(&at, "unknown condition operator"))?;
            let Value::Object(keys) = body else {
                return Err(perr(&at, "must be an object of condition keys"));
            };
            if keys.is_empty() {
                return Err(perr(&at, "has no condition keys"));
            }
            for (key_name, vals) in keys {
                let kat = format!("{at}.{key_name}");
                let key = CondKey::parse(&key_name).ok_or_else(|| perr(&kat, "unknown condition key"))?;
                let ok = matches!(
                    (op, &key),
                    (CondOp::IpAddress | CondOp::NotIpAddress, CondKey::SourceIp)
                        | (
                            CondOp::StringEquals
                                | CondOp::StringNotEquals
                                | CondOp::StringLike
                                | CondOp::StringNotLike,
                            CondKey::EncryptionContext(_) | CondKey::Tag(_),
                        )
                        | (
                            CondOp::DateLessThan | CondOp::DateGreaterThan,
                            CondKey::CurrentTime
                        )
                        | (CondOp::Bool, CondKey::SecureTransport)
                );
                if !ok {
                    return Err(perr(&kat, format!("{op_name} does not apply to this key")));
                }
                let strings: Vec<(usize, String)> = match vals {
                    Value::Bool(b) if op == CondOp::Bool => vec![(0, b.to_string())],
                    Value::Array(items) if !items.is_empty() => items
                        .iter()
                        .enumerate()
                        .map(|(n, x)| match x {
                            Value::String(s) => Ok((n, s.clone())),
                            Value::Bool(b) if op == CondOp::Bool => Ok((n, b.to_string())),
                            _ => Err(perr(format!("{kat}[{n}]"), "must be a string")),
                        })
                        .collect::<Result<_>>()?,
                    Value::String(s) => vec![(0, s.clone())],
                    _ => return Err(perr(&kat, "must be a string or a non-empty list of strings")),
                };
                let mut values = Vec::with_capacity(strings.len());
                for (n, s) in strings {
                    let vat = format!("{kat}[{n}]");
                    values.push(match op {
                        CondOp::IpAddress | CondOp::NotIpAddress => {
                            let (ip, len) = parse_cidr(&s).map_err(|m| perr(&vat, m))?;
                            CondValue::Cidr(ip, len)
                        }
                        CondOp::DateLessThan | CondOp::DateGreaterThan => CondValue::Time(
                            Timestamp::parse(&s)
                                .map_err(|_| perr(&vat, format!("{s:?} is not YYYY-MM-DDThh:mm:ssZ")))?,
                        ),
                        CondOp::Bool => CondValue::Bool(match s.as_str() {
                            "true" => true,
                            "false" => false,
                            _ => return Err(perr(&vat, format!("{s:?} is not \"true\" or \"false\""))),
                        }),
                        _ => CondValue::Str(Pattern::new(&s, false)),
                    });
                }
                conditions.push(Condition { op, key, values });
            }
        }
    }
    let action_mask = Action::ALL
        .iter()
        .filter(|a| actions.iter().any(|p| p.matches(a.policy_name())))
        .fold(0u64, |m, a| m | (1u64 << (*a as u32)));
    Ok(Statement {
        effect,
        action_mask,
        actions,
        resources,
        principals,
        conditions,
    })
}

/// The role templates of the model service's access-control matrix.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages keys (create, enable, disable, delete, rotate, aliases, tags); no cryptography.
    SecurityAdmin,
    /// Cryptography on named keys; cannot change them.
    CryptoUser,
    /// Reads audit events only.
    Auditor,
}

/// The management actions a SecurityAdmin is allowed.
const ADMIN_ACTIONS: &[&str] = &[
    "kms:CreateKey",
    "kms:DescribeKey",
    "kms:ListKeys",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:UpdateKeyDescription",
    "kms:SetDeletionProtection",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:ListAliases",
    "kms:ListAliasesByKeyId",
    "kms:ListKeyVersions",
    "kms:DescribeKeyVersion",
    "kms:CreateKeyVersion",
    "kms:UpdateRotationPolicy",
    "kms:SetMinDecryptionVersion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:AttachPolicy",
    "kms:DetachPolicy",
    "kms:ApproveRequest",
    "kms:GetPublicKey",
];

/// The cryptographic actions.
const CRYPTO_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:AsymmetricSign",
    "kms:AsymmetricVerify",
    "kms:AsymmetricEncrypt",
    "kms:AsymmetricDecrypt",
];

impl Role {
    /// The role's policy document. `keys` names the keys a CryptoUser may use (key ids, or ARN
    /// patterns starting with `acs:`); the other roles ignore it.
    ///
    /// # Errors
    /// `InvalidParameter` when a key pattern makes the document invalid.
    pub fn policy(self, keys: &[&str]) -> Result<Policy> {
        let list = |xs: &[&str]| serde_json::to_string(xs).unwrap_or_default();
        let json = match self {
            Role::SecurityAdmin => format!(
                r#"{{"Version":"1","Statement":[
                    {{"Effect":"Allow","Action":{},"Resource":"*"}},
                    {{"Effect":"Deny","Action":{},"Resource":"*"}}]}}"#,
                list(ADMIN_ACTIONS),
                list(CRYPTO_ACTIONS)
            ),
            Role::CryptoUser => {
                let resources: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        if k.starts_with("acs:") {
                            (*k).to_owned()
                        } else {
                            format!("acs:kms:*:*:key/{k}")
                        }
                    })
                    .collect();
                if resources.is_empty() {
                    return Err(Error::invalid("Keys", "a CryptoUser needs at least one key"));
                }
                let mut actions = CRYPTO_ACTIONS.to_vec();
                // What a user needs to find the key and (asymmetric keys) its versions and public key.
                actions.extend([
                    "kms:DescribeKey",
                    "kms:ListAliasesByKeyId",
                    "kms:ListKeyVersions",
                    "kms:DescribeKeyVersion",
                    "kms:GetPublicKey",
                ]);
                format!(
                    r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":{},"Resource":{}}}]}}"#,
                    list(&actions),
                    serde_json::to_string(&resources).unwrap_or_default()
                )
            }
            Role::Auditor => r#"{"Version":"1","Statement":[
                {"Effect":"Allow","Action":["kms:LookupAuditEvents","kms:VerifyAuditTrail","kms:GetUsageReport"],"Resource":"*"}]}"#
                .to_owned(),
        };
        Policy::parse(&json)
    }
}

/// The policies in force: those attached to principals and the key policies.
#[derive(Debug, Default)]
pub struct PolicySet {
    inner: RwLock<PolicySetInner>,
}

#[derive(Debug, Default)]
struct PolicySetInner {
    principals: HashMap<String, BTreeMap<String, Arc<Policy>>>,
    keys: HashMap<KeyId, Arc<Policy>>,
    /// Principal → the roles it acts in (a role is a principal name with its own attached policies).
    roles: HashMap<String, std::collections::BTreeSet<String>>,
}

impl PolicySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PolicySetInner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, PolicySetInner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Attaches `policy` to `principal` under `name` (replacing one of the same name).
    pub fn attach(&self, principal: &str, name: &str, policy: Policy) {
        self.write()
            .principals
            .entry(principal.to_owned())
            .or_default()
            .insert(name.to_owned(), Arc::new(policy));
    }

    /// Detaches a policy; returns whether it was attached.
    pub fn detach(&self, principal: &str, name: &str) -> bool {
        let mut w = self.write();
        let Some(m) = w.principals.get_mut(principal) else {
            return false;
        };
        let removed = m.remove(name).is_some();
        if m.is_empty() {
            w.principals.remove(principal);
        }
        removed
    }

    /// Lets `principal` act in `role`: the policies attached to the role apply to it as well (one
    /// level; a role's own roles are not followed).
    pub fn assign_role(&self, principal: &str, role: &str) {
        self.write()
            .roles
            .entry(principal.to_owned())
            .or_default()
            .insert(role.to_owned());
    }

    /// Takes `role` away from `principal`; returns whether it had it.
    pub fn revoke_role(&self, principal: &str, role: &str) -> bool {
        let mut w = self.write();
        let Some(r) = w.roles.get_mut(principal) else {
            return false;
        };
        let removed = r.remove(role);
        if r.is_empty() {
            w.roles.remove(principal);
        }
        removed
    }

    /// Sets (or with `None` removes) the key policy of `key`.
    pub fn set_key_policy(&self, key: &KeyId, policy: Option<Policy>) {
        let mut w = self.write();
        match policy {
            Some(p) => {
                w.keys.insert(key.clone(), Arc::new(p));
            }
            None => {
                w.keys.remove(key);
            }
        }
    }

    /// The key policy of `key`.
    pub fn key_policy(&self, key: &KeyId) -> Option<Arc<Policy>> {
        self.read().keys.get(key).cloned()
    }

    /// The names of the policies attached to `principal`.
    pub fn attached(&self, principal: &str) -> Vec<String> {
        self.read()
            .principals
            .get(principal)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether no policy at all is configured.
    pub fn is_empty(&self) -> bool {
        let r = self.read();
        r.principals.is_empty() && r.keys.is_empty() && r.roles.is_empty()
    }

    /// Evaluates the principal's policies and the key policy of `key` (when given) together.
    pub fn evaluate(&self, req: &RequestContext<'_>, key: Option<&KeyId>) -> Decision {
        let r = self.read();
        let mut allowed = false;
        let key_policy = key.and_then(|k| r.keys.get(k));
        let attached = r.principals.get(req.principal);
        let via_roles = r
            .roles
            .get(req.principal)
            .into_iter()
            .flatten()
            .filter_map(|role| r.principals.get(role));
        let docs = attached
            .into_iter()
            .chain(via_roles)
            .flat_map(|m| m.values())
            .chain(key_policy);
        for p in docs {
            match p.evaluate(req) {
                Decision::ExplicitDeny => return Decision::ExplicitDeny,
                Decision::Allow => allowed = true,
                Decision::ImplicitDeny => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

/// Fuzzing entry point: parses arbitrary bytes as a policy and evaluates a parsed one; never panics.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Policy::parse(s) {
        let res = vec!["acs:kms:local:0:key/k".to_owned()];
        let ctx = EncryptionContext::from_pairs([("a", "b")]).ok();
        for a in [Action::Encrypt, Action::DisableKey] {
            let req = RequestContext::new("p", a, &res, Timestamp::from_unix(1_700_000_000))
                .source_ip(Some(IpAddr::from([10, 0, 0, 1])))
                .encryption_context(ctx.as_ref());
            let _ = p.evaluate(&req);
        }
        // A parsed document re-parses from its own text.
        assert!(Policy::parse(p.as_json()).is_ok());
    } else if let Err(e) = Policy::parse(s) {
        assert_eq!(e.code(), crate::ErrorCode::InvalidParameter);
    }
}
