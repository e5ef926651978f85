//! The TOML configuration of the `kmskit-server` binary.
//!
//! ```toml
//! bind = "127.0.0.1:8080"          # the default binds loopback only
//! host_id = "kms.example.internal" # HostId in error bodies
//! region = "cn-hangzhou"           # for ARNs
//! max_skew_secs = 900
//! max_body_bytes = 262144
//! access_log = true                # one line per request (tracing target kmskit_server::access)
//!
//! [keystore]                       # a kmskit-file keystore
//! dir = "/var/lib/kmskit"
//! root_key_file = "/etc/kmskit/root.key"   # or root_key_env = "KMSKIT_ROOT_KEY"
//!
//! [tls]                            # optional: PEM files
//! cert = "/etc/kmskit/cert.pem"
//! key = "/etc/kmskit/key.pem"
//!
//! [rate_limit]                     # optional, per principal
//! requests_per_second = 1000
//! burst = 2000
//!
//! [proxy]                          # optional: trust a proxy's client-address header
//! header = "x-forwarded-for"
//! trusted = ["127.0.0.1"]
//!
//! [[access_keys]]
//! id = "LTAI5tExample"
//! secret_file = "/etc/kmskit/alice.secret" # or secret_env = "ALICE_SECRET"; never inline
//! principal = "alice"
//! actions = ["*"]                  # allowed actions (default all; becomes a generated policy)
//! roles = ["CryptoUser"]           # role templates: SecurityAdmin, CryptoUser, Auditor
//! keys = ["*"]                     # the keys a CryptoUser may use (key ids, `*` or `acs:` ARN patterns)
//! policies = ["policies/app.json"] # policy documents (relative to this file) attached to the principal
//!
//! [audit]                          # optional: the audit trail (hash-chained JSON lines)
//! dir = "/var/lib/kmskit/audit"    # default: `<keystore dir>/audit`, where `kmskit audit` looks
//! ```
//!
//! Access control: when any access key has `roles`, `policies` or a restricted `actions` list, the
//! engine enforces policies for every principal: each key's principal gets its roles' templates, its
//! policy files and, when `actions` is given (or nothing else is), an `Allow` of those actions on every
//! resource (`*` → `kms:*`). Several keys of one principal add up. Denials answer
//! `Forbidden.NoPermission` and, like every call, are in the audit trail with the response's `RequestId`.
//!
//! Errors name the file and line: `kmskit.toml:12: access key "x": secret_file ... cannot be read`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kmskit_core::policy::{Policy, PolicySet, Role};
use serde::Deserialize;
use toml::Spanned;

use crate::actions::{is_rotation, is_supported};
use crate::auth::AccessKey;
use crate::sign::AccessKeySecret;

/// A configuration error, with the file and line it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path.display(), l, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `[keystore]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeystoreConfig {
    /// The keystore directory.
    pub dir: PathBuf,
    /// A file holding the 32-byte root key (raw or Base64).
    pub root_key_file: Option<PathBuf>,
    /// An environment variable holding the Base64 root key.
    pub root_key_env: Option<String>,
}

/// `[tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[rate_limit]`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Sustained requests per second per principal.
    pub requests_per_second: f64,
    /// Burst size (default: one second's worth).
    pub burst: Option<f64>,
}

/// `[proxy]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The header carrying the client address (its last entry is used).
    pub header: String,
    /// Peers trusted to set it.
    pub trusted: Vec<IpAddr>,
}

/// One `[[access_keys]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessKeyConfig {
    /// The AccessKeyId.
    pub id: String,
    /// A file holding the secret (trailing whitespace trimmed).
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    pub secret_env: Option<String>,
    /// Refused: secrets never go inline. Present only to give a clear error.
    #[serde(default)]
    secret: Option<toml::Value>,
    /// The principal.
    pub principal: String,
    /// Allowed actions (`*` for all; default all when neither `roles` nor `policies` is given).
    pub actions: Option<Vec<String>>,
    /// Role templates (`SecurityAdmin`, `CryptoUser`, `Auditor`) the principal acts in.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The keys a `CryptoUser` may use: key ids, `*`, or ARN patterns starting with `acs:`.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Policy documents (JSON files; relative paths are relative to the configuration file) attached to
    /// the principal.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    /// Whether the key is enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn all_actions() -> Vec<String> {
    vec!["*".to_owned()]
}

impl AccessKeyConfig {
    /// The allowed actions: `actions`, or all when neither it, `roles` nor `policies` is given.
    pub fn allowed_actions(&self) -> Option<Vec<String>> {
        match &self.actions {
            Some(a) => Some(a.clone()),
            None if self.roles.is_empty() && self.policies.is_empty() => Some(all_actions()),
            None => None,
        }
    }

