//! Encrypts and decrypts files with kmskit-stream, keeping the key in a `FileKms` keystore directory so
//! a later process can decrypt.
//!
//! ```text
//! export KMSKIT_ROOT_KEY=$(head -c 32 /dev/urandom | base64)
//! cargo run --release --example file_encryption -- --keystore ./keys encrypt report.csv report.csv.kms
//! cargo run --release --example file_encryption -- --keystore ./keys decrypt report.csv.kms report.csv
//! cargo run --release --example file_encryption -- --keystore ./keys rewrap report.csv.kms
//! ```
//!
//! The key is created on first use under the alias `alias/file-encryption`. Encryption and decryption
//! write to a temporary file next to the output and rename it into place only on success, so a failure
//! leaves no output file behind; any failure prints one line and exits with status 1. `rewrap` re-wraps
//! the file's data key under the key's current primary version, rewriting only the header.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kmskit::stream::{Header, Opener, Options, Sealer, rewrap_in_place};
use kmskit::{
    AliasName, Caller, CreateKey, EncryptionContext, ErrorCode, FileKms, FileKmsExt, KeyProvider, KeyRef,
    RootKey,
};

const ALIAS: &str = "alias/file-encryption";

type BoxError = Box<dyn std::error::Error>;

fn usage() -> String {
    "usage: file_encryption --keystore DIR (encrypt IN OUT | decrypt IN OUT | rewrap FILE)".to_owned()
}

fn context() -> Result<EncryptionContext, BoxError> {
    Ok(EncryptionContext::from_pairs([("app", "file_encryption")])?)
}

/// The key behind the alias, created on first use.
fn ensure_key(kms: &FileKms, caller: &Caller) -> Result<KeyRef, BoxError> {
    let alias = AliasName::new(ALIAS)?;
    let by_alias = KeyRef::Alias(alias.clone());
    match kmskit::block_on(kms.describe_key(caller, &by_alias)) {
        Ok(meta) => Ok(KeyRef::Id(meta.key_id)),
        Err(e) if matches!(e.code(), ErrorCode::AliasNotFound | ErrorCode::KeyNotFound) => {
            let meta = kmskit::block_on(kms.create_key(caller, CreateKey::new("file_encryption example")))?;
            let id = KeyRef::Id(meta.key_id);
            kmskit::block_on(kms.create_alias(caller, &alias, &id))?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

/// A temporary path next to `out`.
fn temp_for(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `out` through a temporary file: `fill` writes it; on success it is synced and renamed into
/// place; on failure it is removed.
fn write_atomically(
    out: &Path,
    fill: impl FnOnce(&mut File) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let tmp = temp_for(out);
    let result = (|| {
        // The stream paths write whole chunks, so no BufWriter is needed.
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        fill(&mut file)?;
        file.sync_all()?;
        fs::rename(&tmp, out)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn run(args: &[String]) -> Result<String, BoxError> {
    let (keystore, rest) = match args {
        [flag, dir, rest @ ..] if flag == "--keystore" => (PathBuf::from(dir), rest),
        _ => return Err(usage().into()),
    };
    let root = RootKey::from_env()?;
    let kms = FileKms::open_dir(&keystore, &root)?;
    let caller = Caller::local();
    let ctx = context()?;
    // 1 MiB chunks: fewer system calls for large files (the library default is 64 KiB).
    let opts = Options::default().chunk_size(1 << 20)?;
    match rest {
        [cmd, input, output] if cmd == "encrypt" => {
            let key = ensure_key(&kms, &caller)?;
            let sealer = kmskit::block_on(Sealer::generate(&kms, &caller, &key, &ctx, &opts))?;
            let src = File::open(input)?;
            let mut n = 0;
            write_atomically(Path::new(output), |w| {
                n = sealer.encrypt_stream(src, w)?;
                Ok(())
            })?;
            Ok(format!("encrypted {n} bytes into {output}"))
        }
        [cmd, input, output] if cmd == "decrypt" => {
            let mut src = File::open(input)?;
            let header = Header::read_from(&mut src)?;
            let opener = kmskit::block_on(Opener::unwrap(header, &kms, &caller, &ctx, &opts))?;
            let mut n = 0;
            write_atomically(Path::new(output), |w| {
                n = opener.decrypt_stream(src, w)?;
                Ok(())
            })?;
            Ok(format!("decrypted {n} bytes into {output}"))
        }
        [cmd, file] if cmd == "rewrap" => {
            let mut f = OpenOptions::new().read(true).write(true).open(file)?;
            let header = kmskit::block_on(rewrap_in_place(&mut f, &kms, &caller, &ctx, None))?;
            f.sync_all()?;
            Ok(format!(
                "rewrapped {file} (header {} bytes rewritten)",
                header.len()
            ))
        }
        _ => Err(usage().into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let line = e.to_string().replace('\n', " ");
            eprintln!("file_encryption: error: {line}");
            ExitCode::FAILURE
        }
    }
}
