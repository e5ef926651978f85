//! Not public API: support code for kmskit's fuzz targets and property tests. It may change or go away in
//! any release.

pub mod fuzzing {
    //! Helpers the fuzz targets in `fuzz/` call in one line, and the property tests call too, so a crash
    //! the fuzzer finds replays as an ordinary test. Key material is fixed, so inputs replay exactly.

    use std::sync::OnceLock;

    use kmskit_core::blob::{ParsedBlob, write_header};
    use kmskit_core::crypto::{Algorithm, NONCE_LEN, TAG_LEN};
    use kmskit_core::store::{KeyRecord, KeyStore, MaterialId, VersionRecord};
    use kmskit_core::{
        Caller, CiphertextBlob, EncryptionContext, Error, ErrorCode, KeyId, KeyProvider, KeyRef, KeySpec,
        KeyVersionId, Kms, MAX_PLAINTEXT, SecretBytes, Timestamp, block_on,
    };

    use crate::{MemoryKms, MemoryStore};

    /// The id of the one key in [`fixed_kms`].
    pub const KEY_ID: &str = "fuzz-key";
    /// The id of its one version.
    pub const VERSION_ID: &str = "fuzz-v1";
    /// Its (public, test-only) material.
    pub const MATERIAL: [u8; 32] = [0x42; 32];

    /// A `MemoryKms` holding one enabled AES-256 key, [`KEY_ID`] / [`VERSION_ID`], with material
    /// [`MATERIAL`].
    ///
    /// # Panics
    /// Never in practice: the fixed ids and material are valid and an in-memory store cannot fail.
    #[allow(clippy::expect_used)]
    pub fn fixed_kms() -> MemoryKms {
        let key_id = KeyId::new(KEY_ID).expect("valid key id");
        let version = KeyVersionId::new(VERSION_ID).expect("valid version id");
        let created = Timestamp::from_unix(1_700_000_000);
        let store = MemoryStore::new();
        store
            .keys
            .insert(
                MaterialId::new(key_id.clone(), version.clone()),
                KeySpec::Aes256,
                SecretBytes::from_slice(&MATERIAL),
            )
            .expect("32-byte AES material");
        let mut rec = KeyRecord::new(key_id, KeySpec::Aes256, KeySpec::Aes256.default_usage(), created);
        rec.versions.push(VersionRecord::new(version.clone(), created));
        rec.primary_version = Some(version);
        rec.last_rotation_date = Some(created);
        rec.revision = 1;
        store.save_key(&rec).expect("memory store");
        Kms::open(store).expect("an in-memory store opens")
    }

