//! What each command does.

use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kmskit::crypto::asym;
use kmskit::key::{AsymmetricAlgorithm, KeyUsage};
use kmskit::remote::AliyunKms;
use kmskit::stream::{Header, Opener, Options, Sealer, rewrap_in_place};
use kmskit::{
    AliasName, Caller, CiphertextBlob, CreateKey, DataKeyLength, DataKeySpec, EncryptionContext, FileKms,
    KeyProvider, KeyRef, KeySpec, KeyVersionId, ListKeys, PageRequest, RotationPolicy, Rotator, Tag,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::cli::{
    AliasCommand, Cli, Command, DataKeyCommand, FileCommand, Io, KeyCommand, KeyVersionArgs, PublicKeyArgs,
    SignArgs, SignedData, VerifyArgs,
};
use crate::error::CliError;
use crate::keystore;
use crate::output::Printer;

/// The most Encrypt accepts, plus one byte to tell "too long" from "exactly at the limit".
const READ_LIMIT: u64 = kmskit::MAX_PLAINTEXT as u64 + 1;
/// A Base64 blob larger than this is not one kmskit or the model service wrote.
const BLOB_TEXT_LIMIT: u64 = 64 * 1024;
/// Page size for listing everything (the API's maximum).
const PAGE: u32 = 100;
/// Upper bound on pages read when listing everything (100 × 10,000 = a million items).
const MAX_PAGES: u32 = 10_000;

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    let printer = Printer::new(cli.output, cli.fields.clone());
    if let Command::Audit(c) = &cli.command {
        return crate::audit::audit(&keystore::keystore_dir(&cli)?, c, &printer);
    }
    if let Some(endpoint) = cli.endpoint.clone() {
        return remote(cli, &endpoint, &printer);
    }
    let keystore_dir = keystore::keystore_dir(&cli)?;
    let kms = keystore::open(&cli)?;
    let caller = Caller::local();
    let cx = Cx {
        kms: &kms,
        rotator: Some(&kms),
        caller: &caller,
        printer: &printer,
    };
    match cli.command {
        Command::Key(c) => cx.key(c),
        Command::Alias(c) => cx.alias(c),
        Command::Encrypt(a) => cx.encrypt(&a.key, &a.io, a.context.as_deref(), a.raw),
        Command::Decrypt(a) => cx.decrypt(&a.io, a.context.as_deref(), a.raw),
        Command::DataKey(c) => cx.data_key(c),
        Command::Sign(a) => cx.sign(&a),
        Command::Verify(a) => cx.verify(&a),
        Command::PublicKey(a) => cx.public_key(&a),
        Command::File(c) => cx.file(c),
        Command::Audit(_) => Ok(()),
        Command::Usage(a) => crate::audit::usage(&kms, &keystore_dir, &a, &printer),
        Command::Serve(a) => serve(kms, &a),
    }
}

