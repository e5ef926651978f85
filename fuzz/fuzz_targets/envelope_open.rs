//! Arbitrary bytes opened as an envelope under a fixed data key (never a panic, never accepted), then
//! sealed as a plaintext: the round trip must hold and a flipped bit or another context must be refused.
//! The logic lives in `kmskit_core::envelope::format::fuzz_envelope_open` so a crash replays as a unit
//! test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kmskit_core::envelope::format::fuzz_envelope_open(data);
});
