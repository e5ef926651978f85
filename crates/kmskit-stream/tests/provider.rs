//! Streams through a real KeyProvider (MemoryKms): GenerateDataKey under the hood, unwrap on read,
//! rewrap, and the tokio adapters.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Cursor, Read, Write};

use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef};
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use kmskit_stream::{
    DecryptingReader, Decryptor, Encryptor, Header, Options, Sealer, StreamError, rewrap_header,
    rewrap_in_place,
};

fn setup() -> (MemoryKms, Caller, KeyRef, KeyRef, EncryptionContext) {
    let kms = MemoryKms::new_memory();
    let caller = Caller::local();
    let a = kmskit_core::block_on(kms.create_key(&caller, CreateKey::new("a"))).unwrap();
    let b = kmskit_core::block_on(kms.create_key(&caller, CreateKey::new("b"))).unwrap();
    let ctx = EncryptionContext::from_pairs([("file", "x.bin")]).unwrap();
    (kms, caller, KeyRef::Id(a.key_id), KeyRef::Id(b.key_id), ctx)
}

fn opts() -> Options {
    Options::new().chunk_size(4096).unwrap()
}

fn pt(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

fn encrypt(kms: &MemoryKms, caller: &Caller, key: &KeyRef, ctx: &EncryptionContext, data: &[u8]) -> Vec<u8> {
    let mut enc = kmskit_core::block_on(Encryptor::with_provider(
        Vec::new(),
        kms,
        caller,
        key,
        ctx,
        &opts(),
    ))
    .unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn decrypt(
    kms: &MemoryKms,
    caller: &Caller,
    ctx: &EncryptionContext,
    s: &[u8],
) -> Result<Vec<u8>, StreamError> {
    let mut d = kmskit_core::block_on(Decryptor::with_provider(s, kms, caller, ctx, &opts()))?;
    let mut out = Vec::new();
    d.read_to_end(&mut out).map_err(StreamError::from_io)?;
    Ok(out)
}

#[test]
fn provider_round_trip_and_typed_failures() {
    let (kms, caller, a, _, ctx) = setup();
    let data = pt(3 * 4096 + 5);
    let s = encrypt(&kms, &caller, &a, &ctx, &data);
    assert_eq!(decrypt(&kms, &caller, &ctx, &s).unwrap(), data);
    let mut r = kmskit_core::block_on(DecryptingReader::with_provider(
        Cursor::new(&s),
        &kms,
        &caller,
        &ctx,
        &opts(),
    ))
    .unwrap();
    assert_eq!(r.decrypt_range(4000, 200).unwrap(), data[4000..4200]);
    // The wrong context is refused by the KMS itself.
    let other = EncryptionContext::from_pairs([("file", "y.bin")]).unwrap();
    let e = decrypt(&kms, &caller, &other, &s).unwrap_err();
    assert!(matches!(e, StreamError::Kms(_)), "{e:?}");
    // A disabled key is refused with the KMS's code.
    kmskit_core::block_on(kms.disable_key(&caller, &a)).unwrap();
    let e = decrypt(&kms, &caller, &ctx, &s).unwrap_err();
    assert_eq!(e.code(), "Rejected.Disabled");
    let e = kmskit_core::block_on(Sealer::generate(&kms, &caller, &a, &ctx, &opts())).unwrap_err();
    assert_eq!(e.code(), "Rejected.Disabled");
}

#[test]
fn parallel_provider_paths() {
    let (kms, caller, a, _, ctx) = setup();
    let data = pt(20 * 4096 + 77);
    let sealer =
        kmskit_core::block_on(Sealer::generate(&kms, &caller, &a, &ctx, &opts().workers(4))).unwrap();
    let mut s = Vec::new();
    sealer.encrypt_stream(&data[..], &mut s).unwrap();
    let (h, at) = Header::parse(&s).unwrap();
    let op = kmskit_core::block_on(kmskit_stream::Opener::unwrap(
        h,
        &kms,
        &caller,
        &ctx,
        &opts().workers(3),
    ))
    .unwrap();
    let mut out = Vec::new();
    assert_eq!(op.decrypt_stream(&s[at..], &mut out).unwrap(), data.len() as u64);
    assert_eq!(out, data);
    assert_eq!(op.decrypt_body(&s[at..]).unwrap(), data);
}

#[test]
fn rewrap_changes_only_the_header() {
    let (kms, caller, a, b, ctx) = setup();
    let data = pt(2 * 4096 + 300);
    let s = encrypt(&kms, &caller, &a, &ctx, &data);
    let (old, hl) = Header::parse(&s).unwrap();

    // Same key (its current primary version).
    let mut file = Cursor::new(s.clone());
    let new = kmskit_core::block_on(rewrap_in_place(&mut file, &kms, &caller, &ctx, None)).unwrap();
    let s1 = file.into_inner();
    assert_eq!(s1.len(), s.len());
    assert_eq!(new.len(), hl);
    assert_eq!(s1[hl..], s[hl..], "body must be byte-identical");
    assert_ne!(s1[..hl], s[..hl]);
    assert_eq!(decrypt(&kms, &caller, &ctx, &s1).unwrap(), data);

    // Another key: afterwards the stream no longer needs key a.
    let mut file = Cursor::new(s.clone());
    kmskit_core::block_on(rewrap_in_place(&mut file, &kms, &caller, &ctx, Some(&b))).unwrap();
    let s2 = file.into_inner();
    assert_eq!(s2[hl..], s[hl..]);
    kmskit_core::block_on(kms.disable_key(&caller, &a)).unwrap();
    assert_eq!(decrypt(&kms, &caller, &ctx, &s2).unwrap(), data);
    assert_eq!(
        decrypt(&kms, &caller, &ctx, &s).unwrap_err().code(),
        "Rejected.Disabled"
    );

    // A rewrapped header cannot be edited either.
    let mut bad = s2.clone();
    bad[110] ^= 1;
    assert!(decrypt(&kms, &caller, &ctx, &bad).is_err());
    kmskit_core::block_on(kms.enable_key(&caller, &a)).unwrap();

    // rewrap_header on a header alone.
    let h = kmskit_core::block_on(rewrap_header(old, &kms, &caller, &ctx, Some(&b))).unwrap();
    let mut s3 = h.to_bytes();
    s3.extend_from_slice(&s[hl..]);
    assert_eq!(decrypt(&kms, &caller, &ctx, &s3).unwrap(), data);
}

#[test]
fn rewrap_with_an_unwrapped_key() {
    let key = kmskit_core::DataKey::new(kmskit_core::SecretBytes::from_slice(&[3; 32]));
    let ctx = EncryptionContext::new();
    let data = pt(5000);
    let s = kmskit_stream::encrypt_to_vec(&data, &key, b"old wrapping", &ctx, &opts()).unwrap();
    let (h, hl) = Header::parse(&s).unwrap();
    let op = kmskit_stream::Opener::new(h, &key, &ctx, &opts()).unwrap();
    // Longer than the slot: the header grows, the body is unchanged.
    let long = vec![9u8; 400];
    let nh = op.rewrapped_header(&long).unwrap();
    assert!(nh.len() > hl);
    let mut s2 = nh.to_bytes();
    s2.extend_from_slice(&s[hl..]);
    assert_eq!(
        kmskit_stream::decrypt_to_vec(&s2, &key, &ctx, &opts()).unwrap(),
        data
    );
    assert_eq!(Header::parse(&s2).unwrap().0.wrapped_key(), &long[..]);
}

#[test]
fn tokio_adapters_round_trip() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (kms, caller, a, _, ctx) = setup();
    rt.block_on(async {
        for len in [0usize, 1, 4095, 4096, 4097, 3 * 4096 + 11] {
            let data = pt(len);
            let sealer = Sealer::generate(&kms, &caller, &a, &ctx, &opts()).await.unwrap();
            let mut enc = kmskit_stream::AsyncEncryptor::new(sealer, Vec::new());
            for piece in data.chunks(1000) {
                enc.write_all(piece).await.unwrap();
            }
            enc.shutdown().await.unwrap();
            let s = enc.into_inner();
            // Same bytes as the sync path decrypts.
            assert_eq!(decrypt(&kms, &caller, &ctx, &s).unwrap(), data);
            let (h, at) = Header::parse(&s).unwrap();
            let op = kmskit_stream::Opener::unwrap(h, &kms, &caller, &ctx, &opts())
                .await
                .unwrap();
            let mut dec = kmskit_stream::AsyncDecryptor::new(op, &s[at..]);
            let mut out = Vec::new();
            dec.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, data, "len {len}");
            // Truncated at a chunk boundary: typed error.
            if len > 4096 {
                let (h, at) = Header::parse(&s).unwrap();
                let op = kmskit_stream::Opener::unwrap(h, &kms, &caller, &ctx, &opts())
                    .await
                    .unwrap();
                let mut dec = kmskit_stream::AsyncDecryptor::new(op, &s[at..at + 4112]);
                let e = dec.read_to_end(&mut Vec::new()).await.unwrap_err();
                assert!(matches!(StreamError::from_io(e), StreamError::Truncated));
            }
        }
        // The async header reader.
        let data = pt(10_000);
        let s = encrypt(&kms, &caller, &a, &ctx, &data);
        let mut src = &s[..];
        let h = kmskit_stream::read_header_async(&mut src).await.unwrap();
        let op = kmskit_stream::Opener::unwrap(h, &kms, &caller, &ctx, &opts())
            .await
            .unwrap();
        let mut out = Vec::new();
        kmskit_stream::AsyncDecryptor::new(op, src)
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, data);
    });
}