/// `kmskit serve`: kmskit-server over this keystore (provider and rotator), until Ctrl-C or SIGTERM.
fn serve(kms: FileKms, a: &crate::cli::ServeArgs) -> Result<(), CliError> {
    use std::sync::Arc;

    use kmskit_server::sign::{AccessKeySecret, new_nonce};
    use kmskit_server::{AccessKey, Server};

    let server_err = |e: &dyn std::fmt::Display| CliError::new("Cli.Server", e.to_string());
    let kms = Arc::new(kms);
    let mut b = Server::builder()
        .provider(kms.clone() as Arc<dyn KeyProvider>)
        .rotator(kms as Arc<dyn Rotator>);
    let mut bind = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
    if a.dev {
        let (id, secret, generated) = match (
            std::env::var("KMSKIT_DEV_ACCESS_KEY_ID"),
            std::env::var("KMSKIT_DEV_ACCESS_KEY_SECRET"),
        ) {
            (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => (id, secret, false),
            _ => (format!("LTAIdev{}", &new_nonce()[..16]), new_nonce(), true),
        };
        eprintln!("kmskit serve: DEV MODE, NOT FOR PRODUCTION: one all-powerful access key, no TLS.");
        eprintln!("  AccessKeyId:     {id}");
        if generated {
            // Printed once, on purpose: dev mode exists to hand out a working key.
            eprintln!("  AccessKeySecret: {secret}");
        } else {
            eprintln!("  AccessKeySecret: (from KMSKIT_DEV_ACCESS_KEY_SECRET)");
        }
        b = b.host_id("kms.kmskit.dev").access_key(AccessKey::new(
            id,
            AccessKeySecret::new(secret),
            "dev-admin",
        ));
    } else {
        let path = a
            .config
            .as_ref()
            .ok_or_else(|| CliError::usage("--config or --dev is required"))?;
        let cfg = kmskit_server::config::Config::from_file(path).map_err(|e| server_err(&e))?;
        if cfg.keystore.is_some() {
            return Err(CliError::usage(format!(
                "{}: no [keystore] table here: kmskit serve serves the tool's own keystore (--keystore)",
                path.display()
            )));
        }
        let governed = cfg.audit.is_some()
            || cfg.access_keys.iter().any(|k| {
                let k = k.get_ref();
                !k.roles.is_empty() || !k.policies.is_empty()
            });
        if governed {
            return Err(CliError::usage(format!(
                "{}: roles, policies and [audit] are for kmskit-server; kmskit serve checks only \
                 `actions` and audits to the keystore's own trail",
                path.display()
            )));
        }
        for k in cfg.access_keys().map_err(|e| server_err(&e))? {
            b = b.access_key(k);
        }
        if let Some(h) = &cfg.host_id {
            b = b.host_id(h.clone());
        }
        if let Some(s) = cfg.max_skew_secs {
            b = b.max_skew_secs(s);
        }
        if let Some(m) = cfg.max_body_bytes {
            b = b.max_body(m);
        }
        if let Some(r) = cfg.rate_limit {
            b = b.rate_limit(r.requests_per_second, r.burst.unwrap_or(r.requests_per_second));
        }
        if let Some(p) = &cfg.proxy {
            b = b.trusted_proxy(p.header.clone(), p.trusted.clone());
        }
        if let Some(tls) = cfg.tls_config().map_err(|e| server_err(&e))? {
            b = b.tls(tls);
        }
        bind = cfg.bind;
    }
    let bind = a.bind.unwrap_or(bind);
    let server = b.build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| server_err(&e))?;
    rt.block_on(async {
        let running = server
            .bind(bind)
            .await
            .map_err(|e| CliError::new("Cli.Server", format!("cannot bind {bind}: {e}")))?;
        let addr = running
            .local_addr()
            .ok_or_else(|| CliError::new("Cli.Server", "no local address"))?;
        eprintln!("kmskit serve: listening on http://{addr}");
        if let Some(pf) = &a.port_file {
            let tmp = pf.with_extension("tmp");
            fs::write(&tmp, format!("{}\n", addr.port())).map_err(|e| CliError::io(&tmp, e))?;
            fs::rename(&tmp, pf).map_err(|e| CliError::io(pf, e))?;
        }
        let handle = running.shutdown_handle();
        drop(tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            handle.shutdown();
        }));
        running.wait().await;
        Ok(())
    })
}

/// The commands run against a remote KMS (`--endpoint`): the same code over `AliyunKms`.
fn remote(cli: Cli, endpoint: &str, printer: &Printer) -> Result<(), CliError> {
    let local_only = |what: &str| {
        CliError::usage(format!(
            "{what} works on the local keystore and its audit trail; drop --endpoint"
        ))
    };
    match &cli.command {
        Command::Audit(_) => return Err(local_only("kmskit audit")),
        Command::Usage(_) => return Err(local_only("kmskit usage")),
        Command::Serve(_) => return Err(local_only("kmskit serve")),
        _ => {}
    }
    // Multi-thread (one worker), so that `Handle::block_on` below has a thread driving the I/O.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| CliError::new("Cli.Internal", format!("cannot start the I/O runtime: {e}")))?;
    let _guard = rt.enter();
    let kms = AliyunKms::builder().endpoint(endpoint).build()?;
    let caller = Caller::local();
    let cx = Cx {
        kms: &kms,
        rotator: None,
        caller: &caller,
        printer,
    };
    match cli.command {
        Command::Key(c) => cx.key(c),
        Command::Alias(c) => cx.alias(c),
        Command::Encrypt(a) => cx.encrypt(&a.key, &a.io, a.context.as_deref(), a.raw),
        Command::Decrypt(a) => cx.decrypt(&a.io, a.context.as_deref(), a.raw),
        Command::DataKey(c) => cx.data_key(c),
        Command::Sign(a) => cx.sign(&a),
        Command::Verify(a) => cx.verify(&a),
        Command::PublicKey(a) => cx.public_key(&a),
        Command::File(c) => cx.file(c),
        Command::Audit(_) | Command::Usage(_) | Command::Serve(_) => Ok(()),
    }
}

