//! The encryption context: a string→string map bound to a ciphertext as additional authenticated data.
//!
//! The context is never stored in the ciphertext; decryption must present an equal map. Equality is
//! order-insensitive because the map is kept sorted and bound in one canonical form:
//!
//! ```text
//! canonical = u32be(n) ‖ for each (k, v) in key order: u32be(len k) ‖ k ‖ u32be(len v) ‖ v
//! ```
//!
//! Length prefixes make the encoding injective (`{"a":"bc"}` and `{"ab":"c"}` differ).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest context accepted, in characters of its compact JSON form (as the model service counts).
pub const MAX_CONTEXT_CHARS: usize = 8192;

/// An encryption context.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// The empty context.
    pub fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// Builds a context from pairs.
    ///
    /// # Errors
    /// `InvalidParameter` when the result exceeds [`MAX_CONTEXT_CHARS`].
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let ctx = Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        ctx.check_size()?;
        Ok(ctx)
    }

    /// Parses the API's JSON form: an object of string values. Key order and whitespace are irrelevant;
    /// the empty string means the empty context.
    ///
    /// # Errors
    /// `InvalidParameter` for anything that is not a JSON object of strings, for duplicate keys, or for
    /// a context over [`MAX_CONTEXT_CHARS`].
    pub fn from_json(s: &str) -> Result<Self> {
        if s.trim().is_empty() {
            return Ok(Self::new());
        }
        let value: serde_json::Value = serde_json::from_str(s)
            .map_err(|e| Error::invalid("EncryptionContext", format!("not JSON: {e}")))?;
        let serde_json::Value::Object(obj) = value else {
            return Err(Error::invalid(
                "EncryptionContext",
                "must be a JSON object of string values",
            ));
        };
        let mut map = BTreeMap::new();
        for (k, v) in obj {
            let serde_json::Value::String(v) = v else {
                return Err(Error::invalid(
                    "EncryptionContext",
                    format!("the value of {k:?} is not a string"),
                ));
            };
            map.insert(k, v);
        }
        // serde_json keeps the last of duplicate keys; count them to refuse ambiguity.
        let raw: Vec<(String, serde_json::Value)> = serde_json::from_str::<DupCheck>(s)
            .map(|d| d.0)
            .unwrap_or_default();
        if raw.len() != map.len() {
            return Err(Error::invalid("EncryptionContext", "duplicate keys"));
        }
        let ctx = Self(map);
        ctx.check_size()?;
        Ok(ctx)
    }

    /// The compact JSON form (sorted keys).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    fn check_size(&self) -> Result<()> {
        let chars = self.to_json().chars().count();
        if chars > MAX_CONTEXT_CHARS {
            return Err(Error::invalid(
                "EncryptionContext",
                format!("{chars} characters, more than the {MAX_CONTEXT_CHARS} allowed"),
            ));
        }
        Ok(())
    }

    /// Appends the canonical AAD form to `out`.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&len32(self.0.len()));
        for (k, v) in &self.0 {
            out.extend_from_slice(&len32(k.len()));
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&len32(v.len()));
            out.extend_from_slice(v.as_bytes());
        }
    }

    /// The canonical AAD form.
    pub fn canonical(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_canonical(&mut v);
        v
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn len32(n: usize) -> [u8; 4] {
    // Contexts are bounded far below 4 GiB by MAX_CONTEXT_CHARS.
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// Collects an object's entries without merging duplicates.
struct DupCheck(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for DupCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DupCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<DupCheck, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry::<String, serde_json::Value>()? {
                    v.push(e);
                }
                Ok(DupCheck(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl TryFrom<BTreeMap<String, String>> for EncryptionContext {
    type Error = Error;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self> {
        let ctx = Self(m);
        ctx.check_size()?;
        Ok(ctx)
    }
}

impl From<EncryptionContext> for BTreeMap<String, String> {
    fn from(c: EncryptionContext) -> Self {
        c.0
    }
}

impl fmt::Debug for EncryptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_whitespace_insensitive() {
        let a = EncryptionContext::from_json(r#"{"b": "2", "a": "1"}"#).unwrap();
        let b = EncryptionContext::from_json(r#"{"a":"1","b":"2"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.to_json(), r#"{"a":"1","b":"2"}"#);
    }

    #[test]
    fn canonical_is_injective() {
        let a = EncryptionContext::from_pairs([("a", "bc")]).unwrap();
        let b = EncryptionContext::from_pairs([("ab", "c")]).unwrap();
        assert_ne!(a.canonical(), b.canonical());
        assert_ne!(
            EncryptionContext::new().canonical(),
            EncryptionContext::from_pairs([("", "")]).unwrap().canonical()
        );
    }

    #[test]
    fn rejects_non_string_maps() {
        for bad in [
            "[]",
            "\"x\"",
            "{\"a\": 1}",
            "{\"a\": null}",
            "{\"a\": {\"b\": \"c\"}}",
            "{\"a\": [\"b\"]}",
            "{not json",
            "{\"a\":\"1\",\"a\":\"2\"}",
        ] {
            let e = EncryptionContext::from_json(bad).unwrap_err();
            assert_eq!(e.code().as_str(), "InvalidParameter", "{bad}");
        }
        assert!(EncryptionContext::from_json("").unwrap().is_empty());
        assert!(EncryptionContext::from_json("{}").unwrap().is_empty());
    }

    #[test]
    fn size_limit() {
        // {"k":"<v>"} is 8 + len(v) characters.
        let ok = "v".repeat(MAX_CONTEXT_CHARS - 8);
        assert!(EncryptionContext::from_pairs([("k", ok.as_str())]).is_ok());
        let too_long = "v".repeat(MAX_CONTEXT_CHARS - 7);
        assert!(EncryptionContext::from_pairs([("k", too_long.as_str())]).is_err());
        assert!(EncryptionContext::from_json(&format!("{{\"k\":\"{too_long}\"}}")).is_err());
    }
}
