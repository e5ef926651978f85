//! A keystore that outlives the process: `file_keystore DIR` opens (or creates) the file keystore in
//! `DIR` with the root key from `KMSKIT_ROOT_KEY`, decrypts what the previous run left there, then
//! creates a key, encrypts a message under it and leaves the ciphertext for the next run.
//!
//! ```text
//! export KMSKIT_ROOT_KEY=$(head -c 32 /dev/urandom | base64)
//! cargo run --example file_keystore -- /tmp/kmskit-demo     # first run: creates, encrypts
//! cargo run --example file_keystore -- /tmp/kmskit-demo     # second run: decrypts the first run's text
//! KMSKIT_ROOT_KEY=$(head -c 32 /dev/urandom | base64) \
//!     cargo run --example file_keystore -- /tmp/kmskit-demo # wrong key: Forbidden.NoPermission, exit 1
//! ```
//!
//! Any failure prints `error <code>: <message>` and exits with status 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kmskit::{
    Caller, CiphertextBlob, CreateKey, EncryptionContext, FileKms, FileKmsExt, KeyProvider, KeyRef, RootKey,
};

/// Where the example leaves its ciphertext for the next run (beside the keystore's own files, which it
/// ignores).
const NOTE: &str = "file_keystore_example.blob";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: file_keystore DIR   (root key: KMSKIT_ROOT_KEY, the Base64 of 32 bytes)");
        return ExitCode::from(2);
    };
    match kmskit::block_on(run(&PathBuf::from(dir))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error {}: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

async fn run(dir: &Path) -> Result<(), kmskit::Error> {
    let root = RootKey::from_env()?;
    let kms = FileKms::open_dir(dir, &root)?;
    let report = kms.store().open_report();
    println!(
        "opened keystore {} ({}; {} keys, {} problems)",
        dir.display(),
        if report.created { "created now" } else { "existing" },
        report.keys,
        report.problems
    );
    for p in kms.load_problems() {
        println!("  problem: {p}");
    }
    let caller = Caller::local();
    let ctx = EncryptionContext::from_pairs([("example", "file_keystore")])?;
    let note = dir.join(NOTE);

    // What the previous run wrote.
    match std::fs::read_to_string(&note) {
        Ok(text) => {
            let blob = CiphertextBlob::from_base64(text.trim())?;
            let dec = kms.decrypt(&caller, &blob, &ctx).await?;
            println!(
                "decrypted the previous run's ciphertext with key {}: {:?}",
                dec.key_id,
                String::from_utf8_lossy(&dec.plaintext)
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no ciphertext from a previous run yet: run me again to see it decrypted");
        }
        Err(e) => return Err(kmskit::Error::io(format!("cannot read {}", note.display()), e)),
    }

    // This run's key and message.
    let key = kms
        .create_key(&caller, CreateKey::new("file_keystore example"))
        .await?;
    let message = format!(
        "written by pid {} at {}",
        std::process::id(),
        kmskit::Timestamp::from_system(std::time::SystemTime::now())
    );
    let enc = kms
        .encrypt(&caller, &KeyRef::Id(key.key_id.clone()), message.as_bytes(), &ctx)
        .await?;
    let tmp = dir.join(format!("{NOTE}.tmp"));
    std::fs::write(&tmp, enc.ciphertext_blob.to_base64())
        .and_then(|()| std::fs::rename(&tmp, &note))
        .map_err(|e| kmskit::Error::io(format!("cannot write {}", note.display()), e))?;
    println!(
        "created key {} and encrypted {message:?}; the next run decrypts it",
        key.key_id
    );
    Ok(())
}
