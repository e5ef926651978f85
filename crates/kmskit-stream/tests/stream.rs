//! Round trips, tampering, seeking and parallel equivalence.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{Cursor, Read, Seek, SeekFrom};

use common::*;
use kmskit_core::crypto::{Algorithm, all_engines};
use kmskit_stream::{DecryptingReader, Header, Opener, Sealer, StreamError};

const LENGTHS: &[usize] = &[0, 1, C - 1, C, C + 1, 2 * C, 5 * C + 7];

#[test]
fn round_trips_every_path_engine_and_suite() {
    for alg in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
        for &len in LENGTHS {
            let pt = plaintext(len);
            let mut outputs = Vec::new();
            for e in all_engines() {
                let o = fixed(engine_opts(e, alg));
                for split in [1usize, 7, C, 3 * C + 5, usize::MAX] {
                    if split == 1 && len > 2 * C {
                        continue;
                    }
                    outputs.push(encrypt_stream(&pt, &o, split));
                }
                let s = Sealer::new(&key(1), WRAPPED, &ctx(), &o).unwrap();
                outputs.push(s.encrypt_to_vec(&pt).unwrap());
                let s = Sealer::new(&key(1), WRAPPED, &ctx(), &o.workers(3)).unwrap();
                outputs.push(s.encrypt_to_vec(&pt).unwrap());
                for w in [1, 2, 4] {
                    let s = Sealer::new(&key(1), WRAPPED, &ctx(), &o.workers(w)).unwrap();
                    let mut out = Vec::new();
                    assert_eq!(s.encrypt_stream(&pt[..], &mut out).unwrap(), len as u64);
                    outputs.push(out);
                }
            }
            for o in &outputs {
                assert_eq!(o, &outputs[0], "{alg} len {len}: paths differ");
            }
            let ct = &outputs[0];
            let hl = header_len(ct);
            let expect_body = len + 16 * len.div_ceil(C).max(1);
            assert_eq!(ct.len() - hl, expect_body, "len {len}");
            for (name, r) in decrypt_all(ct) {
                assert_eq!(r.unwrap(), pt, "{alg} len {len} path {name}");
            }
        }
    }
}

#[test]
fn random_salt_makes_streams_differ() {
    let pt = plaintext(100);
    let a = encrypt_stream(&pt, &opts(), 100);
    let b = encrypt_stream(&pt, &opts(), 100);
    assert_ne!(a, b);
    assert_eq!(decrypt_buf(&a, &opts()).unwrap(), pt);
}

fn assert_all_fail(ct: &[u8], what: &str, ok: impl Fn(&StreamError) -> bool) {
    for (name, r) in decrypt_all(ct) {
        match r {
            Ok(_) => panic!("{what}: path {name} accepted a bad stream"),
            Err(e) => assert!(ok(&e), "{what}: path {name} gave {e:?}"),
        }
    }
}

#[test]
fn every_bit_flip_fails() {
    let pt = plaintext(C + 50);
    let ct = encrypt_stream(&pt, &opts(), 1000);
    let hl = header_len(&ct);
    // Header flips: the whole decryption path, typed errors.
    for i in 0..hl * 8 {
        let mut bad = ct.clone();
        bad[i / 8] ^= 1 << (i % 8);
        let r = decrypt_buf(&bad, &opts());
        let e = r.expect_err("header flip accepted");
        assert!(
            e.is_integrity_failure()
                || matches!(
                    e,
                    StreamError::UnsupportedVersion(_) | StreamError::UnsupportedSuite(_)
                ),
            "bit {i}: {e:?}"
        );
    }
    // Body flips: every bit, against an opened header.
    let (h, _) = Header::parse(&ct).unwrap();
    let op = Opener::new(h, &key(1), &ctx(), &opts()).unwrap();
    for i in hl * 8..ct.len() * 8 {
        let mut bad = ct[hl..].to_vec();
        let j = i - hl * 8;
        bad[j / 8] ^= 1 << (j % 8);
        let e = op.decrypt_body(&bad).expect_err("body flip accepted");
        assert!(matches!(e, StreamError::ChunkAuthFailed { .. }), "bit {i}: {e:?}");
    }
    // A sample of flips through every path.
    for i in (0..ct.len() * 8).step_by(997) {
        let mut bad = ct.clone();
        bad[i / 8] ^= 1 << (i % 8);
        assert_all_fail(&bad, "flip", |e| {
            e.is_integrity_failure()
                || matches!(
                    e,
                    StreamError::UnsupportedVersion(_) | StreamError::UnsupportedSuite(_)
                )
        });
    }
}

