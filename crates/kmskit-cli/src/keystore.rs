//! Finding the keystore and its root key with no set-up.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use kmskit::audit::{AuditLog, AuditSink, Durability, FileSink};
use kmskit::governance::Governance;
use kmskit::{FileKms, FileKmsExt, FileStore, KmsConfig, RootKey};

use crate::cli::Cli;
use crate::error::CliError;

/// The environment variable that moves the data directory (the default keystore and `root.key`).
pub(crate) const DATA_DIR_ENV: &str = "KMSKIT_DATA_DIR";
/// The root key file's name in the data directory.
pub(crate) const ROOT_KEY_FILE: &str = "root.key";

/// The platform data directory (`~/.local/share/kmskit` on Linux), or `KMSKIT_DATA_DIR`.
pub(crate) fn data_dir() -> Result<PathBuf, CliError> {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "kmskit")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or_else(|| {
            CliError::new(
                "Cli.NoDataDir",
                format!("no home directory to keep the keystore in: pass --keystore or set {DATA_DIR_ENV}"),
            )
        })
}

/// The audit trail's directory inside a keystore directory (the file store ignores it).
pub(crate) const AUDIT_DIR: &str = "audit";

/// Opens (creating on first use) the keystore the command line names, with its audit trail on.
pub(crate) fn open(cli: &Cli) -> Result<FileKms, CliError> {
    Ok(open_audited(cli)?.0)
}

/// Opens the keystore the command line names with every call audited (hash-chained JSON lines in
/// `<keystore>/audit`, each event durable before the call returns); returns the audit log too.
pub(crate) fn open_audited(cli: &Cli) -> Result<(FileKms, Arc<AuditLog>), CliError> {
    let data = data_dir()?;
    let keystore = keystore_dir(cli)?;
    let root = root_key(cli, &data, &keystore)?;
    let store = FileStore::open(&keystore, &root)?;
    let log = Arc::new(audit_log(&keystore)?);
    let config = KmsConfig::new().governance(Arc::new(Governance::new().audit(log.clone())));
    Ok((FileKms::with_store_config(store, config)?, log))
}

/// The audit log of the keystore in `keystore` (opened without the key store, so reading the trail
/// needs no root key).
pub(crate) fn audit_log(keystore: &Path) -> Result<AuditLog, CliError> {
    let sink: Arc<dyn AuditSink> = Arc::new(FileSink::open(keystore.join(AUDIT_DIR))?);
    Ok(AuditLog::new(vec![sink])?.durability(Durability::Sync))
}

/// The keystore directory the command line names.
pub(crate) fn keystore_dir(cli: &Cli) -> Result<PathBuf, CliError> {
    match &cli.keystore {
        Some(k) => Ok(k.clone()),
        None => Ok(data_dir()?.join("keystore")),
    }
}

/// A keystore directory that holds nothing yet (a new keystore will be created in it).
fn is_new(keystore: &Path) -> bool {
    match std::fs::read_dir(keystore) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    }
}

/// The root key, from the first of: `KMSKIT_ROOT_KEY`, `--root-key-file`, `--passphrase`, the data
/// directory's `root.key`; else, for a new keystore, a generated `root.key`; else a passphrase prompt on
/// a terminal.
fn root_key(cli: &Cli, data: &Path, keystore: &Path) -> Result<RootKey, CliError> {
    if std::env::var_os(kmskit::ROOT_KEY_ENV).is_some() {
        return Ok(RootKey::from_env()?);
    }
    if let Some(f) = &cli.root_key_file {
        return Ok(RootKey::from_key_file(f)?);
    }
    if cli.passphrase {
        return prompt(keystore);
    }
    let default = data.join(ROOT_KEY_FILE);
    if default.exists() {
        return Ok(RootKey::from_key_file(&default)?);
    }
    if is_new(keystore) {
        return generate(&default);
    }
    if std::io::stdin().is_terminal() {
        return prompt(keystore);
    }
    Err(CliError::new(
        "Cli.NoRootKey",
        format!(
            "no root key for the keystore {}: set {} (Base64 of 32 bytes), pass --root-key-file, \
             or run on a terminal with --passphrase",
            keystore.display(),
            kmskit::ROOT_KEY_ENV
        ),
    ))
}

fn prompt(keystore: &Path) -> Result<RootKey, CliError> {
    let p = rpassword::prompt_password(format!("passphrase for {}: ", keystore.display())).map_err(|e| {
        CliError::new(
            "Cli.NoTerminal",
            format!("cannot read a passphrase from the terminal: {e}"),
        )
    })?;
    Ok(RootKey::passphrase(p))
}

/// Generates a root key and writes it to `path` (Base64, mode 0600, never over an existing file).
fn generate(path: &Path) -> Result<RootKey, CliError> {
    let key = RootKey::generate();
    let text = key
        .expose_base64()
        .ok_or_else(|| CliError::new("Cli.Internal", "a generated root key has no Base64 form"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| CliError::io(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::io(path, e))?;
    eprintln!(
        "kmskit: generated a new root key in {} (mode 0600). Back it up: without it this keystore cannot be \
         opened.",
        path.display()
    );
    Ok(key)
}
