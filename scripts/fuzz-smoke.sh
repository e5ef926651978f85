#!/usr/bin/env bash
# Builds every fuzz target on stable (sanitizer none) and runs each for a short, bounded time.
# cargo-fuzz is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
SECS="${KMSKIT_FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export CARGO_TARGET_DIR="${KMSKIT_FUZZ_TARGET_DIR:-/var/tmp/kmskit-fuzz-target}"
# libfuzzer-sys needs nightly-only flags; RUSTC_BOOTSTRAP lets stable rustc accept them.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "fuzzing $target for ${SECS}s"
    cargo fuzz run -s none "$target" "corpus/$target" -- -max_total_time="$SECS" -rss_limit_mb=2048
done
