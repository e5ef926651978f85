//! Identifiers: key ids, version ids, alias names, ARNs, and the one [`KeyRef`] parser.
//!
//! A key reference accepts a key id (`1234abcd-12ab-34cd-56ef-1234567890ab`, or the KMS-3.0 form
//! `key-hzz63…`), an alias (`alias/<name>`), or an ARN (`acs:kms:<region>:<account>:key/<id>` or
//! `…:alias/<name>`). Anything else is rejected with `InvalidParameter`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAX_ID_LEN: usize = 128;
const MAX_ALIAS_NAME_LEN: usize = 255;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn check_id(name: &'static str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(name, "empty"));
    }
    if s.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            name,
            format!("longer than {MAX_ID_LEN} characters"),
        ));
    }
    if !s.chars().all(is_id_char) {
        return Err(Error::invalid(
            name,
            "only ASCII letters, digits, '-' and '_' are allowed",
        ));
    }
    Ok(())
}

/// Formats 16 random bytes as a version-4 UUID (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
pub(crate) fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $param:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            ///
            /// # Errors
            /// `InvalidParameter` when empty, too long, or not made of ASCII letters, digits, `-`, `_`.
            pub fn new(s: impl Into<String>) -> Result<Self> {
                let s = s.into();
                check_id($param, &s)?;
                Ok(Self(s))
            }

            /// Makes a fresh random id (a version-4 UUID from the OS RNG).
            pub fn generate() -> Self {
                Self(uuid_v4(crate::rand::array()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A key id: the real, stable name of a key.
    KeyId,
    "KeyId"
);
string_id!(
    /// A key version id.
    KeyVersionId,
    "KeyVersionId"
);

/// An alias name, always including its `alias/` prefix.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AliasName(String);

impl AliasName {
    /// The prefix every alias carries.
    pub const PREFIX: &'static str = "alias/";

    /// Parses an alias name (`alias/` + 1–255 of `A-Z a-z 0-9 _ - /`).
    ///
    /// # Errors
    /// `InvalidParameter` for a malformed name; `Unsupported.Alias` for the reserved `alias/acs`
    /// namespace.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let Some(rest) = s.strip_prefix(Self::PREFIX) else {
            return Err(Error::invalid("AliasName", "must start with \"alias/\""));
        };
        if rest.is_empty() || rest.len() > MAX_ALIAS_NAME_LEN {
            return Err(Error::invalid(
                "AliasName",
                format!("the name after \"alias/\" must be 1 to {MAX_ALIAS_NAME_LEN} characters"),
            ));
        }
        if !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
        {
            return Err(Error::invalid(
                "AliasName",
                "only ASCII letters, digits, '_', '-' and '/' are allowed",
            ));
        }
        if rest == "acs" || rest.starts_with("acs/") {
            return Err(Error::UnsupportedAlias(s));
        }
        Ok(Self(s))
    }

    /// The full name, `alias/…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AliasName({:?})", self.0)
    }
}

impl FromStr for AliasName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for AliasName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<AliasName> for String {
    fn from(a: AliasName) -> String {
        a.0
    }
}

/// What an ARN names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ArnResource {
    /// `key/<id>`
    Key(KeyId),
    /// `alias/<name>`
    Alias(AliasName),
}

/// An Alibaba-style resource name, `acs:kms:<region>:<account>:key/<id>` or `…:alias/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Arn {
    /// The region, e.g. `cn-hangzhou`.
    pub region: String,
    /// The account id.
    pub account: String,
    /// The key or alias it names.
    pub resource: ArnResource,
}

impl Arn {
    /// The ARN of a key.
    pub fn key(region: &str, account: &str, key: &KeyId) -> String {
        format!("acs:kms:{region}:{account}:key/{key}")
    }

    /// The ARN of an alias.
    pub fn alias(region: &str, account: &str, alias: &AliasName) -> String {
        format!("acs:kms:{region}:{account}:{alias}")
    }

    /// Parses an ARN.
    ///
    /// # Errors
    /// `InvalidParameter` when it is not `acs:kms:<region>:<account>:key/<id>` or `…:alias/<name>`.
    pub fn parse(s: &str) -> Result<Arn> {
        let bad = |why: &str| Error::invalid("KeyId", format!("malformed ARN: {why}"));
        let mut parts = s.splitn(5, ':');
        let (Some("acs"), Some("kms"), Some(region), Some(account), Some(res)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("expected acs:kms:<region>:<account>:<resource>"));
        };
        let field_ok = |f: &str| {
            !f.is_empty()
                && f.len() <= 64
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !field_ok(region) {
            return Err(bad("bad region"));
        }
        if !field_ok(account) {
            return Err(bad("bad account"));
        }
        let resource = if let Some(id) = res.strip_prefix("key/") {
            ArnResource::Key(KeyId::new(id)?)
        } else if res.starts_with(AliasName::PREFIX) {
            ArnResource::Alias(AliasName::new(res)?)
        } else {
            return Err(bad("resource must be key/<id> or alias/<name>"));
        };
        Ok(Arn {
            region: region.to_owned(),
            account: account.to_owned(),
            resource,
        })
    }
}

