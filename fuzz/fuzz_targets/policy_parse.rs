//! Arbitrary bytes as a RAM-style policy document: parsing must never panic, a rejected document must
//! answer `InvalidParameter`, and an accepted one is evaluated and re-parses from its own text. The
//! logic lives in `kmskit_core::policy::fuzz_parse` so a crash replays as an ordinary unit test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kmskit_core::policy::fuzz_parse(data);
});