    /// Whether this key is restricted (needs policy enforcement).
    fn restricted(&self) -> bool {
        !self.roles.is_empty()
            || !self.policies.is_empty()
            || self
                .allowed_actions()
                .is_some_and(|a| !a.iter().any(|x| x == "*"))
    }
}

/// `[audit]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditConfig {
    /// The audit directory (default `<keystore dir>/audit`).
    pub dir: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Listen address (default `127.0.0.1:8080`).
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// `HostId` in error bodies.
    pub host_id: Option<String>,
    /// Region for ARNs.
    pub region: Option<String>,
    /// Account for ARNs.
    pub account: Option<String>,
    /// Allowed clock skew, seconds (default 900).
    pub max_skew_secs: Option<u64>,
    /// Largest request body (default 256 KiB).
    pub max_body_bytes: Option<usize>,
    /// Access log on (default true).
    #[serde(default = "yes")]
    pub access_log: bool,
    /// The keystore (required outside dev mode).
    pub keystore: Option<Spanned<KeystoreConfig>>,
    /// TLS.
    pub tls: Option<Spanned<TlsConfig>>,
    /// Per-principal rate limit.
    pub rate_limit: Option<RateLimitConfig>,
    /// Trusted proxy.
    pub proxy: Option<ProxyConfig>,
    /// The audit trail.
    pub audit: Option<AuditConfig>,
    /// Access keys.
    #[serde(default)]
    pub access_keys: Vec<Spanned<AccessKeyConfig>>,
    #[serde(skip)]
    source: Source,
}

#[derive(Clone, Debug, Default)]
struct Source {
    path: PathBuf,
    text: String,
}

impl Config {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file (and line) for unreadable files, TOML errors, unknown fields,
    /// inline secrets, unknown actions and repeated access key ids.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: None,
            message: format!("cannot be read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text that came from `path`.
    ///
    /// # Errors
    /// As [`Config::from_file`].
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref().to_owned();
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
            path: path.clone(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        cfg.source = Source {
            path,
            text: text.to_owned(),
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn err(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.source.path.clone(),
            line: span.map(|s| line_of(&self.source.text, s.start)),
            message: message.into(),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for k in &self.access_keys {
            let span = Some(k.span());
            let a = k.get_ref();
            if a.secret.is_some() {
                return Err(self.err(
                    span,
                    format!(
                        "access key {:?}: an inline `secret` is not allowed (config files get logged and \
                         copied); use secret_file or secret_env",
                        a.id
                    ),
                ));
            }
            if a.secret_file.is_some() == a.secret_env.is_some() {
                return Err(self.err(
                    span,
                    format!(
                        "access key {:?}: give exactly one of secret_file and secret_env",
                        a.id
                    ),
                ));
            }
            if a.id.is_empty() || a.principal.is_empty() {
                return Err(self.err(span, "an access key needs a non-empty id and principal"));
            }
            if !seen.insert(a.id.clone()) {
                return Err(self.err(span, format!("access key {:?} is configured twice", a.id)));
            }
            for act in a.actions.iter().flatten() {
                if act != "*" && !is_supported(act) && !is_rotation(act) {
                    return Err(self.err(span, format!("access key {:?}: unknown action {act:?}", a.id)));
                }
            }
            for r in &a.roles {
                if parse_role(r).is_none() {
                    return Err(self.err(
                        span,
                        format!(
                            "access key {:?}: unknown role {r:?} (SecurityAdmin, CryptoUser or Auditor)",
                            a.id
                        ),
                    ));
                }
            }
            if a.roles.iter().any(|r| parse_role(r) == Some(Role::CryptoUser)) && a.keys.is_empty() {
                return Err(self.err(
                    span,
                    format!(
                        "access key {:?}: the CryptoUser role needs `keys` (key ids, or [\"*\"] for all)",
                        a.id
                    ),
                ));
            }
        }
        if let Some(ks) = &self.keystore {
            let k = ks.get_ref();
            if k.root_key_file.is_some() == k.root_key_env.is_some() {
                return Err(self.err(
                    Some(ks.span()),
                    "[keystore]: give exactly one of root_key_file and root_key_env",
                ));
            }
        }
        Ok(())
    }

    /// The configured access keys, secrets read from their files or environment variables.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the entry's line when a secret cannot be read or is empty.
    pub fn access_keys(&self) -> Result<Vec<AccessKey>, ConfigError> {
        let mut out = Vec::new();
        for k in &self.access_keys {
            let a = k.get_ref();
            let span = Some(k.span());
            let secret = if let Some(f) = &a.secret_file {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                    self.err(
                        span.clone(),
                        format!(
                            "access key {:?}: secret_file {} cannot be read: {e}",
                            a.id,
                            f.display()
                        ),
                    )
                })?);
                text.trim_end().to_owned()
            } else {
                let var = a.secret_env.as_deref().unwrap_or_default();
                std::env::var(var).map_err(|_| {
                    self.err(
                        span.clone(),
                        format!("access key {:?}: environment variable {var} is not set", a.id),
                    )
                })?
            };
            if secret.is_empty() {
                return Err(self.err(span, format!("access key {:?}: the secret is empty", a.id)));
            }
            let mut key = AccessKey::new(a.id.clone(), AccessKeySecret::new(secret), a.principal.clone())
                .allow_actions(a.allowed_actions().unwrap_or_default());
            key.enabled = a.enabled;
            out.push(key);
        }
        Ok(out)
    }

