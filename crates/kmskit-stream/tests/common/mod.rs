//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{Cursor, Read, Write};

use kmskit_core::crypto::{AeadEngine, Algorithm};
use kmskit_core::{DataKey, EncryptionContext, SecretBytes};
use kmskit_stream::{DecryptingReader, Decryptor, Encryptor, Options, StreamError};

pub const C: usize = 4096;
pub const WRAPPED: &[u8] = b"a wrapped data key blob from some KeyProvider";

pub fn key(b: u8) -> DataKey {
    DataKey::new(SecretBytes::from_slice(&[b; 32]))
}

pub fn ctx() -> EncryptionContext {
    EncryptionContext::from_pairs([("purpose", "test")]).unwrap()
}

pub fn opts() -> Options {
    Options::new().chunk_size(C).unwrap().workers(1)
}

pub fn fixed(opts: Options) -> Options {
    opts.fixed_salt_for_test_vectors([0x5a; 32])
}

pub fn engine_opts(e: &'static dyn AeadEngine, alg: Algorithm) -> Options {
    opts().engine(e).algorithm(alg)
}

pub fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// Encrypts with the streaming Encryptor, writing in pieces of `split` bytes.
pub fn encrypt_stream(pt: &[u8], o: &Options, split: usize) -> Vec<u8> {
    let mut enc = Encryptor::new(Vec::new(), &key(1), WRAPPED, &ctx(), o).unwrap();
    for piece in pt.chunks(split.max(1)) {
        enc.write_all(piece).unwrap();
    }
    enc.finish().unwrap()
}

pub fn decrypt_stream(ct: &[u8], o: &Options) -> Result<Vec<u8>, StreamError> {
    let mut d = Decryptor::new(ct, &key(1), &ctx(), o)?;
    let mut out = Vec::new();
    d.read_to_end(&mut out).map_err(StreamError::from_io)?;
    Ok(out)
}

pub fn decrypt_seek(ct: &[u8], o: &Options) -> Result<Vec<u8>, StreamError> {
    let mut r = DecryptingReader::new(Cursor::new(ct), &key(1), &ctx(), o)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(StreamError::from_io)?;
    Ok(out)
}

pub fn decrypt_buf(ct: &[u8], o: &Options) -> Result<Vec<u8>, StreamError> {
    kmskit_stream::decrypt_to_vec(ct, &key(1), &ctx(), o)
}

pub fn decrypt_par(ct: &[u8], o: &Options) -> Result<Vec<u8>, StreamError> {
    let (h, at) = kmskit_stream::Header::parse(ct)?;
    let op = kmskit_stream::Opener::new(h, &key(1), &ctx(), o)?;
    let mut out = Vec::new();
    op.decrypt_stream(&ct[at..], &mut out)?;
    Ok(out)
}

/// Every decryption path; all must agree.
pub fn decrypt_all(ct: &[u8]) -> Vec<(&'static str, Result<Vec<u8>, StreamError>)> {
    let o = opts();
    let p = opts().workers(3);
    vec![
        ("stream", decrypt_stream(ct, &o)),
        ("seek", decrypt_seek(ct, &o)),
        ("buffer", decrypt_buf(ct, &o)),
        ("buffer-par", decrypt_buf(ct, &p)),
        ("pipe", decrypt_par(ct, &o)),
        ("pipe-par", decrypt_par(ct, &p)),
    ]
}

pub fn header_len(ct: &[u8]) -> usize {
    kmskit_stream::Header::parse(ct).unwrap().1
}
