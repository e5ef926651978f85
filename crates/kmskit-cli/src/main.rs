//! `kmskit`: the command-line tool for kmskit keystores.
//!
//! Keys, aliases, Encrypt/Decrypt, data keys and file encryption over a local file keystore, with no
//! set-up: the first run creates the keystore in the platform data directory and a root key file
//! beside it, and says where.
//!
//! ```text
//! $ kmskit key create --description "orders database" --output json
//! { "KeyId": "3da2f2a5-…", "KeyState": "Enabled", "Description": "orders database", … }
//! $ kmskit alias create alias/orders 3da2f2a5-…
//! $ echo -n 'Hello KMS' | kmskit encrypt --key alias/orders > blob.txt
//! $ kmskit decrypt --in blob.txt
//! Hello KMS
//! $ kmskit file encrypt --key alias/orders big.csv big.csv.kms && kmskit file decrypt big.csv.kms big.csv
//! ```
//!
//! Scripting contract (pinned by the tests): `--output json` prints DescribeKey's field names
//! (`KeyId`, `KeyState`, `Creator`, …); `--fields A,B` selects fields; errors go to stderr as
//! `error: <Code>: <message>` with exit status 1 (usage errors: 2); a failed `file encrypt|decrypt`
//! leaves no output file.
#![forbid(unsafe_code)]

mod audit;
mod cli;
mod error;
mod keystore;
mod output;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit)
        }
    }
}