#[test]
fn truncation_is_rejected_everywhere() {
    let pt = plaintext(3 * C + 100);
    let ct = encrypt_stream(&pt, &opts(), 4000);
    let hl = header_len(&ct);
    let full = C + 16;
    // Inside the header.
    for cut in [0, 3, 50, hl - 1] {
        assert_all_fail(&ct[..cut], "header cut", |e| {
            matches!(e, StreamError::Truncated | StreamError::NotAStream)
        });
    }
    // At every chunk boundary: typed Truncated.
    for k in 0..4 {
        let cut = hl + k * full;
        assert_all_fail(&ct[..cut], "boundary cut", |e| {
            matches!(e, StreamError::Truncated)
        });
    }
    // Mid-chunk, and in the tag.
    for off in [1, 15, 16, 17, 100, C, C + 15] {
        for k in 0..3 {
            let cut = hl + k * full + off;
            assert_all_fail(&ct[..cut], "mid-chunk cut", |e| {
                matches!(e, StreamError::Truncated | StreamError::ChunkAuthFailed { .. })
            });
        }
    }
    // Every possible length through the buffer path.
    for cut in hl..ct.len() {
        let e = decrypt_buf(&ct[..cut], &opts()).expect_err("truncation accepted");
        assert!(
            matches!(e, StreamError::Truncated | StreamError::ChunkAuthFailed { .. }),
            "cut {cut}: {e:?}"
        );
    }
}

fn chunks(ct: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let hl = header_len(ct);
    (
        ct[..hl].to_vec(),
        ct[hl..].chunks(C + 16).map(<[u8]>::to_vec).collect(),
    )
}

#[test]
fn reorder_duplication_and_extension_are_rejected() {
    let pt = plaintext(3 * C + 100);
    let ct = encrypt_stream(&pt, &opts(), 4000);
    let (h, cs) = chunks(&ct);
    let join = |order: &[usize]| {
        let mut v = h.clone();
        for &i in order {
            v.extend_from_slice(&cs[i]);
        }
        v
    };
    assert_all_fail(&join(&[1, 0, 2, 3]), "reorder", |e| {
        matches!(e, StreamError::ChunkAuthFailed { .. })
    });
    assert_all_fail(&join(&[0, 2, 1, 3]), "reorder", |e| {
        matches!(e, StreamError::ChunkAuthFailed { .. })
    });
    assert_all_fail(&join(&[0, 1, 1, 2, 3]), "duplicate", |e| {
        matches!(e, StreamError::ChunkAuthFailed { .. })
    });
    assert_all_fail(&join(&[0, 1, 3]), "drop", |e| {
        matches!(e, StreamError::ChunkAuthFailed { .. })
    });
    // Final chunk moved to the front.
    assert_all_fail(&join(&[3, 0, 1, 2]), "final first", |e| {
        matches!(e, StreamError::ChunkAuthFailed { .. })
    });
    // Appended bytes.
    for extra in [&b"x"[..], &[0u8; 16][..], &[7u8; 17][..], &cs[3][..]] {
        let mut v = ct.clone();
        v.extend_from_slice(extra);
        assert_all_fail(&v, "append", StreamError::is_integrity_failure);
    }
    // A stream whose last chunk is full: appending anything is typed trailing data on the paths that
    // read in order (the sequential reader opens out of place, so it can look at the chunk again).
    let pt = plaintext(2 * C);
    let ct = encrypt_stream(&pt, &opts(), C);
    let mut v = ct.clone();
    v.extend_from_slice(&ct[header_len(&ct)..header_len(&ct) + C + 16]);
    for o in [opts(), opts().workers(3)] {
        assert!(matches!(decrypt_buf(&v, &o), Err(StreamError::TrailingData)));
    }
    for extra in [&b"x"[..], &ct[header_len(&ct)..]] {
        let mut w = ct.clone();
        w.extend_from_slice(extra);
        let e = decrypt_stream(&w, &opts()).expect_err("appended bytes accepted");
        assert!(matches!(e, StreamError::TrailingData), "sequential reader: {e:?}");
    }
    assert_all_fail(&v, "append chunk", StreamError::is_integrity_failure);
}

