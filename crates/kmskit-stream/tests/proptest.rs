//! Property tests: round trips with random plaintext, context and write-split patterns, and random
//! range reads. Case counts and sizes stay modest so debug builds stay fast.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Cursor, Read, Write};

use kmskit_core::{DataKey, EncryptionContext, SecretBytes};
use kmskit_stream::{DecryptingReader, Decryptor, Encryptor, Options, StreamError};
use proptest::prelude::*;

fn key() -> DataKey {
    DataKey::new(SecretBytes::from_slice(&[0x42; 32]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_with_random_splits(
        data in proptest::collection::vec(any::<u8>(), 0..20_000),
        splits in proptest::collection::vec(1usize..6000, 1..20),
        ctx_val in "[a-z]{0,12}",
        chacha in any::<bool>(),
        workers in 1usize..4,
    ) {
        let ctx = EncryptionContext::from_pairs([("k", ctx_val.as_str())]).unwrap();
        let alg = if chacha {
            kmskit_core::crypto::Algorithm::ChaCha20Poly1305
        } else {
            kmskit_core::crypto::Algorithm::Aes256Gcm
        };
        let o = Options::new().chunk_size(4096).unwrap().algorithm(alg).workers(workers)
            .fixed_salt_for_test_vectors([1; 32]);
        let mut enc = Encryptor::new(Vec::new(), &key(), b"wk", &ctx, &o).unwrap();
        let mut rest = &data[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = splits[i % splits.len()].min(rest.len());
            enc.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
            i += 1;
        }
        let ct = enc.finish().unwrap();
        // Every writer produces the same bytes.
        let par = kmskit_stream::encrypt_to_vec(&data, &key(), b"wk", &ctx, &o).unwrap();
        prop_assert_eq!(&par, &ct);

        // Read back with random read sizes.
        let mut d = Decryptor::new(&ct[..], &key(), &ctx, &o).unwrap();
        let mut out = Vec::new();
        let mut j = 0;
        loop {
            let mut b = vec![0u8; splits[j % splits.len()]];
            let n = d.read(&mut b).unwrap();
            if n == 0 { break; }
            out.extend_from_slice(&b[..n]);
            j += 1;
        }
        prop_assert_eq!(&out, &data);
        prop_assert_eq!(kmskit_stream::decrypt_to_vec(&ct, &key(), &ctx, &o).unwrap(), data.clone());
    }

    #[test]
    fn random_ranges(
        len in 0usize..30_000,
        ranges in proptest::collection::vec((0usize..30_000, 0usize..9000), 1..10),
    ) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let ctx = EncryptionContext::new();
        let o = Options::new().chunk_size(4096).unwrap();
        let ct = kmskit_stream::encrypt_to_vec(&data, &key(), b"wk", &ctx, &o).unwrap();
        let mut r = DecryptingReader::new(Cursor::new(&ct), &key(), &ctx, &o).unwrap();
        for (off, l) in ranges {
            let off = off.min(len);
            let l = l.min(len - off);
            prop_assert_eq!(r.decrypt_range(off as u64, l).unwrap(), data[off..off + l].to_vec());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let ctx = EncryptionContext::new();
        let o = Options::new();
        let r = kmskit_stream::decrypt_to_vec(&bytes, &key(), &ctx, &o);
        prop_assert!(r.is_err());
        let mut out = Vec::new();
        let r = Decryptor::new(&bytes[..], &key(), &ctx, &o)
            .and_then(|mut d| std::io::copy(&mut d, &mut out).map_err(StreamError::from_io));
        prop_assert!(r.is_err());
    }
}
