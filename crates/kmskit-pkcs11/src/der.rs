//! The little DER the asymmetric keys need: the curves' OIDs, ECDSA signatures from PKCS#11's raw
//! `r ‖ s` to DER, SubjectPublicKeyInfo for EC and RSA public keys read from the token, and the
//! SHA-256 DigestInfo prefix of PKCS#1 v1.5 signatures.
//!
//! Only encoding, of values the token produced, plus unwrapping the one OCTET STRING a token puts
//! around `CKA_EC_POINT`; every length is checked, nothing panics on what the token returns.

use kmskit_core::{Error, Result};

/// An elliptic curve the store keeps keys on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    /// NIST P-256 (prime256v1, secp256r1).
    P256,
    /// secp256k1.
    K256,
}

impl Curve {
    /// The DER of the curve's OBJECT IDENTIFIER: what `CKA_EC_PARAMS` holds (namedCurve), and the
    /// parameters of the SPKI algorithm.
    pub(crate) const fn oid_der(self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7
            Curve::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // 1.3.132.0.10
            Curve::K256 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        }
    }

    /// Bytes of a field element (and of r and s).
    pub(crate) const fn field_len(self) -> usize {
        32
    }
}

/// id-ecPublicKey, 1.2.840.10045.2.1.
const ID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// rsaEncryption, 1.2.840.113549.1.1.1, with its NULL parameters.
const RSA_ENCRYPTION_WITH_NULL: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// DER of `DigestInfo { AlgorithmIdentifier { sha256, NULL }, OCTET STRING (32 bytes) }` up to the
/// digest (RFC 8017 §9.2, note 1): what CKM_RSA_PKCS signs, followed by the digest.
pub(crate) const SHA256_DIGEST_INFO_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    0x04, 0x20,
];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// `tag ‖ length ‖ content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of the unsigned big-endian `value`: leading zeros dropped (one kept for zero), and a
/// zero prepended when the high bit is set.
fn unsigned_integer(value: &[u8]) -> Vec<u8> {
    let skip = value.iter().take_while(|b| **b == 0).count();
    let v = &value[skip..];
    let mut content = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(v);
    tlv(INTEGER, &content)
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` from the `r ‖ s` that `CKM_ECDSA` returns
/// (two field-length big-endian numbers).
///
/// # Errors
/// [`Error::Internal`] when `raw` is not two field elements long.
pub(crate) fn ecdsa_raw_to_der(curve: Curve, raw: &[u8]) -> Result<Vec<u8>> {
    let n = curve.field_len();
    if raw.len() != 2 * n {
        return Err(Error::Internal(format!(
            "C_Sign (CKM_ECDSA) returned {} bytes, not r ‖ s of {n} bytes each",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(n);
    let mut body = unsigned_integer(r);
    body.extend_from_slice(&unsigned_integer(s));
    Ok(tlv(SEQUENCE, &body))
}

/// The uncompressed point `04 ‖ x ‖ y` in `CKA_EC_POINT`. PKCS#11 (and SoftHSM2) wrap it in a DER
/// OCTET STRING; some modules return it bare, which is accepted too.
///
/// # Errors
/// [`Error::Internal`] when the attribute holds no uncompressed point on a curve of this size.
pub(crate) fn ec_point(curve: Curve, attr: &[u8]) -> Result<&[u8]> {
    let point_len = 1 + 2 * curve.field_len();
    let point = if attr.len() == point_len && attr[0] == 0x04 {
        attr
    } else {
        match attr {
            // Short form (< 128 bytes) and the one-byte long form.
            [OCTET_STRING, len, rest @ ..] if usize::from(*len) == rest.len() && *len < 0x80 => rest,
            [OCTET_STRING, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
            _ => {
                return Err(Error::Internal(
                    "CKA_EC_POINT is neither a DER OCTET STRING nor a bare point".to_owned(),
                ));
            }
        }
    };
    if point.len() != point_len || point[0] != 0x04 {
        return Err(Error::Internal(format!(
            "CKA_EC_POINT holds {} bytes, not an uncompressed {point_len}-byte point",
            point.len()
        )));
    }
    Ok(point)
}

/// SubjectPublicKeyInfo of an EC public key (RFC 5480): id-ecPublicKey, the named curve, the
/// uncompressed point.
pub(crate) fn ec_spki(curve: Curve, point: &[u8]) -> Vec<u8> {
    let mut alg = ID_EC_PUBLIC_KEY.to_vec();
    alg.extend_from_slice(curve.oid_der());
    spki(&tlv(SEQUENCE, &alg), point)
}

/// SubjectPublicKeyInfo of an RSA public key (RFC 3279): rsaEncryption with NULL parameters, and
/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (unsigned big-endian
/// values, as `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT` hold them).
pub(crate) fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut key = unsigned_integer(modulus);
    key.extend_from_slice(&unsigned_integer(exponent));
    spki(&tlv(SEQUENCE, RSA_ENCRYPTION_WITH_NULL), &tlv(SEQUENCE, &key))
}

fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(key);
    let mut body = algorithm.to_vec();
    body.extend_from_slice(&tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &body)
}

/// The number of significant bits of an unsigned big-endian number.
pub(crate) fn bit_len(value: &[u8]) -> usize {
    let skip = value.iter().take_while(|b| **b == 0).count();
    match value.get(skip) {
        Some(top) => (value.len() - skip - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_integers() {
        let mut v = Vec::new();
        push_len(&mut v, 0x7f);
        push_len(&mut v, 0x80);
        push_len(&mut v, 0x1234);
        assert_eq!(v, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
        assert_eq!(unsigned_integer(&[0, 0, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), [0x02, 0x01, 0x00]);
        assert_eq!(unsigned_integer(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(bit_len(&[0, 0x01, 0]), 9);
        assert_eq!(bit_len(&[0x80; 256]), 2048);
        assert_eq!(bit_len(&[0, 0]), 0);
    }

    #[test]
    fn ecdsa_signatures_become_der() {
        // r with its high bit set (a zero is prepended), s with leading zeros (dropped).
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[31] = 0x01;
        raw[62] = 0x12;
        raw[63] = 0x34;
        let der = ecdsa_raw_to_der(Curve::P256, &raw).unwrap();
        let mut expected = vec![0x30, 0x27, 0x02, 0x21, 0x00];
        expected.extend_from_slice(&raw[..32]);
        expected.extend_from_slice(&[0x02, 0x02, 0x12, 0x34]);
        assert_eq!(der, expected);
        // The longest P-256 signature: 2 + 2 × (2 + 33) = 72 bytes.
        assert_eq!(ecdsa_raw_to_der(Curve::P256, &[0xff; 64]).unwrap().len(), 72);
        assert!(ecdsa_raw_to_der(Curve::P256, &[1; 63]).is_err());
        assert!(ecdsa_raw_to_der(Curve::K256, &[]).is_err());
    }

    #[test]
    fn ec_points_wrapped_or_bare() {
        let mut point = vec![0x04];
        point.extend_from_slice(&[0xab; 64]);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend_from_slice(&point);
        assert_eq!(ec_point(Curve::P256, &wrapped).unwrap(), &point[..]);
        assert_eq!(ec_point(Curve::P256, &point).unwrap(), &point[..]);
        let mut long_form = vec![0x04, 0x81, 0x41];
        long_form.extend_from_slice(&point);
        assert_eq!(ec_point(Curve::P256, &long_form).unwrap(), &point[..]);
        // A compressed point, a truncated wrapper, nothing at all.
        assert!(
            ec_point(
                Curve::P256,
                &[0x04, 0x21, 0x02]
                    .iter()
                    .copied()
                    .chain([0; 32])
                    .collect::<Vec<_>>()
            )
            .is_err()
        );
        assert!(ec_point(Curve::P256, &wrapped[..40]).is_err());
        assert!(ec_point(Curve::P256, &[]).is_err());
    }

    #[test]
    fn spki_shapes() {
        let mut point = vec![0x04];
        point.extend_from_slice(&[0x11; 64]);
        let spki = ec_spki(Curve::P256, &point);
        // The fixed 26-byte prefix of every P-256 SPKI.
        let prefix = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
            0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        assert_eq!(spki[..26], prefix);
        assert_eq!(spki[26..], point[..]);
        let k = ec_spki(Curve::K256, &point);
        assert_eq!(k[..2], [0x30, 0x56]);
        assert_eq!(k.len(), 0x58);

        let mut n = vec![0xc5; 256];
        n[255] = 0x01;
        let rsa = rsa_spki(&n, &[0x01, 0x00, 0x01]);
        // SEQUENCE (0x122) { SEQUENCE { rsaEncryption, NULL }, BIT STRING (0x10f) { 00, SEQUENCE (0x10a) {
        // INTEGER (0x101) 00 ‖ n, INTEGER 65537 } } }
        assert_eq!(rsa[..4], [0x30, 0x82, 0x01, 0x22]);
        assert_eq!(
            rsa[4..19],
            [
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00
            ]
        );
        assert_eq!(rsa[19..24], [0x03, 0x82, 0x01, 0x0f, 0x00]);
        assert_eq!(
            rsa[24..33],
            [0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00]
        );
        assert_eq!(rsa[33..289], n[..]);
        assert_eq!(rsa[289..], [0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn the_digest_info_prefix_is_sha256s() {
        assert_eq!(SHA256_DIGEST_INFO_PREFIX.len() + 32, 51);
        assert_eq!(SHA256_DIGEST_INFO_PREFIX[1] as usize, 51 - 2);
    }
}
