//! The decrypting readers over arbitrary bytes must never panic: the whole input as a stream, and the
//! input as the body behind a valid header (so the chunk paths are reached).
#![no_main]

use std::io::{Cursor, Read};
use std::sync::OnceLock;

use kmskit_core::{DataKey, EncryptionContext, SecretBytes};
use kmskit_stream::{DecryptingReader, Decryptor, Options};
use libfuzzer_sys::fuzz_target;

fn key() -> DataKey {
    DataKey::new(SecretBytes::from_slice(&[0x42; 32]))
}

fn opts() -> Options {
    Options::new()
        .chunk_size(4096)
        .map(|o| o.workers(2))
        .unwrap_or_default()
}

/// A valid header (deterministic: fixed salt) for a stream under `key()`.
fn header() -> &'static [u8] {
    static H: OnceLock<Vec<u8>> = OnceLock::new();
    H.get_or_init(|| {
        let o = opts().fixed_salt_for_test_vectors([7; 32]);
        kmskit_stream::Sealer::new(&key(), b"fuzz wrapped key", &EncryptionContext::new(), &o)
            .map(|s| s.header().to_bytes())
            .unwrap_or_default()
    })
}

fn run(stream: &[u8]) {
    let ctx = EncryptionContext::new();
    let o = opts();
    let _ = kmskit_stream::decrypt_to_vec(stream, &key(), &ctx, &o);
    if let Ok(mut d) = Decryptor::new(stream, &key(), &ctx, &o) {
        let mut out = Vec::new();
        let _ = d.read_to_end(&mut out);
    }
    if let Ok(mut r) = DecryptingReader::new(Cursor::new(stream), &key(), &ctx, &o) {
        let len = r.len();
        let _ = r.decrypt_range(len / 2, (len / 4) as usize);
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out);
    }
    if let Ok((h, at)) = kmskit_stream::Header::parse(stream) {
        if let Ok(op) = kmskit_stream::Opener::new(h, &key(), &ctx, &o) {
            let _ = op.decrypt_stream(&stream[at..], std::io::sink());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run(data);
    let mut spliced = header().to_vec();
    spliced.extend_from_slice(data);
    run(&spliced);
});