    fn shared() -> &'static MemoryKms {
        static KMS: OnceLock<MemoryKms> = OnceLock::new();
        KMS.get_or_init(fixed_kms)
    }

    /// A valid version-1 header for the fixed key, with a fixed nonce.
    ///
    /// # Panics
    /// Never: the fixed ids are valid.
    #[allow(clippy::expect_used)]
    pub fn fixed_header() -> Vec<u8> {
        let mut h = Vec::new();
        write_header(
            &mut h,
            Algorithm::Aes256Gcm,
            &KeyId::new(KEY_ID).expect("valid key id"),
            &KeyVersionId::new(VERSION_ID).expect("valid version id"),
            &[7u8; NONCE_LEN],
        );
        h
    }

    /// Parses `bytes` as a blob; whatever the parser accepts must be self-consistent.
    ///
    /// # Panics
    /// When the parser accepts a blob whose parts do not add up (a parser bug).
    pub fn check_parse(bytes: &[u8]) {
        let Ok(p) = ParsedBlob::parse(bytes) else {
            return;
        };
        assert_eq!(
            p.header.len() + p.sealed.len(),
            bytes.len(),
            "header ‖ sealed ≠ blob"
        );
        assert_eq!(
            bytes.get(..p.header.len()),
            Some(p.header),
            "header is not a prefix"
        );
        assert!(p.sealed.len() >= TAG_LEN, "sealed part shorter than a tag");
        let mut again = Vec::new();
        write_header(&mut again, p.algorithm, &p.key_id, &p.version_id, &p.nonce);
        assert_eq!(again, p.header, "the header does not re-serialise to itself");
    }

    /// Encryption contexts made from arbitrary bytes: the empty one, the bytes as the API's JSON form,
    /// and the bytes split at NULs into key/value pairs (those that are valid contexts).
    pub fn contexts_from(bytes: &[u8]) -> Vec<EncryptionContext> {
        let mut out = vec![EncryptionContext::new()];
        if let Ok(c) = EncryptionContext::from_json(&String::from_utf8_lossy(bytes)) {
            out.push(c);
        }
        let parts: Vec<String> = bytes
            .split(|&b| b == 0)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let pairs = parts.chunks(2).map(|kv| {
            (
                kv.first().cloned().unwrap_or_default(),
                kv.get(1).cloned().unwrap_or_default(),
            )
        });
        if let Ok(c) = EncryptionContext::from_pairs(pairs) {
            out.push(c);
        }
        out
    }

    /// Whether `e` is an answer a malformed or forged blob may get: typed, 4xx, never internal.
    pub fn is_blob_rejection(e: &Error) -> bool {
        matches!(
            e.code(),
            ErrorCode::InvalidParameter | ErrorCode::KeyNotFound | ErrorCode::KeyVersionNotFound
        )
    }

    fn decrypt(blob: &[u8], ctx: &EncryptionContext) -> kmskit_core::Result<()> {
        let blob = CiphertextBlob::from_bytes(blob.to_vec());
        block_on(shared().decrypt(&Caller::local(), &blob, ctx)).map(drop)
    }

    /// The blob fuzz target: arbitrary bytes as a blob (raw, Base64 text, and behind a valid header for
    /// the fixed key so the AEAD path is reached) and as encryption contexts, through a `MemoryKms` with
    /// a fixed key; then the bytes as plaintext for a round trip whose bit-flipped blob must fail.
    ///
    /// The first byte splits the rest into context bytes and blob bytes, so both vary independently.
    ///
    /// # Panics
    /// On any panic inside kmskit (what the fuzzer looks for), an inconsistent parse, an untyped or
    /// internal error for a bad blob, a failed round trip or an accepted forgery.
    pub fn blob_decrypt(data: &[u8]) {
        check_parse(data);
        let (ctx_bytes, blob) = match data.split_first() {
            Some((&n, rest)) => rest.split_at(usize::from(n).min(rest.len())),
            None => (&[][..], data),
        };
        check_parse(blob);
        let contexts = contexts_from(ctx_bytes);
        let header = fixed_header();
        for raw in [data, blob] {
            for ctx in &contexts {
                if let Err(e) = decrypt(raw, ctx) {
                    assert!(is_blob_rejection(&e), "untyped rejection: {e:?}");
                }
            }
            if let Ok(b) = CiphertextBlob::from_base64(&String::from_utf8_lossy(raw)) {
                let _ = block_on(shared().decrypt(&Caller::local(), &b, &contexts[0]));
            }
            let mut spliced = header.clone();
            spliced.extend_from_slice(raw);
            check_parse(&spliced);
            for ctx in &contexts {
                if let Err(e) = decrypt(&spliced, ctx) {
                    assert!(is_blob_rejection(&e), "untyped rejection: {e:?}");
                }
            }
        }
        round_trip(blob, contexts.last().unwrap_or(&contexts[0]), data);
    }

    /// Encrypts `plaintext` (capped at [`MAX_PLAINTEXT`]) under the fixed key and `ctx`, decrypts it back,
    /// then checks that a bit flip chosen by `choice` is refused.
    ///
    /// # Panics
    /// When the round trip fails or the flipped blob decrypts.
    #[allow(clippy::expect_used)]
    pub fn round_trip(plaintext: &[u8], ctx: &EncryptionContext, choice: &[u8]) {
        let kms = shared();
        let caller = Caller::local();
        let pt = &plaintext[..plaintext.len().min(MAX_PLAINTEXT)];
        let key = KeyRef::Id(KeyId::new(KEY_ID).expect("valid key id"));
        let enc = block_on(kms.encrypt(&caller, &key, pt, ctx)).expect("encrypt under the fixed key");
        let dec = block_on(kms.decrypt(&caller, &enc.ciphertext_blob, ctx)).expect("round trip");
        assert_eq!(&dec.plaintext[..], pt, "round trip changed the plaintext");
        let mut bad = enc.ciphertext_blob.into_bytes();
        let bits = bad.len() * 8;
        let bit = choice.iter().fold(0usize, |acc, &b| {
            acc.wrapping_mul(131).wrapping_add(usize::from(b))
        }) % bits;
        bad[bit / 8] ^= 1 << (bit % 8);
        match decrypt(&bad, ctx) {
            Ok(()) => panic!("a blob with bit {bit} flipped decrypted"),
            Err(e) => assert!(is_blob_rejection(&e), "untyped rejection: {e:?}"),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn fixed_kms_round_trips_and_rejects_junk() {
            round_trip(b"hello", &EncryptionContext::new(), b"x");
            blob_decrypt(b"");
            blob_decrypt(b"\x00KMK\x01\x01");
            let mut spliced = vec![0u8];
            spliced.extend_from_slice(&fixed_header());
            spliced.extend_from_slice(&[0u8; 40]);
            blob_decrypt(&spliced);
            assert!(contexts_from(b"{\"a\":\"b\"}").len() >= 2);
        }
    }
}
