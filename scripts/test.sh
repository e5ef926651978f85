#!/usr/bin/env bash
# kmskit's test command: installs what the tests need when it is missing, starts the servers they need
# (on 127.0.0.1 only), runs the fmt check, clippy with -D warnings and every test, then stops the servers.
#
#   scripts/test.sh            # everything
#   KMSKIT_SKIP_FUZZ=1 scripts/test.sh   # skip the fuzz smoke run
#
# The build cache lives outside the clone (CARGO_TARGET_DIR, default /var/tmp/kmskit-target) so fresh
# clones on the same machine reuse it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kmskit-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# Servers started below talk to 127.0.0.1 only; make sure no proxy intercepts that.
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy || true

PIDS=()
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/kmskit-test.XXXXXX")
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORKDIR"
    exit "$rc"
}
trap cleanup EXIT INT TERM

step_start=0
step() {
    local now
    now=$(date +%s)
    if [ "$step_start" -ne 0 ]; then
        echo "    (took $((now - step_start)) s)"
    fi
    step_start=$now
    echo
    echo "==> $*"
}

# --- tools -------------------------------------------------------------------------------------------
step "checking the Rust toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed; install Rust (https://rustup.rs) first" >&2
    exit 1
fi
cargo --version
if command -v rustup >/dev/null 2>&1; then
    for c in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
    done
fi

# --- static checks -----------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

# --- tests -------------------------------------------------------------------------------------------
step "cargo test (every crate, every feature)"
# Full-featured local backends must run every conformance case: a skip is a failure here.
KMSKIT_TESTKIT_NO_SKIP=1 cargo test --workspace --all-features --locked

step "cargo test (pure-Rust engine only: kmskit-core without aws-lc)"
cargo test -p kmskit-core --no-default-features --features rust-crypto,testkit --locked

step "the set-up command: cargo run --example quickstart"
out=$(cargo run --locked --quiet --example quickstart)
echo "$out"
grep -q "decrypted: Hello KMS" <<<"$out" || { echo "quickstart did not print the decrypted 'Hello KMS'" >&2; exit 1; }

step "examples"
cargo run --locked --quiet --example lifecycle

# file_keystore: a second run decrypts what the first wrote; a wrong root key exits non-zero with its code.
ks="$WORKDIR/keystore"
export KMSKIT_ROOT_KEY
KMSKIT_ROOT_KEY=$(head -c 32 /dev/urandom | base64)
cargo run --locked --quiet --example file_keystore -- "$ks"
out=$(cargo run --locked --quiet --example file_keystore -- "$ks")
echo "$out"
grep -q "decrypted the previous run.s ciphertext" <<<"$out" || { echo "file_keystore did not decrypt the first run's message" >&2; exit 1; }
if out=$(KMSKIT_ROOT_KEY=$(head -c 32 /dev/urandom | base64) \
    cargo run --locked --quiet --example file_keystore -- "$ks" 2>&1); then
    echo "file_keystore accepted a wrong root key" >&2; exit 1
fi
echo "$out"
grep -q "Forbidden.NoPermission" <<<"$out" || { echo "wrong root key: expected Forbidden.NoPermission" >&2; exit 1; }

# file_encryption: encrypt, decrypt in a later process, compare; rewrap; a tampered file leaves no output.
fe() { cargo run --locked --quiet --example file_encryption -- --keystore "$WORKDIR/fe-keys" "$@"; }
head -c 3000000 /dev/urandom >"$WORKDIR/plain"
fe encrypt "$WORKDIR/plain" "$WORKDIR/plain.kms"
fe rewrap "$WORKDIR/plain.kms"
fe decrypt "$WORKDIR/plain.kms" "$WORKDIR/plain.out"
cmp "$WORKDIR/plain" "$WORKDIR/plain.out"
# Flip one bit in the body (XOR, so the byte always changes).
byte=$(dd if="$WORKDIR/plain.kms" bs=1 skip=2000000 count=1 status=none | od -An -tu1 | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$WORKDIR/plain.kms" bs=1 seek=2000000 conv=notrunc status=none
if fe decrypt "$WORKDIR/plain.kms" "$WORKDIR/tampered.out"; then
    echo "file_encryption decrypted a tampered file" >&2; exit 1
fi
[ ! -e "$WORKDIR/tampered.out" ] || { echo "file_encryption left an output file after a failure" >&2; exit 1; }
unset KMSKIT_ROOT_KEY

# access_control: the role matrix (a CryptoUser encrypts, a SecurityAdmin and an Auditor may not) and
# dual control (no self-approval; a second admin's approval runs the request).
out=$(cargo run --locked --quiet --example access_control)
echo "$out"
grep -Eq "^Encrypt +deny +allow +deny$" <<<"$out" || { echo "access_control: unexpected Encrypt row" >&2; exit 1; }
grep -Eq "^DisableKey +allow +deny +deny$" <<<"$out" || { echo "access_control: unexpected DisableKey row" >&2; exit 1; }
grep -q "bob approves -> key is Disabled" <<<"$out" || { echo "access_control: dual control did not run" >&2; exit 1; }

# audit: lookup of the last day's Encrypt/Decrypt events, then verify pinpoints the edited line 3.
out=$(cargo run --locked --quiet --example audit)
echo "$out"
grep -q "lookup Encrypt/Decrypt in the last day: 7 events" <<<"$out" || { echo "audit: unexpected lookup" >&2; exit 1; }
grep -Eq "verify after edit: .*jsonl:3 \(event 3\)" <<<"$out" || { echo "audit: verify did not name line 3" >&2; exit 1; }

step "docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked --quiet

# --- fuzz smoke run ----------------------------------------------------------------------------------
if [ -z "${KMSKIT_SKIP_FUZZ:-}" ] && [ -f fuzz/Cargo.toml ]; then
    step "fuzz smoke run"
    "$ROOT/scripts/fuzz-smoke.sh"
fi

step "all checks passed"
