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

# --- SoftHSM2 for the PKCS#11 tests -----------------------------------------------------------------
# kmskit-pkcs11's tests and the pkcs11_softhsm example run on a real SoftHSM2 token. Install the module
# when it is missing, give it a private configuration (SOFTHSM2_CONF) whose token directory lives in
# $WORKDIR, initialise the example's token, and export what the tests and the example read. With CI set,
# a missing module is a failure (the tests would fail too), never a skip.
step "SoftHSM2 token for the PKCS#11 tests"
find_softhsm() {
    local m
    for m in "${KMSKIT_PKCS11_MODULE:-}" /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so; do
        if [ -n "$m" ] && [ -f "$m" ]; then
            echo "$m"
            return 0
        fi
    done
    return 1
}
SOFTHSM_MODULE=$(find_softhsm || true)
if [ -z "$SOFTHSM_MODULE" ] || ! command -v softhsm2-util >/dev/null 2>&1; then
    echo "softhsm2 is missing: installing it with apt-get"
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends softhsm2 || true
    fi
    SOFTHSM_MODULE=$(find_softhsm || true)
fi
if [ -n "$SOFTHSM_MODULE" ] && command -v softhsm2-util >/dev/null 2>&1; then
    mkdir -p "$WORKDIR/softhsm/tokens"
    printf '%s\n' "directories.tokendir = $WORKDIR/softhsm/tokens" "objectstore.backend = file" \
        "log.level = ERROR" "slots.removable = false" >"$WORKDIR/softhsm/softhsm2.conf"
    export SOFTHSM2_CONF="$WORKDIR/softhsm/softhsm2.conf"
    export KMSKIT_PKCS11_MODULE="$SOFTHSM_MODULE"
    # The example's token; the tests initialise tokens of their own in the same directory.
    export KMSKIT_PKCS11_TOKEN=kmskit-example
    export KMSKIT_PKCS11_PIN=1234
    softhsm2-util --init-token --free --label "$KMSKIT_PKCS11_TOKEN" --so-pin 5678 \
        --pin "$KMSKIT_PKCS11_PIN" >/dev/null
    echo "module $KMSKIT_PKCS11_MODULE, token $KMSKIT_PKCS11_TOKEN, SOFTHSM2_CONF=$SOFTHSM2_CONF"
else
    if [ -n "${CI:-}" ]; then
        echo "no SoftHSM2 module (softhsm2 could not be installed) and CI is set: the PKCS#11 tests cannot run" >&2
        exit 1
    fi
    echo "WARNING: no SoftHSM2 module: the PKCS#11 tests and example are skipped" >&2
    unset KMSKIT_PKCS11_MODULE || true
fi

# --- moto's KMS server for the AwsKms tests ---------------------------------------------------------
# kmskit-remote's AwsKms tests run against moto (`moto_server`), a local fake of AWS KMS, installed in a
# private venv when missing, started on 127.0.0.1 on a free port and stopped by the cleanup trap. The tests
# read its URL from KMSKIT_TEST_AWS_ENDPOINT; with CI set they fail when it is missing, never skip.
step "moto KMS server for the AwsKms tests"
MOTO_VENV="${KMSKIT_MOTO_VENV:-/var/tmp/kmskit-venv-moto}"
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    echo "installing moto[server] into $MOTO_VENV"
    if ! python3 -m venv "$MOTO_VENV" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv || true
        python3 -m venv "$MOTO_VENV" || true
    fi
    "$MOTO_VENV/bin/pip" install -q 'moto[server]' || true
fi
if [ -x "$MOTO_VENV/bin/moto_server" ]; then
    MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORKDIR/moto.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null; then break; fi
        sleep 0.2
    done
    export KMSKIT_TEST_AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
    export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
    echo "moto_server on $KMSKIT_TEST_AWS_ENDPOINT (pid ${PIDS[-1]})"
else
    if [ -n "${CI:-}" ]; then
        echo "moto_server could not be installed and CI is set: the AwsKms tests cannot run" >&2
        exit 1
    fi
    echo "WARNING: no moto_server: the AwsKms tests are skipped" >&2
    unset KMSKIT_TEST_AWS_ENDPOINT || true
fi

# --- static checks -----------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

