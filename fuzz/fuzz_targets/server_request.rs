//! Arbitrary bytes as an HTTP request to kmskit-server (method, path, query, headers and body split at
//! NUL bytes), through request parsing, V2/V3 signature verification and response rendering, plus the
//! raw bytes as a form body and as an `Authorization` header. Any panic is a finding. The logic lives in
//! `kmskit_server::internal::fuzz_request` so a crash replays as an ordinary unit test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kmskit_server::internal::fuzz_request(data);
});
