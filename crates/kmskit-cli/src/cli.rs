//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
First steps:
  kmskit key create --description \"orders database\"
  kmskit alias create alias/orders KEY_ID
  echo -n 'Hello KMS' | kmskit encrypt --key alias/orders > blob.txt
  kmskit decrypt --in blob.txt
  kmskit file encrypt --key alias/orders report.csv report.csv.kms

Signatures:
  kmskit key create --key-spec EC_P256 --key-usage SIGN/VERIFY
  kmskit key versions KEY_ID
  kmskit sign --key KEY_ID --key-version VERSION_ID --algorithm ECDSA_SHA_256 --message-file doc.pdf > doc.sig
  kmskit verify --key KEY_ID --key-version VERSION_ID --algorithm ECDSA_SHA_256 --message-file doc.pdf --signature-file doc.sig
  kmskit public-key --key KEY_ID --key-version VERSION_ID --out key.pem

Scripts: add --output json (and --fields KeyState,Creator to select fields).";

/// kmskit: keys, aliases, encryption and data keys over a local kmskit keystore.
///
/// The keystore is a directory (default: `keystore` in the platform data directory, or `--keystore`,
/// or `KMSKIT_KEYSTORE`). Its root key comes from `KMSKIT_ROOT_KEY` (Base64 of 32 bytes), a key file
/// (`--root-key-file`, `KMSKIT_ROOT_KEY_FILE`), the data directory's `root.key`, or a passphrase typed
/// on the terminal (`--passphrase`). With none of these, the first run generates `root.key` (mode
/// 0600) in the data directory and says where.
#[derive(Debug, Parser)]
#[command(name = "kmskit", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// A remote KMS instead of the local keystore: a kmskit-server (`kmskit serve`) or Alibaba Cloud KMS
    /// (`https://kms.<region>.aliyuncs.com`). Credentials come from `ALIBABA_CLOUD_ACCESS_KEY_ID`,
    /// `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (and `ALIBABA_CLOUD_SECURITY_TOKEN` for STS).
    #[arg(long, global = true, env = "KMSKIT_ENDPOINT", value_name = "URL")]
    pub(crate) endpoint: Option<String>,

    /// The keystore directory (created on first use).
    #[arg(long, global = true, env = "KMSKIT_KEYSTORE", value_name = "DIR")]
    pub(crate) keystore: Option<PathBuf>,

    /// A file holding the 32-byte root key (raw or Base64).
    #[arg(long, global = true, env = "KMSKIT_ROOT_KEY_FILE", value_name = "FILE")]
    pub(crate) root_key_file: Option<PathBuf>,

    /// Ask for the keystore passphrase on the terminal.
    #[arg(long, global = true)]
    pub(crate) passphrase: bool,

    /// Output format: `table` for people, `json` for scripts. Default: table on a terminal, json
    /// otherwise.
    #[arg(long, short = 'o', global = true, value_enum)]
    pub(crate) output: Option<OutputFormat>,

    /// Only these fields of each object, comma separated (DescribeKey names, e.g. KeyState,Creator).
    #[arg(long, global = true, value_delimiter = ',', value_name = "NAMES")]
    pub(crate) fields: Vec<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts (the API's field names).
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, inspect and change keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Name keys with aliases (`alias/<name>`).
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Encrypt up to 6 KiB under a key; prints the ciphertext blob (Base64).
    ///
    /// Example: echo -n 'Hello KMS' | kmskit encrypt --key alias/orders > blob.txt
    Encrypt(EncryptArgs),
    /// Decrypt a ciphertext blob; the key comes from the blob.
    ///
    /// Example: kmskit decrypt --in blob.txt
    Decrypt(DecryptArgs),
    /// Data keys for envelope encryption.
    #[command(subcommand)]
    DataKey(DataKeyCommand),
    /// Sign a message or a digest with a version of a SIGN/VERIFY key (AsymmetricSign); prints the
    /// signature (Base64).
    ///
    /// With --message-file the digest is computed here: SHA-256, or for SM2DSA the GB/T 32918 digest
    /// SM3(Z(A) ‖ M) with the default signer id 1234567812345678 (Z(A) comes from the version's public
    /// key). The signature is DER for ECDSA_SHA_256 and SM2DSA, raw for the RSA algorithms.
    ///
    /// Example: kmskit sign --key alias/signer --key-version VERSION_ID --algorithm ECDSA_SHA_256 --message-file doc.pdf > doc.sig
    Sign(SignArgs),
    /// Verify a signature over a message or a digest (AsymmetricVerify); prints the result and exits
    /// with status 1 when the signature is not valid.
    ///
    /// Example: kmskit verify --key alias/signer --key-version VERSION_ID --algorithm ECDSA_SHA_256 --message-file doc.pdf --signature-file doc.sig
    Verify(VerifyArgs),
    /// Print (or write) the public key of a version of an asymmetric key, as PEM (GetPublicKey).
    ///
    /// Example: kmskit public-key --key alias/signer --key-version VERSION_ID --out signer.pem
    PublicKey(PublicKeyArgs),
    /// Encrypt files of any size (the kmskit-stream format: chunked, authenticated, parallel).
    #[command(subcommand)]
    File(FileCommand),
    /// The keystore's audit trail: every call, hash-chained (reading it needs no root key).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Calls per key and action and key-months over a period, from the audit trail, with the estimated
    /// cost at the model service's prices (¥0.1 per 10,000 calls, ¥15 per key-month).
    ///
    /// Example: kmskit usage --since 30d
    Usage(UsageArgs),
    /// Serve this keystore over the Alibaba Cloud KMS API (kmskit-server), until Ctrl-C or SIGTERM.
    ///
    /// The official Alibaba Cloud SDKs work against it by changing only the endpoint. With --dev, one
    /// all-powerful access key (KMSKIT_DEV_ACCESS_KEY_ID / KMSKIT_DEV_ACCESS_KEY_SECRET, or generated
    /// and printed), no TLS: NOT FOR PRODUCTION. With --config, access keys, TLS, rate limits and the
    /// rest come from a kmskit-server TOML file (without a `[keystore]` table: the keystore is this
    /// tool's).
    ///
    /// Example: kmskit serve --dev --bind 127.0.0.1:8080
    ///
    /// Example: kmskit --keystore /srv/kms serve --config /etc/kmskit/server.toml --port-file /run/kms.port
    Serve(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Find events by action, time, key and principal.
    ///
    /// Example: kmskit audit lookup --action Encrypt,Decrypt --since 1d
    Lookup {
        /// Action names, comma separated (any of); all actions when absent.
        #[arg(long = "action", value_delimiter = ',', value_name = "ACTIONS")]
        actions: Vec<String>,
        /// Only events this recent: `<number><w|d|h|m|s>`, e.g. `1d`.
        #[arg(long, value_name = "AGE")]
        since: Option<String>,
        /// Only events on this key id.
        #[arg(long, value_name = "KEY_ID")]
        key: Option<String>,
        /// Only events by this principal.
        #[arg(long)]
        principal: Option<String>,
        /// At most this many events (the newest).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Check the hash chain: every event present, in order and unedited since it was written; names
    /// the first bad event (exit status 1).
    ///
    /// Example: kmskit audit verify
    Verify,
}

/// Arguments of `kmskit usage`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// The period: `<number><w|d|h|m|s>` back from now.
    #[arg(long, default_value = "30d", value_name = "AGE")]
    pub(crate) since: String,
    /// Yuan per 10,000 calls.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) price_per_10k_calls: f64,
    /// Yuan per key per month (30 days).
    #[arg(long, default_value_t = 15.0)]
    pub(crate) price_per_key_month: f64,
}

/// `kmskit serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A kmskit-server TOML configuration (access keys, TLS, rate limit, ...; no `[keystore]`).
    #[arg(
        long,
        short,
        required_unless_present = "dev",
        conflicts_with = "dev",
        value_name = "FILE"
    )]
    pub(crate) config: Option<PathBuf>,
    /// Development mode: one all-powerful access key, no TLS. NOT FOR PRODUCTION.
    #[arg(long)]
    pub(crate) dev: bool,
    /// Listen address (overrides the configuration; default 127.0.0.1:8080; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<std::net::SocketAddr>,
    /// Write the bound port to this file once the server accepts connections.
    #[arg(long, value_name = "FILE")]
    pub(crate) port_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a key; prints its metadata.
    ///
    /// Example: kmskit key create --description "orders database" --output json
    Create {
        /// What the key is for.
        #[arg(long, default_value = "")]
        description: String,
        /// The key spec: Aliyun_AES_256, Aliyun_SM4, RSA_2048, RSA_3072, EC_P256, EC_P256K or EC_SM2.
        #[arg(long, default_value = "Aliyun_AES_256")]
        key_spec: String,
        /// The key usage: ENCRYPT/DECRYPT or SIGN/VERIFY (default: the spec's, SIGN/VERIFY for EC_P256
        /// and EC_P256K, ENCRYPT/DECRYPT otherwise). One usage per key.
        #[arg(long, value_name = "USAGE")]
        key_usage: Option<String>,
        /// A tag, as KEY=VALUE (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Print a key's metadata.
    ///
    /// Example: kmskit key describe alias/orders --fields KeyState,Creator,DeleteDate
    Describe {
        /// Key id, alias (alias/NAME) or ARN.
        key: String,
    },
    /// List every key with its metadata.
    ///
    /// Example: kmskit key list --fields KeyId,KeyState,Description
    List,
    /// Enable a disabled key.
    ///
    /// Example: kmskit key enable alias/orders
    Enable {
        /// Key id, alias or ARN.
        key: String,
    },
    /// Disable a key: it refuses cryptography until enabled again.
    ///
    /// Example: kmskit key disable alias/orders
    Disable {
        /// Key id, alias or ARN.
        key: String,
    },
    /// Schedule a key's deletion after a waiting period of 7 to 366 days.
    ///
    /// Example: kmskit key schedule-deletion alias/orders --pending-window-days 30
    ScheduleDeletion {
        /// Key id, alias or ARN.
        key: String,
        /// Days until the key is deleted (7–366).
        #[arg(long)]
        pending_window_days: u32,
    },
    /// Cancel a scheduled deletion; the key becomes Enabled.
    ///
    /// Example: kmskit key cancel-deletion alias/orders
    CancelDeletion {
        /// Key id, alias or ARN.
        key: String,
    },
    /// List a key's versions (ListKeyVersions): the asymmetric actions name a version.
    ///
    /// Example: kmskit key versions alias/signer
    Versions {
        /// Key id, alias or ARN.
        key: String,
    },
    /// Rotate a key now (CreateKeyVersion): a new primary version encrypts from now on; older versions
    /// still decrypt. Prints the new version.
    ///
    /// Example: kmskit key rotate alias/orders
    Rotate {
        /// Key id, alias or ARN.
        key: String,
    },
    /// Turn automatic rotation on (`--interval 30d`, 7–365 days) or off (`--disable`).
    ///
    /// Example: kmskit key set-rotation alias/orders --interval 90d
    SetRotation {
        /// Key id, alias or ARN.
        key: String,
        /// The rotation interval: `<number><d|h|m|s>`, 7 to 365 days (`7d` == `604800s`).
        #[arg(long, required_unless_present = "disable", conflicts_with = "disable")]
        interval: Option<String>,
        /// Turn automatic rotation off.
        #[arg(long)]
        disable: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AliasCommand {
    /// Point a new alias at a key.
    ///
    /// Example: kmskit alias create alias/orders KEY_ID
    Create {
        /// The alias, `alias/<name>`.
        alias: String,
        /// Key id or ARN.
        key: String,
    },
    /// Point an existing alias at another key.
    ///
    /// Example: kmskit alias update alias/orders OTHER_KEY_ID
    Update {
        /// The alias.
        alias: String,
        /// Key id or ARN.
        key: String,
    },
    /// Delete an alias (the key stays).
    ///
    /// Example: kmskit alias delete alias/orders
    Delete {
        /// The alias.
        alias: String,
    },
    /// List aliases, of every key or of one.
    ///
    /// Example: kmskit alias list --key KEY_ID
    List {
        /// Only the aliases of this key.
        #[arg(long)]
        key: Option<String>,
    },
}

/// Where bytes come from and go to, and the encryption context.
#[derive(Debug, Args)]
pub(crate) struct Io {
    /// Read from FILE instead of standard input.
    #[arg(long = "in", value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(long = "out", id = "out_file", value_name = "FILE")]
    pub(crate) out_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct EncryptArgs {
    /// Key id, alias or ARN.
    #[arg(long)]
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) io: Io,
    /// The encryption context, a JSON object of strings (the same one must be given to decrypt).
    #[arg(long, value_name = "JSON")]
    pub(crate) context: Option<String>,
    /// Write the blob as raw bytes instead of Base64 text.
    #[arg(long)]
    pub(crate) raw: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    pub(crate) io: Io,
    /// The encryption context given at encryption.
    #[arg(long, value_name = "JSON")]
    pub(crate) context: Option<String>,
    /// The input blob is raw bytes, not Base64 text.
    #[arg(long)]
    pub(crate) raw: bool,
}

/// The key version an asymmetric command uses.
#[derive(Debug, Args)]
pub(crate) struct KeyVersionArgs {
    /// Key id, alias or ARN of an asymmetric key.
    #[arg(long)]
    pub(crate) key: String,
    /// The key version (asymmetric keys have no primary version: see `kmskit key versions`).
    #[arg(long, value_name = "VERSION_ID")]
    pub(crate) key_version: String,
}

/// What is signed: a digest given in hex, or a message file hashed here.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SignedData {
    /// The digest, in hex (32 bytes: SHA-256, or SM3(Z(A) ‖ M) for SM2DSA).
    #[arg(long, value_name = "HEX")]
    pub(crate) digest_hex: Option<String>,
    /// The message; its digest is computed here (SHA-256, or SM3(Z(A) ‖ M) for SM2DSA).
    #[arg(long, value_name = "FILE")]
    pub(crate) message_file: Option<PathBuf>,
}

/// `kmskit sign`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) key: KeyVersionArgs,
    /// RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256 or SM2DSA.
    #[arg(long)]
    pub(crate) algorithm: String,
    #[command(flatten)]
    pub(crate) data: SignedData,
    /// Write the signature (Base64 text) to FILE (atomically) instead of standard output.
    #[arg(long = "out", value_name = "FILE")]
    pub(crate) out_file: Option<PathBuf>,
}