#[test]
fn header_from_another_stream_is_rejected() {
    let pt = plaintext(2 * C + 9);
    let a = encrypt_stream(&pt, &opts(), 999);
    let b = encrypt_stream(&pt, &opts(), 999);
    let (ha, ca) = chunks(&a);
    let (hb, _) = chunks(&b);
    assert_eq!(ha.len(), hb.len());
    let mut spliced = hb.clone();
    for c in &ca {
        spliced.extend_from_slice(c);
    }
    assert_all_fail(&spliced, "swapped header (same data key)", |e| {
        matches!(e, StreamError::ChunkAuthFailed { .. })
    });
    // Another data key: the header's commitment does not match our key.
    let other = kmskit_stream::encrypt_to_vec(&pt, &key(2), WRAPPED, &ctx(), &opts()).unwrap();
    let (ho, _) = chunks(&other);
    let mut spliced = ho;
    for c in &ca {
        spliced.extend_from_slice(c);
    }
    assert_all_fail(&spliced, "swapped header (other key)", |e| {
        matches!(e, StreamError::KeyCommitmentMismatch)
    });
}

#[test]
fn wrong_key_and_context_are_typed() {
    let pt = plaintext(10);
    let ct = encrypt_stream(&pt, &opts(), 10);
    let e = kmskit_stream::decrypt_to_vec(&ct, &key(9), &ctx(), &opts()).unwrap_err();
    assert!(matches!(e, StreamError::KeyCommitmentMismatch));
    let other = kmskit_core::EncryptionContext::from_pairs([("purpose", "other")]).unwrap();
    let e = kmskit_stream::decrypt_to_vec(&ct, &key(1), &other, &opts()).unwrap_err();
    assert!(matches!(e, StreamError::ContextMismatch));
    let e =
        kmskit_stream::decrypt_to_vec(b"not a stream at all, clearly", &key(1), &ctx(), &opts()).unwrap_err();
    assert!(matches!(e, StreamError::NotAStream));
    let mut v = ct.clone();
    v[4] = 2;
    assert!(matches!(
        decrypt_buf(&v, &opts()),
        Err(StreamError::UnsupportedVersion(2))
    ));
    let mut v = ct;
    v[5] = 9;
    assert!(matches!(
        decrypt_buf(&v, &opts()),
        Err(StreamError::UnsupportedSuite(9))
    ));
}

#[test]
fn poisoned_decryptor_stays_failed() {
    let pt = plaintext(3 * C);
    let mut ct = encrypt_stream(&pt, &opts(), C);
    let hl = header_len(&ct);
    ct[hl + C + 16 + 5] ^= 1;
    let mut d = kmskit_stream::Decryptor::new(&ct[..], &key(1), &ctx(), &opts()).unwrap();
    let mut buf = vec![0u8; C];
    d.read_exact(&mut buf).unwrap();
    assert_eq!(buf, pt[..C]);
    let e = StreamError::from_io(d.read(&mut buf).unwrap_err());
    assert!(matches!(e, StreamError::ChunkAuthFailed { .. }));
    let e = StreamError::from_io(d.read(&mut buf).unwrap_err());
    assert!(matches!(e, StreamError::Closed));
}

