//! Arbitrary bytes as a ciphertext blob and as an encryption context, through `MemoryKms::decrypt` with a
//! fixed key (raw, as Base64 text, and behind a valid header so the AEAD path is reached), then as
//! plaintext for a round trip whose bit-flipped blob must be refused. Any panic, untyped error or accepted
//! forgery is a finding. The logic lives in `kmskit_memory::internal::fuzzing` so a crash replays as an
//! ordinary unit test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kmskit_memory::internal::fuzzing::blob_decrypt(data);
});