/// `kmskit verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) key: KeyVersionArgs,
    /// RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256 or SM2DSA.
    #[arg(long)]
    pub(crate) algorithm: String,
    #[command(flatten)]
    pub(crate) data: SignedData,
    #[command(flatten)]
    pub(crate) signature: SignatureSource,
}

/// Where the signature comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SignatureSource {
    /// A file with the signature: Base64 text (as `kmskit sign` writes it) or the raw bytes.
    #[arg(long, value_name = "FILE")]
    pub(crate) signature_file: Option<PathBuf>,
    /// The signature, Base64.
    #[arg(long, value_name = "BASE64")]
    pub(crate) signature_b64: Option<String>,
}

/// `kmskit public-key`.
#[derive(Debug, Args)]
pub(crate) struct PublicKeyArgs {
    #[command(flatten)]
    pub(crate) key: KeyVersionArgs,
    /// Write the PEM to FILE (atomically) instead of standard output. (`-o` is `--output`, the format.)
    #[arg(long = "out", value_name = "FILE")]
    pub(crate) out_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataKeyCommand {
    /// Generate a data key: its plaintext (Base64) and the same key encrypted under KEY.
    ///
    /// Example: kmskit data-key generate --key alias/orders --output json
    Generate {
        /// Key id, alias or ARN.
        #[arg(long)]
        key: String,
        /// AES_256 or AES_128.
        #[arg(long, default_value = "AES_256", conflicts_with = "number_of_bytes")]
        key_spec: String,
        /// A length in bytes (1–1024) instead of a spec.
        #[arg(long)]
        number_of_bytes: Option<u32>,
        /// The encryption context, a JSON object of strings.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
        /// Only the encrypted data key (GenerateDataKeyWithoutPlaintext).
        #[arg(long)]
        without_plaintext: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FileCommand {
    /// Encrypt IN into OUT under a fresh data key wrapped by KEY. OUT appears only on success.
    ///
    /// Example: kmskit file encrypt --key alias/orders report.csv report.csv.kms
    Encrypt {
        /// Key id, alias or ARN.
        #[arg(long)]
        key: String,
        /// The file to encrypt.
        input: PathBuf,
        /// The encrypted file to write.
        #[arg(value_name = "OUT")]
        dest: PathBuf,
        /// The encryption context, a JSON object of strings.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
        /// Chunk size in KiB (a power of two, 4–16384).
        #[arg(long, default_value_t = 1024, value_name = "KIB")]
        chunk_kib: usize,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Decrypt IN into OUT; the key comes from IN's header. OUT appears only on success.
    ///
    /// Example: kmskit file decrypt report.csv.kms report.csv
    Decrypt {
        /// The encrypted file.
        input: PathBuf,
        /// The plaintext file to write.
        #[arg(value_name = "OUT")]
        dest: PathBuf,
        /// The encryption context given at encryption.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Re-wrap FILE's data key under the key's current primary version, or under --key; rewrites only
    /// the header.
    ///
    /// Example: kmskit file rewrap report.csv.kms --key alias/archive
    Rewrap {
        /// The encrypted file, changed in place.
        file: PathBuf,
        /// Move the data key to this key instead.
        #[arg(long)]
        key: Option<String>,
        /// The encryption context given at encryption.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        // Catches clashing argument ids, bad defaults and the like at test time, not in a user's hands.
        super::Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_help_with_an_example() {
        let mut root = super::Cli::command();
        root.build();
        let mut missing = Vec::new();
        for group in root.get_subcommands().filter(|g| g.get_name() != "help") {
            for cmd in group.get_subcommands().filter(|c| c.get_name() != "help") {
                let help = cmd.get_long_about().map(ToString::to_string).unwrap_or_default();
                if !help.contains("Example: kmskit ") {
                    missing.push(format!("{} {}", group.get_name(), cmd.get_name()));
                }
            }
            if !group.has_subcommands() {
                let help = group
                    .get_long_about()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if !help.contains("Example: ") {
                    missing.push(group.get_name().to_owned());
                }
            }
        }
        assert!(missing.is_empty(), "no example in --help: {missing:?}");
    }
}
