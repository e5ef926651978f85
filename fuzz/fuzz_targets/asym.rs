//! Arbitrary bytes as the untrusted inputs of `kmskit_core::crypto::asym` (private and public keys,
//! signatures, PEM, RSA-OAEP and SM2PKE ciphertexts): never a panic. The logic lives in
//! `kmskit_core::crypto::asym::fuzz_one` so a crash replays as an ordinary unit test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kmskit_core::crypto::asym::fuzz_one(data);
});