    /// The policies the access keys' principals get, or `None` when no key is restricted (every key may
    /// do everything: no enforcement needed).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the entry's line when a policy file cannot be read or parsed, or a role
    /// template cannot be built.
    pub fn policy_set(&self) -> Result<Option<Arc<PolicySet>>, ConfigError> {
        if !self.access_keys.iter().any(|k| k.get_ref().restricted()) {
            return Ok(None);
        }
        let set = PolicySet::new();
        let base = self.source.path.parent().unwrap_or_else(|| Path::new(""));
        for k in &self.access_keys {
            let a = k.get_ref();
            let span = Some(k.span());
            let p = a.principal.as_str();
            if let Some(actions) = a.allowed_actions() {
                let list: Vec<String> = actions
                    .iter()
                    .map(|x| {
                        if x == "*" {
                            "kms:*".to_owned()
                        } else {
                            format!("kms:{}", policy_action(x))
                        }
                    })
                    .collect();
                if !list.is_empty() {
                    let json = format!(
                        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":{},"Resource":"*"}}]}}"#,
                        serde_json::to_string(&list).unwrap_or_default()
                    );
                    let pol = Policy::parse(&json).map_err(|e| {
                        self.err(span.clone(), format!("access key {:?}: actions: {e}", a.id))
                    })?;
                    set.attach(p, &format!("access-key:{}:actions", a.id), pol);
                }
            }
            for r in &a.roles {
                let role = parse_role(r).ok_or_else(|| {
                    self.err(span.clone(), format!("access key {:?}: unknown role {r:?}", a.id))
                })?;
                let keys: Vec<&str> = a.keys.iter().map(String::as_str).collect();
                let pol = role
                    .policy(&keys)
                    .map_err(|e| self.err(span.clone(), format!("access key {:?}: role {r}: {e}", a.id)))?;
                set.attach(p, &format!("role:{r}"), pol);
            }
            for f in &a.policies {
                let path = if f.is_absolute() { f.clone() } else { base.join(f) };
                let json = std::fs::read_to_string(&path).map_err(|e| {
                    self.err(
                        span.clone(),
                        format!(
                            "access key {:?}: policy {} cannot be read: {e}",
                            a.id,
                            path.display()
                        ),
                    )
                })?;
                let pol = Policy::parse(&json).map_err(|e| {
                    self.err(
                        span.clone(),
                        format!("access key {:?}: policy {}: {e}", a.id, path.display()),
                    )
                })?;
                set.attach(p, &format!("file:{}", path.display()), pol);
            }
        }
        Ok(Some(Arc::new(set)))
    }

    /// The audit directory: `[audit] dir`, else `<keystore dir>/audit` (`None` without a keystore).
    pub fn audit_dir(&self) -> Option<PathBuf> {
        if let Some(d) = self.audit.as_ref().and_then(|a| a.dir.clone()) {
            return Some(d);
        }
        self.keystore.as_ref().map(|k| k.get_ref().dir.join("audit"))
    }

    /// The rustls configuration of `[tls]`, if any.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `[tls]`'s line when a PEM file cannot be read or holds no usable item.
    pub fn tls_config(&self) -> Result<Option<Arc<tokio_rustls::rustls::ServerConfig>>, ConfigError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let span = Some(tls.span());
        let t = tls.get_ref();
        load_tls(&t.cert, &t.key)
            .map(Some)
            .map_err(|m| self.err(span, format!("[tls]: {m}")))
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.source.path
    }
}

/// Loads a rustls server configuration from PEM files (certificate chain, private key).
///
/// # Errors
/// A description when a file cannot be read or parsed.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("cert {}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// The policy action the engine authorizes a served action as (the batch tag actions are the engine's
/// single-resource ones).
fn policy_action(action: &str) -> &str {
    match action {
        "TagResources" => "TagResource",
        "UntagResources" => "UntagResource",
        "ListTagResources" => "ListResourceTags",
        a => a,
    }
}