# --- Python `cryptography` for crypto::asym's independent check -------------------------------------
# kmskit-core's asym_python test has Python `cryptography` verify kmskit's signatures (and decrypts its
# RSA-OAEP); with CI set it fails when KMSKIT_PYTHON is unset. Same venv as the interop step below.
VENV="${KMSKIT_VENV:-/var/tmp/kmskit-venv}"
if ! "$VENV/bin/python" -c 'import cryptography' 2>/dev/null; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" \
        || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install --quiet cryptography
fi
export KMSKIT_PYTHON="$VENV/bin/python"

# --- tests -------------------------------------------------------------------------------------------
step "cargo test (every crate, every feature)"
# Full-featured local backends must run every conformance case: a skip is a failure here.
KMSKIT_TESTKIT_NO_SKIP=1 cargo test --workspace --all-features --locked --exclude kmskit-remote

step "cargo test -p kmskit-remote (AwsKms vs moto: the cases moto cannot run are skipped by name)"
cargo test -p kmskit-remote --all-features --locked

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

# pkcs11_softhsm: a second run finds the first run's key in the token; a wrong PIN exits non-zero with its
# code.
if [ -n "${KMSKIT_PKCS11_MODULE:-}" ]; then
    cargo run --locked --quiet --example pkcs11_softhsm
    out=$(cargo run --locked --quiet --example pkcs11_softhsm)
    echo "$out"
    grep -q "from a previous run" <<<"$out" || { echo "pkcs11_softhsm did not find the first run's key" >&2; exit 1; }
    grep -q "decrypted: Hello HSM" <<<"$out" || { echo "pkcs11_softhsm did not decrypt" >&2; exit 1; }
    grep -q "signature made in the token verifies offline: true" <<<"$out" || { echo "pkcs11_softhsm: the token's EC signature did not verify" >&2; exit 1; }
    if out=$(KMSKIT_PKCS11_PIN=not-the-pin cargo run --locked --quiet --example pkcs11_softhsm 2>&1); then
        echo "pkcs11_softhsm accepted a wrong PIN" >&2; exit 1
    fi
    echo "$out"
    grep -q "Forbidden.NoPermission" <<<"$out" || { echo "wrong PIN: expected Forbidden.NoPermission" >&2; exit 1; }
fi

# envelope: 10 MiB through one data key; the cache saves provider calls on 10,000 small messages.
out=$(cargo run --locked --quiet --example envelope)
echo "$out"
grep -q "provider calls saved: 19980" <<<"$out" || { echo "envelope: the cache did not save the expected provider calls" >&2; exit 1; }

# rotation: three generations decrypt; after the floor is raised the oldest fails with its code.
out=$(cargo run --locked --quiet --example rotation)
echo "$out"
grep -q "old generation 1 ciphertext fails: Rejected.KeyVersionRetired (HTTP 409)" <<<"$out" || { echo "rotation: the retired version did not fail with Rejected.KeyVersionRetired" >&2; exit 1; }

# asymmetric: an EC_P256 signature verified offline from the PEM, RSA-OAEP round trip, SM2DSA.
out=$(cargo run --locked --quiet --example asymmetric)
echo "$out"
grep -q "verified offline with the PEM: true; a tampered release: false" <<<"$out" || { echo "asymmetric: offline verification failed" >&2; exit 1; }
grep -q "decrypted: wire-transfer PIN 4711" <<<"$out" || { echo "asymmetric: RSA-OAEP did not round-trip" >&2; exit 1; }
grep -q "SM2DSA over SM3(Z(A)||M): verified true" <<<"$out" || { echo "asymmetric: SM2DSA did not verify" >&2; exit 1; }

# db_field_encryption: SQLite column via the envelope, looked up through the keyed blind index.
out=$(cargo run --locked --quiet --example db_field_encryption)
echo "$out"
grep -q "via the blind index: row 2, Han Meimei, phone +86 139 1234 5678" <<<"$out" || { echo "db_field_encryption: the blind-index lookup failed" >&2; exit 1; }
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

step "kmskit-server interop: the official Alibaba Cloud Python SDKs (V2 and V3 signatures)"
# A private venv with both official SDKs, made once and reused (kept outside the clone).
VENV="${KMSKIT_VENV:-/var/tmp/kmskit-venv}"
if ! "$VENV/bin/python" -c 'import aliyunsdkkms, aliyunsdkcore, alibabacloud_kms20160120' 2>/dev/null; then
    command -v python3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
    python3 -m venv "$VENV" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet aliyun-python-sdk-core aliyun-python-sdk-kms alibabacloud-kms20160120