/// A reference to a key, as every `KeyId` parameter of the API accepts it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyRef {
    /// A key id.
    Id(KeyId),
    /// An alias naming a key.
    Alias(AliasName),
    /// A key or alias ARN.
    Arn(Arn),
}

impl KeyRef {
    /// Parses a key id, `alias/<name>` or ARN.
    ///
    /// # Errors
    /// `InvalidParameter` for anything else (`Unsupported.Alias` for the reserved `alias/acs`).
    pub fn parse(s: &str) -> Result<KeyRef> {
        if s.is_empty() {
            return Err(Error::MissingParameter("KeyId"));
        }
        if s.starts_with("acs:") {
            Arn::parse(s).map(KeyRef::Arn)
        } else if s.starts_with(AliasName::PREFIX) {
            AliasName::new(s).map(KeyRef::Alias)
        } else {
            KeyId::new(s).map(KeyRef::Id)
        }
    }
}

impl FromStr for KeyRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KeyRef::parse(s)
    }
}

impl From<KeyId> for KeyRef {
    fn from(id: KeyId) -> Self {
        KeyRef::Id(id)
    }
}

impl From<&KeyId> for KeyRef {
    fn from(id: &KeyId) -> Self {
        KeyRef::Id(id.clone())
    }
}

impl From<AliasName> for KeyRef {
    fn from(a: AliasName) -> Self {
        KeyRef::Alias(a)
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Id(id) => write!(f, "{id}"),
            KeyRef::Alias(a) => write!(f, "{a}"),
            KeyRef::Arn(arn) => match &arn.resource {
                ArnResource::Key(k) => write!(f, "acs:kms:{}:{}:key/{k}", arn.region, arn.account),
                ArnResource::Alias(a) => write!(f, "acs:kms:{}:{}:{a}", arn.region, arn.account),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_all_three_forms() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(KeyRef::parse(id).unwrap(), KeyRef::Id(KeyId::new(id).unwrap()));
        assert_eq!(
            KeyRef::parse("key-hzz630494463ejqjx4jxc").unwrap(),
            KeyRef::Id(KeyId::new("key-hzz630494463ejqjx4jxc").unwrap())
        );
        assert!(matches!(
            KeyRef::parse("alias/my-app/prod").unwrap(),
            KeyRef::Alias(_)
        ));
        let arn = KeyRef::parse(&format!("acs:kms:cn-hangzhou:123456:key/{id}")).unwrap();
        let KeyRef::Arn(a) = &arn else {
            panic!("not an arn")
        };
        assert_eq!(a.region, "cn-hangzhou");
        assert_eq!(a.account, "123456");
        assert_eq!(a.resource, ArnResource::Key(KeyId::new(id).unwrap()));
        assert_eq!(arn.to_string(), format!("acs:kms:cn-hangzhou:123456:key/{id}"));
        let alias_arn = KeyRef::parse("acs:kms:cn-hangzhou:123456:alias/x").unwrap();
        assert_eq!(alias_arn.to_string(), "acs:kms:cn-hangzhou:123456:alias/x");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "has space",
            "alias/",
            "acs:kms:cn:1:key/",
            "acs:kms:cn:1:secret/x",
            "acs:ecs:cn:1:key/abc",
            "acs:kms::1:key/abc",
            "acs:kms:cn:1",
            "k\u{e9}y",
            "../etc/passwd",
            "alias/bad name",
            "key/abc",
            &"x".repeat(129),
            &format!("alias/{}", "a".repeat(256)),
        ] {
            let err = KeyRef::parse(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidParameter, "{bad:?}: {err}");
        }
        assert_eq!(KeyRef::parse("").unwrap_err().code(), ErrorCode::MissingParameter);
        assert_eq!(
            KeyRef::parse("alias/acs").unwrap_err().code(),
            ErrorCode::UnsupportedAlias
        );
        assert_eq!(
            KeyRef::parse("alias/acs/rds").unwrap_err().code(),
            ErrorCode::UnsupportedAlias
        );
        assert!(KeyRef::parse("alias/acsx").is_ok());
    }

    #[test]
    fn generated_ids_are_uuid_v4() {
        let id = KeyId::generate();
        let s = id.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(KeyId::generate(), id);
        assert!(KeyRef::parse(s).is_ok());
    }

    #[test]
    fn serde_validates() {
        let ok: KeyId = serde_json::from_str("\"abc-1\"").unwrap();
        assert_eq!(ok.as_str(), "abc-1");
        assert!(serde_json::from_str::<KeyId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<AliasName>("\"nope\"").is_err());
    }
}