fn parse_role(s: &str) -> Option<Role> {
    match s {
        "SecurityAdmin" => Some(Role::SecurityAdmin),
        "CryptoUser" => Some(Role::CryptoUser),
        "Auditor" => Some(Role::Auditor),
        _ => None,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_and_line() {
        let text =
            "bind = \"127.0.0.1:1\"\n\n[[access_keys]]\nid = \"a\"\nsecret = \"x\"\nprincipal = \"p\"\n";
        let e = Config::parse(text, "k.toml").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().starts_with("k.toml:3: "), "{e}");
        assert!(e.message.contains("inline"));

        let e = Config::parse("bind = 12\n", "k.toml").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        let e = Config::parse("\n\nbogus = 1\n", "k.toml").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");

        let text =
            "[[access_keys]]\nid = \"a\"\nsecret_env = \"X\"\nprincipal = \"p\"\nactions = [\"Fly\"]\n";
        let e = Config::parse(text, "k.toml").unwrap_err();
        assert!(e.message.contains("Fly"), "{e}");
    }

    #[test]
    fn secrets_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "file-secret\n").unwrap();
        let text = format!(
            "[[access_keys]]\nid = \"a\"\nsecret_file = {:?}\nprincipal = \"p\"\n\n[[access_keys]]\nid = \"b\"\n\
             secret_env = \"KMSKIT_TEST_NOT_SET_EVER\"\nprincipal = \"q\"\n",
            f.display().to_string()
        );
        let cfg = Config::parse(&text, "k.toml").unwrap();
        assert_eq!(cfg.bind, default_bind());
        let e = cfg.access_keys().unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        let text = text.replace(
            "\n\n[[access_keys]]\nid = \"b\"\nsecret_env = \"KMSKIT_TEST_NOT_SET_EVER\"\nprincipal = \"q\"\n",
            "",
        );
        let keys = Config::parse(&text, "k.toml").unwrap().access_keys().unwrap();
        assert_eq!(keys[0].secret.expose_secret(), "file-secret");
        assert!(!format!("{:?}", keys[0]).contains("file-secret"));
    }

    #[test]
    fn policies_from_roles_files_and_actions() {
        let key = |extra: &str| {
            format!("[[access_keys]]\nid = \"a\"\nsecret_env = \"X\"\nprincipal = \"p\"\n{extra}\n")
        };
        // Unrestricted keys: no enforcement (backward compatible).
        let cfg = Config::parse(&key(""), "k.toml").unwrap();
        assert!(cfg.policy_set().unwrap().is_none());
        let cfg = Config::parse(&key("actions = [\"*\"]"), "k.toml").unwrap();
        assert!(cfg.policy_set().unwrap().is_none());
        assert_eq!(cfg.audit_dir(), None);

        // A restricted action list becomes a generated policy.
        let cfg = Config::parse(&key("actions = [\"DescribeKey\"]"), "k.toml").unwrap();
        let set = cfg.policy_set().unwrap().unwrap();
        assert_eq!(set.attached("p"), vec!["access-key:a:actions".to_owned()]);

        // Roles and policy files (relative to the configuration file).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.json"),
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}"#,
        )
        .unwrap();
        let text = key("roles = [\"Auditor\", \"CryptoUser\"]\nkeys = [\"*\"]\npolicies = [\"app.json\"]")
            + "[keystore]\ndir = \"/ks\"\nroot_key_env = \"R\"\n";
        let cfg = Config::parse(&text, dir.path().join("k.toml")).unwrap();
        let attached = cfg.policy_set().unwrap().unwrap().attached("p");
        assert_eq!(attached.len(), 3, "{attached:?}");
        assert!(cfg.access_keys[0].get_ref().allowed_actions().is_none());
        assert_eq!(cfg.audit_dir(), Some(PathBuf::from("/ks/audit")));

        // A bad policy file names the entry's line.
        std::fs::write(dir.path().join("app.json"), "{not json").unwrap();
        let e = Config::parse(&text, dir.path().join("k.toml"))
            .unwrap()
            .policy_set()
            .unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.message.contains("app.json"), "{e}");
    }

    #[test]
    fn every_served_action_makes_a_policy() {
        use crate::actions::{ROTATION_ACTIONS, SUPPORTED_ACTIONS};
        for a in SUPPORTED_ACTIONS.iter().chain(ROTATION_ACTIONS) {
            let text = format!(
                "[[access_keys]]\nid = \"a\"\nsecret_env = \"X\"\nprincipal = \"p\"\nactions = [{a:?}]\n"
            );
            let set = Config::parse(&text, "k.toml").unwrap().policy_set();
            assert!(matches!(set, Ok(Some(_))), "{a}: {set:?}");
        }
    }
}
