//! Keys that never leave a hardware security module: `Pkcs11Kms` on a SoftHSM2 token.
//!
//! The key is generated inside the token (`CKA_SENSITIVE`, not extractable) and Encrypt/Decrypt run
//! `CKM_AES_GCM` in the token; key and alias records are token data objects, so a second run finds the
//! key the first one made. An EC_P256 key pair made in the token signs a digest with `CKM_ECDSA`, and
//! the signature verifies offline with the public key GetPublicKey returns.
//!
//! Set up (Debian/Ubuntu; `scripts/test.sh` does the same in a temporary directory):
//!
//! ```sh
//! sudo apt-get install softhsm2                       # the module: /usr/lib/softhsm/libsofthsm2.so
//! mkdir -p ~/kmskit-hsm/tokens                         # a token directory of your own
//! echo "directories.tokendir = $HOME/kmskit-hsm/tokens" > ~/kmskit-hsm/softhsm2.conf
//! export SOFTHSM2_CONF=~/kmskit-hsm/softhsm2.conf
//! softhsm2-util --init-token --free --label kmskit-example --so-pin 5678 --pin 1234
//! export KMSKIT_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so
//! export KMSKIT_PKCS11_TOKEN=kmskit-example KMSKIT_PKCS11_PIN=1234
//! cargo run --example pkcs11_softhsm                   # creates a key, encrypts, decrypts
//! cargo run --example pkcs11_softhsm                   # finds the key the first run made
//! ```
//!
//! With a wrong `KMSKIT_PKCS11_PIN` it exits with status 1 and `error: Forbidden.NoPermission: …`.
//! Any other PKCS#11 module works the same way: set the module path, the token label and the PIN.

use std::process::ExitCode;

use kmskit::crypto::asym;
use kmskit::key::{AsymmetricAlgorithm, KeySpec};
use kmskit::{
    AliasName, Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, PageRequest, Pkcs11Config,
    Pkcs11Kms, Pkcs11KmsExt,
};

const ALIAS: &str = "alias/pkcs11-example";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn run() -> kmskit::Result<()> {
    let config = Pkcs11Config::from_env()?;
    let kms = Pkcs11Kms::open_pkcs11(&config)?;
    println!(
        "opened token {:?} through {}",
        config.token_label(),
        config.module().display()
    );
    for problem in kms.load_problems() {
        println!("  load problem: {problem}");
    }
    let caller = Caller::local();
    let alias = AliasName::new(ALIAS)?;
    let ctx = EncryptionContext::from_pairs([("example", "pkcs11_softhsm")])?;
    kmskit::block_on(async {
        let key = match kms.describe_key(&caller, &KeyRef::Alias(alias.clone())).await {
            Ok(m) => {
                println!("found {ALIAS} = {} from a previous run", m.key_id);
                m
            }
            Err(e) if e.code() == kmskit::ErrorCode::AliasNotFound => {
                let m = kms
                    .create_key(&caller, CreateKey::new("pkcs11_softhsm example"))
                    .await?;
                kms.create_alias(&caller, &alias, &KeyRef::Id(m.key_id.clone()))
                    .await?;
                println!("created key {} in the token as {ALIAS}", m.key_id);
                m
            }
            Err(e) => return Err(e),
        };
        println!(
            "protection level: {} (material generated in the token, sensitive, never extractable)",
            key.protection_level
        );
        let enc = kms
            .encrypt(&caller, &KeyRef::Alias(alias.clone()), b"Hello HSM", &ctx)
            .await?;
        println!("ciphertext blob: {}", enc.ciphertext_blob.to_base64());
        let dec = kms.decrypt(&caller, &enc.ciphertext_blob, &ctx).await?;
        println!("decrypted: {}", String::from_utf8_lossy(&dec.plaintext));

        // A signing key pair in the token: the private key signs there, the public key goes anywhere.
        let signer = kms
            .create_key(
                &caller,
                CreateKey::new("pkcs11_softhsm signing").key_spec(KeySpec::EcP256),
            )
            .await?;
        let k = KeyRef::Id(signer.key_id.clone());
        let versions = kms.list_key_versions(&caller, &k, PageRequest::default()).await?;
        let v = versions.items[0].key_version_id.clone();
        let digest = [0x24u8; 32]; // the SHA-256 of what is signed
        let alg = AsymmetricAlgorithm::EcdsaSha256;
        let sig = kms.asymmetric_sign(&caller, &k, &v, alg, &digest).await?;
        let spki = asym::pem_to_spki(&kms.get_public_key(&caller, &k, &v).await?.pem)?;
        let offline = asym::verify_digest(KeySpec::EcP256, &spki, alg, &digest, &sig.signature)?;
        println!("EC_P256 signature made in the token verifies offline: {offline}");
        // Nothing of this run's signing key stays behind in the token once its window ends.
        kms.schedule_key_deletion(&caller, &k, 7).await?;
        Ok(())
    })
}
