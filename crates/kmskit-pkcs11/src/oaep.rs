//! EME-OAEP decoding (RFC 8017 §7.1.2, step 3), for tokens that run raw RSA (`CKM_RSA_X_509`) but
//! not `CKM_RSA_PKCS_OAEP` with the hash asked for: SoftHSM2 2.6 accepts only SHA-1 / MGF1-SHA-1
//! there and answers `CKR_ARGUMENTS_BAD` to SHA-256.
//!
//! The checks run in constant time over the whole encoded message and end in one opaque
//! [`Error::DecryptFailed`], so neither timing nor the error tells which check failed (Manger's attack
//! needs exactly that). Intermediates are zeroized.

use kmskit_core::{Error, Result};
use sha2::Digest;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

/// The OAEP hash (and MGF1 hash: kmskit uses the same one for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OaepHash {
    Sha1,
    Sha256,
}

impl OaepHash {
    fn len(self) -> usize {
        match self {
            OaepHash::Sha1 => 20,
            OaepHash::Sha256 => 32,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            OaepHash::Sha1 => run::<sha1::Sha1>(parts),
            OaepHash::Sha256 => run::<sha2::Sha256>(parts),
        }
    }

    /// MGF1 (RFC 8017 B.2.1) of `seed`, XORed into `out`.
    fn mgf1_xor(self, seed: &[u8], out: &mut [u8]) {
        for (counter, chunk) in (0u32..).zip(out.chunks_mut(self.len())) {
            let mask = Zeroizing::new(self.digest(&[seed, &counter.to_be_bytes()]));
            for (o, m) in chunk.iter_mut().zip(mask.iter()) {
                *o ^= m;
            }
        }
    }
}

/// Decodes the encoded message `em` that raw RSA decryption returned, for a modulus of `k` bytes and
/// an empty label. `em` may come without its leading zero bytes (some modules strip them).
///
/// # Errors
/// [`Error::DecryptFailed`] for anything that is not a valid encoding.
pub(crate) fn decode(hash: OaepHash, k: usize, em: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash.len();
    if k < 2 * h + 2 || em.len() > k {
        return Err(Error::DecryptFailed);
    }
    let mut buf = Zeroizing::new(vec![0u8; k]);
    buf[k - em.len()..].copy_from_slice(em);
    let (y, rest) = buf.split_at_mut(1);
    let (masked_seed, masked_db) = rest.split_at_mut(h);
    hash.mgf1_xor(masked_db, masked_seed); // now the seed
    hash.mgf1_xor(masked_seed, masked_db); // now DB = lHash' ‖ PS ‖ 0x01 ‖ M
    let l_hash = hash.digest(&[b""]);
    let (l_hash2, ps_m) = masked_db.split_at(h);

    let mut good = y[0].ct_eq(&0) & l_hash2.ct_eq(&l_hash);
    let mut found = Choice::from(0);
    let mut invalid = Choice::from(0);
    let mut index = 0u32;
    for (i, b) in (0u32..).zip(ps_m.iter()) {
        let is_one = b.ct_eq(&1);
        let is_zero = b.ct_eq(&0);
        let looking = !found;
        index.conditional_assign(&i, looking & is_one);
        invalid |= looking & !is_zero & !is_one;
        found |= is_one;
    }
    good &= found & !invalid;
    if !bool::from(good) {
        return Err(Error::DecryptFailed);
    }
    let start = index as usize + 1;
    Ok(Zeroizing::new(ps_m.get(start..).unwrap_or_default().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EME-OAEP encoding with a fixed seed (RFC 8017 §7.1.1 step 2), to test the decoder against.
    fn encode(hash: OaepHash, k: usize, m: &[u8], seed: &[u8]) -> Vec<u8> {
        let h = hash.len();
        let mut db = hash.digest(&[b""]);
        db.resize(k - m.len() - h - 2, 0);
        db.push(1);
        db.extend_from_slice(m);
        let mut seed = seed.to_vec();
        let masked_db = {
            let mut d = db.clone();
            hash.mgf1_xor(&seed, &mut d);
            d
        };
        hash.mgf1_xor(&masked_db, &mut seed);
        let mut em = vec![0];
        em.extend_from_slice(&seed);
        em.extend_from_slice(&masked_db);
        em
    }

    #[test]
    fn round_trips_and_refusals() {
        for hash in [OaepHash::Sha1, OaepHash::Sha256] {
            let k = 256;
            let h = hash.len();
            let max = k - 2 * h - 2;
            for m in [&b""[..], b"x", b"hello OAEP", &vec![0x5a; max]] {
                let em = encode(hash, k, m, &vec![0x42; h]);
                assert_eq!(&decode(hash, k, &em).unwrap()[..], m);
                // Without the leading zero byte, as some modules return it.
                assert_eq!(&decode(hash, k, &em[1..]).unwrap()[..], m);
                // Every single-bit flip is refused: the seed mask is MGF1 of all of masked DB.
                for i in 0..em.len() {
                    let mut bad = em.clone();
                    bad[i] ^= 0x01;
                    assert!(
                        matches!(decode(hash, k, &bad), Err(Error::DecryptFailed)),
                        "{hash:?}: flip at {i} of {}",
                        em.len()
                    );
                }
            }
            // Wrong hash, too long, too small a modulus.
            let em = encode(hash, k, b"m", &vec![7; h]);
            let other = if hash == OaepHash::Sha1 {
                OaepHash::Sha256
            } else {
                OaepHash::Sha1
            };
            assert!(decode(other, k, &em).is_err());
            assert!(decode(hash, k, &[0; 257]).is_err());
            assert!(decode(hash, 2 * h + 1, &[]).is_err());
            assert!(decode(hash, k, &[0; 256]).is_err(), "all zeros");
        }
    }
}