/// Runs a future to completion: on the current tokio runtime when there is one (the remote provider's
/// HTTP client needs it), else on kmskit's minimal executor.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(f),
        Err(_) => kmskit::block_on(f),
    }
}

struct Cx<'a> {
    kms: &'a dyn KeyProvider,
    rotator: Option<&'a dyn Rotator>,
    caller: &'a Caller,
    printer: &'a Printer,
}

impl Cx<'_> {
    /// The rotator, or an error saying rotation needs the local keystore.
    fn rotator(&self) -> Result<&dyn Rotator, CliError> {
        self.rotator.ok_or_else(|| {
            CliError::new(
                "Rejected.UnsupportedOperation",
                "key rotation through --endpoint is not supported yet; run it where the keystore is",
            )
        })
    }
}

fn key_ref(s: &str) -> Result<KeyRef, CliError> {
    Ok(KeyRef::parse(s)?)
}

fn alias_name(s: &str) -> Result<AliasName, CliError> {
    Ok(AliasName::new(s)?)
}

fn context(json: Option<&str>) -> Result<EncryptionContext, CliError> {
    match json {
        None => Ok(EncryptionContext::new()),
        Some(j) => Ok(EncryptionContext::from_json(j)?),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, CliError> {
    serde_json::to_value(v).map_err(|e| CliError::new("Cli.Internal", format!("cannot serialise: {e}")))
}

/// Key metadata for display: the API omits the optional fields (DeleteDate outside PendingDeletion,
/// rotation fields without a policy, PrimaryKeyVersion of asymmetric keys); the CLI shows every field,
/// empty when absent, so `--fields` and table columns are the same for every key.
fn metadata_json(meta: &kmskit::KeyMetadata) -> Result<Value, CliError> {
    let mut v = to_json(meta)?;
    if let Value::Object(m) = &mut v {
        for f in [
            "DeleteDate",
            "MaterialExpireTime",
            "NextRotationDate",
            "PrimaryKeyVersion",
            "RotationInterval",
        ] {
            m.entry(f).or_insert_with(|| Value::String(String::new()));
        }
    }
    Ok(v)
}

impl Cx<'_> {
    fn describe(&self, key: &KeyRef) -> Result<Value, CliError> {
        metadata_json(&block_on(self.kms.describe_key(self.caller, key))?)
    }

    fn key(&self, c: KeyCommand) -> Result<(), CliError> {
        match c {
            KeyCommand::Create {
                description,
                key_spec,
                key_usage,
                tags,
            } => {
                let spec: KeySpec = key_spec.parse()?;
                let mut req = CreateKey::new(description).key_spec(spec);
                if let Some(u) = key_usage {
                    req = req.key_usage(u.parse::<KeyUsage>()?);
                }
                for t in tags {
                    let (k, v) = t
                        .split_once('=')
                        .ok_or_else(|| CliError::usage(format!("--tag {t:?}: expected KEY=VALUE")))?;
                    req = req.tag(Tag::new(k, v)?);
                }
                let meta = block_on(self.kms.create_key(self.caller, req))?;
                self.printer.object(metadata_json(&meta)?)
            }
            KeyCommand::Describe { key } => self.printer.object(self.describe(&key_ref(&key)?)?),
            KeyCommand::List => {
                let mut out = Vec::new();
                for page in 1..=MAX_PAGES {
                    let p = block_on(
                        self.kms
                            .list_keys(self.caller, ListKeys::new(PageRequest::new(page, PAGE)?)),
                    )?;
                    let n = p.items.len();
                    for k in p.items {
                        out.push(self.describe(&KeyRef::Id(k.key_id))?);
                    }
                    if n < PAGE as usize || out.len() as u64 >= p.total_count {
                        break;
                    }
                }
                self.printer.list(
                    out,
                    &["KeyId", "KeyState", "KeySpec", "CreationDate", "Description"],
                )
            }
            KeyCommand::Enable { key } => {
                let k = key_ref(&key)?;
                block_on(self.kms.enable_key(self.caller, &k))?;
                self.state_changed(&k)
            }
            KeyCommand::Disable { key } => {
                let k = key_ref(&key)?;
                block_on(self.kms.disable_key(self.caller, &k))?;
                self.state_changed(&k)
            }
            KeyCommand::ScheduleDeletion {
                key,
                pending_window_days,
            } => {
                let k = key_ref(&key)?;
                block_on(
                    self.kms
                        .schedule_key_deletion(self.caller, &k, pending_window_days),
                )?;
                self.state_changed(&k)
            }
            KeyCommand::CancelDeletion { key } => {
                let k = key_ref(&key)?;
                block_on(self.kms.cancel_key_deletion(self.caller, &k))?;
                self.state_changed(&k)
            }
            KeyCommand::Versions { key } => {
                let k = key_ref(&key)?;
                let mut out = Vec::new();
                for page in 1..=MAX_PAGES {
                    let p = block_on(self.kms.list_key_versions(
                        self.caller,
                        &k,
                        PageRequest::new(page, PAGE)?,
                    ))?;
                    let n = p.items.len();
                    for v in &p.items {
                        out.push(to_json(v)?);
                    }
                    if n < PAGE as usize || out.len() as u64 >= p.total_count {
                        break;
                    }
                }
                self.printer.list(out, &["KeyId", "KeyVersionId", "CreationDate"])
            }
            KeyCommand::Rotate { key } => {
                let k = key_ref(&key)?;
                let version = block_on(self.rotator()?.rotate(self.caller, &k))?;
                self.printer.object(to_json(&version)?)
            }
            KeyCommand::SetRotation {
                key,
                interval,
                disable,
            } => {
                let k = key_ref(&key)?;
                let policy = match (interval, disable) {
                    (Some(i), false) => RotationPolicy::parse_interval(&i)?,
                    _ => RotationPolicy::disabled(),
                };
                block_on(self.rotator()?.set_rotation_policy(self.caller, &k, policy))?;
                let mut v = self.describe(&k)?;
                if let Value::Object(m) = &mut v {
                    m.retain(|k, _| {
                        matches!(
                            k.as_str(),
                            "KeyId"
                                | "AutomaticRotation"
                                | "RotationInterval"
                                | "LastRotationDate"
                                | "NextRotationDate"
                        )
                    });
                }
                self.printer.object(v)
            }
        }
    }

    /// After a state change: the key's id, state and deletion date.
    fn state_changed(&self, key: &KeyRef) -> Result<(), CliError> {
        let mut v = self.describe(key)?;
        if let Value::Object(m) = &mut v {
            m.retain(|k, _| matches!(k.as_str(), "KeyId" | "KeyState" | "DeleteDate"));
        }
        self.printer.object(v)
    }

    fn alias(&self, c: AliasCommand) -> Result<(), CliError> {
        match c {
            AliasCommand::Create { alias, key } => {
                let (a, k) = (alias_name(&alias)?, key_ref(&key)?);
                block_on(self.kms.create_alias(self.caller, &a, &k))?;
                self.printer.done(
                    &format!("{a} -> {key}"),
                    json!({"AliasName": a.to_string(), "KeyId": key}),
                )
            }
            AliasCommand::Update { alias, key } => {
                let (a, k) = (alias_name(&alias)?, key_ref(&key)?);
                block_on(self.kms.update_alias(self.caller, &a, &k))?;
                self.printer.done(
                    &format!("{a} -> {key}"),
                    json!({"AliasName": a.to_string(), "KeyId": key}),
                )
            }
            AliasCommand::Delete { alias } => {
                let a = alias_name(&alias)?;
                block_on(self.kms.delete_alias(self.caller, &a))?;
                self.printer
                    .done(&format!("deleted {a}"), json!({"AliasName": a.to_string()}))
            }
            AliasCommand::List { key } => {
                let mut out = Vec::new();
                let by_key = key.as_deref().map(key_ref).transpose()?;
                for page in 1..=MAX_PAGES {
                    let req = PageRequest::new(page, PAGE)?;
                    let p = match &by_key {
                        Some(k) => block_on(self.kms.list_aliases_by_key_id(self.caller, k, req))?,
                        None => block_on(self.kms.list_aliases(self.caller, req))?,
                    };
                    let n = p.items.len();
                    for a in &p.items {
                        out.push(to_json(a)?);
                    }
                    if n < PAGE as usize || out.len() as u64 >= p.total_count {
                        break;
                    }
                }
                self.printer.list(out, &["AliasName", "KeyId"])
            }
        }
    }

    fn encrypt(&self, key: &str, io: &Io, ctx: Option<&str>, raw: bool) -> Result<(), CliError> {
        let k = key_ref(key)?;
        let ctx = context(ctx)?;
        let pt = read_input(io.input.as_deref(), READ_LIMIT)?;
        let enc = block_on(self.kms.encrypt(self.caller, &k, &pt, &ctx))?;
        let bytes = if raw {
            enc.ciphertext_blob.into_bytes()
        } else {
            let mut s = enc.ciphertext_blob.to_base64().into_bytes();
            s.push(b'\n');
            s
        };
        write_output(io.out_file.as_deref(), &bytes)
    }

    fn decrypt(&self, io: &Io, ctx: Option<&str>, raw: bool) -> Result<(), CliError> {
        let ctx = context(ctx)?;
        let input = read_input(io.input.as_deref(), BLOB_TEXT_LIMIT)?;
        let blob = if raw {
            CiphertextBlob::from_bytes(input.to_vec())
        } else {
            let text = std::str::from_utf8(&input)
                .map_err(|_| CliError::new("InvalidParameter", "the blob is not Base64 text (use --raw)"))?;
            CiphertextBlob::from_base64(text.trim())?
        };
        let dec = block_on(self.kms.decrypt(self.caller, &blob, &ctx))?;
        write_output(io.out_file.as_deref(), &dec.plaintext)
    }

    /// The key and version of an asymmetric command.
    fn key_version(a: &KeyVersionArgs) -> Result<(KeyRef, KeyVersionId), CliError> {
        Ok((key_ref(&a.key)?, KeyVersionId::new(a.key_version.as_str())?))
    }

    /// The digest to sign or verify: `--digest-hex` as given, or the digest of `--message-file` for
    /// `alg` (SHA-256; SM3(Z(A) ‖ M) for SM2DSA).
    fn digest(
        &self,
        key: &KeyRef,
        version: &KeyVersionId,
        alg: AsymmetricAlgorithm,
        data: &SignedData,
    ) -> Result<Vec<u8>, CliError> {
        if alg.digest_len().is_none() {
            return Err(CliError::usage(format!(
                "--algorithm {alg} encrypts; sign and verify take RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, \
                 ECDSA_SHA_256 or SM2DSA"
            )));
        }
        if let Some(h) = &data.digest_hex {
            return hex_decode(h).ok_or_else(|| {
                CliError::new(
                    "InvalidParameter",
                    "--digest-hex: not an even number of hex digits",
                )
            });
        }
        let Some(path) = &data.message_file else {
            return Err(CliError::usage("give --digest-hex or --message-file"));
        };
        if alg == AsymmetricAlgorithm::Sm2Dsa {
            // GB/T 32918.2: SM3(Z(A) ‖ M), Z(A) from the signer id and the version's public key.
            let message = fs::read(path).map_err(|e| CliError::io(path, e))?;
            let pk = block_on(self.kms.get_public_key(self.caller, key, version))?;
            let spki = asym::pem_to_spki(&pk.pem)?;
            return Ok(asym::sm2_digest(&spki, asym::SM2_DEFAULT_ID, &message)?.to_vec());
        }
        let mut f = File::open(path).map_err(|e| CliError::io(path, e))?;
        let mut h = sha2::Sha256::default();
        std::io::copy(&mut f, &mut h).map_err(|e| CliError::io(path, e))?;
        Ok(sha2::Digest::finalize(h).to_vec())
    }

    fn sign(&self, a: &SignArgs) -> Result<(), CliError> {
        let (k, v) = Self::key_version(&a.key)?;
        let alg: AsymmetricAlgorithm = a.algorithm.parse()?;
        let digest = self.digest(&k, &v, alg, &a.data)?;
        let s = block_on(self.kms.asymmetric_sign(self.caller, &k, &v, alg, &digest))?;
        let mut text = B64.encode(&s.signature).into_bytes();
        text.push(b'\n');
        write_output(a.out_file.as_deref(), &text)
    }

    fn verify(&self, a: &VerifyArgs) -> Result<(), CliError> {
        let (k, v) = Self::key_version(&a.key)?;
        let alg: AsymmetricAlgorithm = a.algorithm.parse()?;
        let signature = match (&a.signature.signature_b64, &a.signature.signature_file) {
            (Some(b), _) => B64
                .decode(b.trim())
                .map_err(|_| CliError::new("InvalidParameter", "--signature-b64: not Base64"))?,
            (None, Some(path)) => signature_from_file(path)?,
            (None, None) => return Err(CliError::usage("give --signature-file or --signature-b64")),
        };
        let digest = self.digest(&k, &v, alg, &a.data)?;
        let r = block_on(
            self.kms
                .asymmetric_verify(self.caller, &k, &v, alg, &digest, &signature),
        )?;
        self.printer.object(json!({
            "KeyId": r.key_id.to_string(),
            "KeyVersionId": r.key_version_id.to_string(),
            "Value": r.valid,
        }))?;
        if r.valid {
            Ok(())
        } else {
            Err(CliError::new(
                "Cli.InvalidSignature",
                "the signature does not verify for this digest and key version",
            ))
        }
    }

    fn public_key(&self, a: &PublicKeyArgs) -> Result<(), CliError> {
        let (k, v) = Self::key_version(&a.key)?;
        let p = block_on(self.kms.get_public_key(self.caller, &k, &v))?;
        write_output(a.out_file.as_deref(), p.pem.as_bytes())
    }

    fn data_key(&self, c: DataKeyCommand) -> Result<(), CliError> {
        let DataKeyCommand::Generate {
            key,
            key_spec,
            number_of_bytes,
            context: ctx,
            without_plaintext,
        } = c;
        let k = key_ref(&key)?;
        let ctx = context(ctx.as_deref())?;
        let len = match number_of_bytes {
            Some(n) => DataKeyLength::Bytes(u16::try_from(n).unwrap_or(u16::MAX)),
            None => DataKeyLength::Spec(key_spec.parse::<DataKeySpec>()?),
        };
        if without_plaintext {
            let enc = block_on(
                self.kms
                    .generate_data_key_without_plaintext(self.caller, &k, len, &ctx),
            )?;
            return self.printer.object(json!({
                "KeyId": enc.key_id.to_string(),
                "KeyVersionId": enc.key_version_id.to_string(),
                "CiphertextBlob": enc.ciphertext_blob.to_base64(),
            }));
        }
        let dk = block_on(self.kms.generate_data_key(self.caller, &k, len, &ctx))?;
        let plaintext = Zeroizing::new(B64.encode(dk.plaintext.expose_secret()));
        self.printer.object(json!({
            "KeyId": dk.key_id.to_string(),
            "KeyVersionId": dk.key_version_id.to_string(),
            "Plaintext": plaintext.as_str(),
            "CiphertextBlob": dk.ciphertext_blob.to_base64(),
        }))
    }

    fn file(&self, c: FileCommand) -> Result<(), CliError> {
        match c {
            FileCommand::Encrypt {
                key,
                input,
                dest: output,
                context: ctx,
                chunk_kib,
                workers,
            } => {
                let k = key_ref(&key)?;
                let ctx = context(ctx.as_deref())?;
                let mut opts = Options::default().chunk_size(chunk_kib.saturating_mul(1024))?;
                if let Some(w) = workers {
                    opts = opts.workers(w);
                }
                let sealer = block_on(Sealer::generate(self.kms, self.caller, &k, &ctx, &opts))?;
                let src = File::open(&input).map_err(|e| CliError::io(&input, e))?;
                let len = src.metadata().map(|m| m.len()).unwrap_or(0);
                let mut n = 0;
                write_atomically(&output, |w| {
                    n = sealer.encrypt_stream(Progress::new(src, len, "encrypting"), w)?;
                    Ok(())
                })?;
                self.printer.done(
                    &format!(
                        "encrypted {n} bytes of {} into {}",
                        input.display(),
                        output.display()
                    ),
                    json!({"Bytes": n, "Output": output.display().to_string()}),
                )
            }
            FileCommand::Decrypt {
                input,
                dest: output,
                context: ctx,
                workers,
            } => {
                let ctx = context(ctx.as_deref())?;
                let mut opts = Options::default();
                if let Some(w) = workers {
                    opts = opts.workers(w);
                }
                let mut src = File::open(&input).map_err(|e| CliError::io(&input, e))?;
                let len = src.metadata().map(|m| m.len()).unwrap_or(0);
                let header = Header::read_from(&mut src)?;
                let opener = block_on(Opener::unwrap(header, self.kms, self.caller, &ctx, &opts))?;
                let mut n = 0;
                write_atomically(&output, |w| {
                    n = opener.decrypt_stream(Progress::new(src, len, "decrypting"), w)?;
                    Ok(())
                })?;
                self.printer.done(
                    &format!(
                        "decrypted {n} bytes of {} into {}",
                        input.display(),
                        output.display()
                    ),
                    json!({"Bytes": n, "Output": output.display().to_string()}),
                )
            }
            FileCommand::Rewrap {
                file,
                key,
                context: ctx,
            } => {
                let ctx = context(ctx.as_deref())?;
                let dest = key.as_deref().map(key_ref).transpose()?;
                let mut f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&file)
                    .map_err(|e| CliError::io(&file, e))?;
                let header = block_on(rewrap_in_place(
                    &mut f,
                    self.kms,
                    self.caller,
                    &ctx,
                    dest.as_ref(),
                ))?;
                f.sync_all().map_err(|e| CliError::io(&file, e))?;
                self.printer.done(
                    &format!(
                        "rewrapped {} ({} header bytes rewritten)",
                        file.display(),
                        header.len()
                    ),
                    json!({"HeaderBytes": header.len(), "File": file.display().to_string()}),
                )
            }
        }
    }
}