fi
cargo build --locked --quiet -p kmskit-server --bin kmskit-server
SERVER_BIN="$CARGO_TARGET_DIR/debug/kmskit-server"
# wait_port FILE PID: waits until the server wrote its port file (it does so once it accepts).
wait_port() {
    for _ in $(seq 1 100); do
        [ -s "$1" ] && { cat "$1"; return 0; }
        kill -0 "$2" 2>/dev/null || { echo "kmskit-server exited early" >&2; return 1; }
        sleep 0.1
    done
    echo "kmskit-server did not start" >&2
    return 1
}
# 1. Dev mode: a fresh temporary keystore and one all-powerful key from the environment.
KMSKIT_DEV_ACCESS_KEY_ID="LTAIinterop$RANDOM" KMSKIT_DEV_ACCESS_KEY_SECRET="$(head -c 24 /dev/urandom | base64)" \
    bash -c 'printf "%s\n%s\n" "$KMSKIT_DEV_ACCESS_KEY_ID" "$KMSKIT_DEV_ACCESS_KEY_SECRET" >"$1"; exec "$2" --dev --bind 127.0.0.1:0 --port-file "$3"' \
    _ "$WORKDIR/dev-key" "$SERVER_BIN" "$WORKDIR/dev.port" 2>"$WORKDIR/dev-server.log" &
PIDS+=($!)
dev_pid=$!
dev_port=$(wait_port "$WORKDIR/dev.port" "$dev_pid") || { cat "$WORKDIR/dev-server.log" >&2; exit 1; }
# 2. A configured server (file keystore, secrets from a file and the environment) with a restricted key.
mkdir -p "$WORKDIR/srv"
head -c 32 /dev/urandom | base64 >"$WORKDIR/srv/root.key"
head -c 24 /dev/urandom | base64 | tr -d '\n' >"$WORKDIR/srv/admin.secret"
export KMSKIT_INTEROP_READER_SECRET
KMSKIT_INTEROP_READER_SECRET=$(head -c 24 /dev/urandom | base64)
cat >"$WORKDIR/srv/server.toml" <<TOML
bind = "127.0.0.1:0"
host_id = "kms.interop.test"

[keystore]
dir = "$WORKDIR/srv/keystore"
root_key_file = "$WORKDIR/srv/root.key"

[[access_keys]]
id = "LTAIadmin"
secret_file = "$WORKDIR/srv/admin.secret"
principal = "admin"

[[access_keys]]
id = "LTAIreader"
secret_env = "KMSKIT_INTEROP_READER_SECRET"
principal = "reader"
actions = ["DescribeKey", "ListKeys"]
TOML
"$SERVER_BIN" --config "$WORKDIR/srv/server.toml" --port-file "$WORKDIR/cfg.port" 2>"$WORKDIR/cfg-server.log" &
PIDS+=($!)
cfg_pid=$!
cfg_port=$(wait_port "$WORKDIR/cfg.port" "$cfg_pid") || { cat "$WORKDIR/cfg-server.log" >&2; exit 1; }
if ! KMSKIT_ENDPOINT="127.0.0.1:$dev_port" KMSKIT_AK="$(sed -n 1p "$WORKDIR/dev-key")" KMSKIT_SK="$(sed -n 2p "$WORKDIR/dev-key")" \
    KMSKIT_DENIED_ENDPOINT="127.0.0.1:$cfg_port" KMSKIT_DENIED_AK=LTAIreader KMSKIT_DENIED_SK="$KMSKIT_INTEROP_READER_SECRET" \
    KMSKIT_DENIED_IDS="$WORKDIR/denied.ids" \
    "$VENV/bin/python" crates/kmskit-server/tests/interop/official_sdks.py; then
    echo "--- dev server log" >&2; tail -50 "$WORKDIR/dev-server.log" >&2
    echo "--- configured server log" >&2; tail -50 "$WORKDIR/cfg-server.log" >&2
    exit 1
fi
# The denial is in the configured server's access log (and, below, in its audit trail).
grep -q 'action="CreateKey" principal="reader" status=403 code="Forbidden.NoPermission"' "$WORKDIR/cfg-server.log" \
    || { echo "the denied CreateKey is not in the access log" >&2; exit 1; }
grep -q "NOT FOR PRODUCTION" "$WORKDIR/dev-server.log" || { echo "dev mode did not warn" >&2; exit 1; }
# Graceful shutdown on SIGTERM: both exit 0.
for pid in "$dev_pid" "$cfg_pid"; do
    kill -TERM "$pid"
    wait "$pid" || { echo "kmskit-server $pid did not shut down cleanly" >&2; exit 1; }
