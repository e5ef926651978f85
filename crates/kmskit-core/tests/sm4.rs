//! SM4 against its standards: the GB/T 32907-2016 example for the block cipher kmskit ships, and the
//! RFC 8998 SM4-GCM vector through every AEAD engine (both hand SM4 to the same implementation), plus
//! tampering and wrong key lengths.

use kmskit_core::crypto::{Algorithm, NONCE_LEN, TAG_LEN, all_engines};
use sm4::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// GB/T 32907-2016, Appendix A, example 1: one block.
#[test]
fn gbt_32907_block_example() {
    let key = hex("0123456789abcdeffedcba9876543210");
    let cipher = sm4::Sm4::new_from_slice(&key).expect("16-byte key");
    let mut block = GenericArray::clone_from_slice(&key);
    cipher.encrypt_block(&mut block);
    assert_eq!(block.as_slice(), hex("681edf34d206965e86b3e94f536e4246"));
}

/// RFC 8998, Appendix A.1: SM4-GCM.
#[test]
fn rfc8998_sm4_gcm_vector() {
    let key = hex("0123456789ABCDEFFEDCBA9876543210");
    let nonce: [u8; NONCE_LEN] = hex("00001234567800000000ABCD").try_into().expect("12 bytes");
    let aad = hex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
    let pt = hex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD
         EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA");
    let ct = hex("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735
         D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D");
    let tag = hex("83DE3541E4C2B58177E065A9BF7B62EC");
    for engine in all_engines() {
        let k = engine.new_key(Algorithm::Sm4Gcm, &key).expect("SM4 key");
        assert_eq!(k.algorithm(), Algorithm::Sm4Gcm);
        let mut buf = pt.clone();
        let t = k.seal_in_place_detached(&nonce, &aad, &mut buf).expect("seal");
        assert_eq!(buf, ct, "{}: ciphertext", engine.name());
        assert_eq!(t.to_vec(), tag, "{}: tag", engine.name());

        let mut sealed = ct.clone();
        sealed.extend_from_slice(&tag);
        let mut out = vec![0u8; pt.len()];
        k.open_to(&nonce, &aad, &sealed, &mut out).expect("open_to");
        assert_eq!(out, pt);
        let mut buf = sealed.clone();
        k.open_in_place(&nonce, &aad, &mut buf).expect("open");
        assert_eq!(buf, pt);

        // Every single-bit flip of ciphertext or tag is refused, and leaves no plaintext behind.
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let mut out = vec![0u8; pt.len()];
            assert!(k.open_to(&nonce, &aad, &bad, &mut out).is_err(), "bit {i}");
            assert!(out.iter().all(|b| *b == 0), "bit {i}: no plaintext escapes");
        }
        let mut short = sealed[..TAG_LEN - 1].to_vec();
        assert!(k.open_in_place(&nonce, &aad, &mut short).is_err());
        let mut wrong_aad = sealed.clone();
        assert!(k.open_in_place(&nonce, b"other", &mut wrong_aad).is_err());
    }
}

#[test]
fn sm4_takes_16_byte_keys_only() {
    assert_eq!(Algorithm::Sm4Gcm.key_len(), 16);
    assert_eq!(Algorithm::from_id(3).expect("id 3"), Algorithm::Sm4Gcm);
    for engine in all_engines() {
        for len in [0, 15, 17, 32] {
            let e = engine
                .new_key(Algorithm::Sm4Gcm, &vec![1; len])
                .expect_err("wrong length");
            assert_eq!(e.code().as_str(), "InvalidParameter", "{len} bytes");
        }
        // And AES-256 still refuses a 16-byte key.
        assert!(engine.new_key(Algorithm::Aes256Gcm, &[1; 16]).is_err());
    }
}