/// Bytes of a hex string (either case; surrounding whitespace ignored).
fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    s.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// A signature from a file: Base64 text (what `kmskit sign` writes), else the raw bytes.
fn signature_from_file(path: &Path) -> Result<Vec<u8>, CliError> {
    let bytes = read_input(Some(path), BLOB_TEXT_LIMIT)?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if let Ok(sig) = B64.decode(text.trim()) {
            return Ok(sig);
        }
    }
    Ok(bytes.to_vec())
}

/// Reads a file or standard input, refusing more than `limit - 1` bytes.
fn read_input(path: Option<&Path>, limit: u64) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut buf = Zeroizing::new(Vec::new());
    let (r, name): (Box<dyn Read>, PathBuf) = match path {
        Some(p) => (
            Box::new(File::open(p).map_err(|e| CliError::io(p, e))?),
            p.to_path_buf(),
        ),
        None => (Box::new(std::io::stdin().lock()), PathBuf::from("standard input")),
    };
    r.take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::io(&name, e))?;
    if buf.len() as u64 >= limit {
        return Err(CliError::new(
            "InvalidParameter",
            format!("{}: more than {} bytes", name.display(), limit - 1),
        ));
    }
    Ok(buf)
}

/// Writes `bytes` to a file (atomically) or to standard output.
fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match path {
        Some(p) => write_atomically(p, |f| f.write_all(bytes).map_err(|e| CliError::io(p, e))),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|()| out.flush())
                .map_err(|e| CliError::new("Cli.Io", format!("standard output: {e}")))
        }
    }
}

/// A temporary path next to `out`.
fn temp_for(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.kmskit-tmp-{}", std::process::id()))
}

/// Writes `out` through a temporary file (mode 0600) next to it: renamed into place after `fill`
/// succeeded and the data is on disk; removed on any failure, so a failed command leaves no `out`.
fn write_atomically(
    out: &Path,
    fill: impl FnOnce(&mut File) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let tmp = temp_for(out);
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp).map_err(|e| CliError::io(&tmp, e))?;
        fill(&mut file)?;
        file.sync_all().map_err(|e| CliError::io(&tmp, e))?;
        fs::rename(&tmp, out).map_err(|e| CliError::io(out, e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A reader that advances a progress bar on stderr when stderr is a terminal (silent otherwise).
struct Progress<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Progress<R> {
    fn new(inner: R, len: u64, what: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(len);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(what);
            b
        });
        Self { inner, bar }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
            if n == 0 {
                b.finish_and_clear();
            }
        }
        Ok(n)
    }
}