done
# Each denied CreateKey (one per SDK) is in the configured server's audit trail (<keystore>/audit, flushed
# at shutdown) under the RequestId the SDK got, as a Denied event of principal "reader".
"$VENV/bin/python" - "$WORKDIR/srv/keystore/audit" "$WORKDIR/denied.ids" <<'PY' || exit 1
import glob, json, os, sys
events = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl"))):
    for line in open(f):
        if line.strip():
            e = json.loads(line)
            events[e["RequestId"]] = e
ids = [l.strip() for l in open(sys.argv[2]) if l.strip()]
assert len(ids) == 3, f"expected 3 denied RequestIds, got {ids}"
for rid in ids:
    e = events.get(rid)
    assert e is not None, f"denied call {rid} is not in the audit trail ({len(events)} events)"
    assert (e["Action"], e["Principal"], e["Outcome"], e["Code"]) == ("CreateKey", "reader", "Denied", "Forbidden.NoPermission"), e
print(f"audit: the {len(ids)} denied CreateKey calls are in the trail ({len(events)} events)")
PY
unset KMSKIT_INTEROP_READER_SECRET
# 3. The same scenario against `kmskit serve --dev` over the command-line tool's own keystore.
cargo build --locked --quiet -p kmskit-cli --bin kmskit
# The configured server's trail, read with the command-line tool (no root key needed): the denied CreateKey
# calls of "reader", and an intact chain.
out=$(KMSKIT_DATA_DIR="$WORKDIR/cli-data" "$CARGO_TARGET_DIR/debug/kmskit" audit lookup --keystore "$WORKDIR/srv/keystore" \
    --action CreateKey --principal reader -o json)
for rid in $(cat "$WORKDIR/denied.ids"); do
    grep -q "$rid" <<<"$out" || { echo "kmskit audit lookup does not show the denied call $rid: $out" >&2; exit 1; }
done
grep -q '"Denied"' <<<"$out" || { echo "kmskit audit lookup: no Denied outcome: $out" >&2; exit 1; }
KMSKIT_DATA_DIR="$WORKDIR/cli-data" "$CARGO_TARGET_DIR/debug/kmskit" audit verify --keystore "$WORKDIR/srv/keystore" \
    || { echo "kmskit audit verify failed on the server's trail" >&2; exit 1; }
KMSKIT_DATA_DIR="$WORKDIR/cli-data" KMSKIT_DEV_ACCESS_KEY_ID=LTAIcliserve KMSKIT_DEV_ACCESS_KEY_SECRET=cli-serve-secret \
    "$CARGO_TARGET_DIR/debug/kmskit" serve --dev --bind 127.0.0.1:0 --port-file "$WORKDIR/cli.port" 2>"$WORKDIR/cli-server.log" &
PIDS+=($!)
cli_pid=$!
cli_port=$(wait_port "$WORKDIR/cli.port" "$cli_pid") || { cat "$WORKDIR/cli-server.log" >&2; exit 1; }
KMSKIT_ENDPOINT="127.0.0.1:$cli_port" KMSKIT_AK=LTAIcliserve KMSKIT_SK=cli-serve-secret \
    "$VENV/bin/python" crates/kmskit-server/tests/interop/official_sdks.py \
    || { echo "--- kmskit serve log" >&2; tail -50 "$WORKDIR/cli-server.log" >&2; exit 1; }
kill -TERM "$cli_pid"
wait "$cli_pid" || { echo "kmskit serve did not shut down cleanly" >&2; exit 1; }

# remote_envelope: kmskit-server in-process on an ephemeral 127.0.0.1 port, AliyunKms envelope-encrypts a
# file through it, another replica opens it.
out=$(cargo run --locked --quiet --example remote_envelope)
echo "$out"
grep -q "opened by another replica: identical" <<<"$out" || { echo "remote_envelope: the file did not round-trip through AliyunKms" >&2; exit 1; }

step "docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked --quiet

# --- fuzz smoke run ----------------------------------------------------------------------------------
if [ -z "${KMSKIT_SKIP_FUZZ:-}" ] && [ -f fuzz/Cargo.toml ]; then
    step "fuzz smoke run"
    "$ROOT/scripts/fuzz-smoke.sh"
fi

step "all checks passed"