#[test]
fn seek_and_ranges_match_the_plaintext() {
    let pt = plaintext(5 * C + 123);
    let ct = encrypt_stream(&pt, &opts(), 3000);
    let mut r = DecryptingReader::new(Cursor::new(&ct), &key(1), &ctx(), &opts()).unwrap();
    assert_eq!(r.len(), pt.len() as u64);
    let mut seed = 12345u64;
    for _ in 0..300 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (seed >> 33) as usize % (pt.len() + 1);
        let len = ((seed >> 13) as usize % (2 * C + 50)).min(pt.len() - off);
        assert_eq!(
            r.decrypt_range(off as u64, len).unwrap(),
            pt[off..off + len],
            "{off}+{len}"
        );
        r.seek(SeekFrom::Start(off as u64)).unwrap();
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf, pt[off..off + len]);
    }
    assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), pt.len() as u64 - 10);
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, pt[pt.len() - 10..]);
    assert!(r.seek(SeekFrom::Current(-(pt.len() as i64) - 1)).is_err());
    assert!(matches!(
        r.decrypt_range(pt.len() as u64 - 1, 2),
        Err(StreamError::InvalidArgument(_))
    ));
    assert_eq!(r.decrypt_range(pt.len() as u64, 0).unwrap(), b"");
}

/// Counts the bytes read through it, to show range reads touch only the chunks they need.
struct Counting<R> {
    inner: R,
    read: u64,
}
impl<R: Read> Read for Counting<R> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(b)?;
        self.read += n as u64;
        Ok(n)
    }
}
impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, p: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(p)
    }
}

#[test]
fn range_reads_touch_only_needed_chunks() {
    let pt = plaintext(50 * C);
    let ct = encrypt_stream(&pt, &opts(), 50 * C);
    let src = Counting {
        inner: Cursor::new(&ct),
        read: 0,
    };
    let mut r = DecryptingReader::new(src, &key(1), &ctx(), &opts()).unwrap();
    let mut src = r.into_inner();
    let after_open = src.read;
    assert!(after_open < (2 * C + 1000) as u64, "open read {after_open}");
    src.read = 0;
    r = DecryptingReader::new(src, &key(1), &ctx(), &opts()).unwrap();
    let got = r.decrypt_range((20 * C + 10) as u64, C).unwrap();
    assert_eq!(got, pt[20 * C + 10..21 * C + 10]);
    let src = r.into_inner();
    // header + final chunk at open, then the two chunks of the range.
    assert!(
        src.read <= (after_open + 2 * (C as u64 + 16)),
        "read {}",
        src.read
    );
}

#[test]
fn parallel_equals_serial_at_many_sizes() {
    for len in [0, 1, C, 3 * C - 1, 17 * C + 3] {
        let pt = plaintext(len);
        let o = fixed(opts());
        let serial = Sealer::new(&key(1), WRAPPED, &ctx(), &o)
            .unwrap()
            .encrypt_to_vec(&pt)
            .unwrap();
        for w in [2, 3, 8, 64] {
            let par = Sealer::new(&key(1), WRAPPED, &ctx(), &o.workers(w))
                .unwrap()
                .encrypt_to_vec(&pt)
                .unwrap();
            assert_eq!(par, serial, "len {len} workers {w}");
            let mut piped = Vec::new();
            Sealer::new(&key(1), WRAPPED, &ctx(), &o.workers(w))
                .unwrap()
                .encrypt_stream(&pt[..], &mut piped)
                .unwrap();
            assert_eq!(piped, serial, "len {len} workers {w}");
            assert_eq!(decrypt_par(&serial, &opts().workers(w)).unwrap(), pt);
            assert_eq!(decrypt_buf(&serial, &opts().workers(w)).unwrap(), pt);
        }
    }
}

#[test]
fn an_unfinished_encryptor_leaves_a_truncated_stream() {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut enc = kmskit_stream::Encryptor::new(&mut out, &key(1), WRAPPED, &ctx(), &opts()).unwrap();
        enc.write_all(&plaintext(3 * C)).unwrap();
        // dropped without finish()
    }
    assert_all_fail(&out, "unfinished", |e| matches!(e, StreamError::Truncated));
}

#[test]
fn debug_output_has_no_secrets() {
    let s = Sealer::new(&key(0xAB), WRAPPED, &ctx(), &opts()).unwrap();
    let d = format!("{s:?}");
    assert!(!d.contains("171") && !d.to_lowercase().contains("abab"), "{d}");
}
