#!/usr/bin/env bash
# Compares the file_encryption example (kmskit-stream, parallel, aws-lc-rs) encrypting a large file on
# tmpfs against rage (age) and against a plain `cp` of the same file (the I/O floor). Minimum of RUNS
# runs each; also the example's peak RSS at two file sizes (memory must not grow with the file).
#
#   benches/stream_vs_rage.sh                 # 1 GiB, 5 runs
#   SIZE_MIB=256 RUNS=3 benches/stream_vs_rage.sh
#
# Installs rage with `cargo install rage --locked` when it is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZE_MIB="${SIZE_MIB:-1024}"
RUNS="${RUNS:-5}"
TMPFS="${TMPFS:-/dev/shm}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kmskit-target}"

if ! command -v rage >/dev/null 2>&1 || ! command -v rage-keygen >/dev/null 2>&1; then
    echo "installing rage (cargo install rage --locked)" >&2
    cargo install rage --locked >&2
    export PATH="$HOME/.cargo/bin:$PATH"
fi

cargo build --release --quiet -p kmskit-examples --example file_encryption
BIN="$CARGO_TARGET_DIR/release/examples/file_encryption"

DIR=$(mktemp -d "$TMPFS/kmskit-bench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
export KMSKIT_ROOT_KEY
KMSKIT_ROOT_KEY=$(head -c 32 /dev/urandom | base64)

head -c "$((SIZE_MIB << 20))" /dev/urandom >"$DIR/in"
rage-keygen -o "$DIR/age.key" 2>/dev/null
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$DIR/age.key" | head -n1)

# Warm-up: creates the key in the keystore, faults in the binaries.
"$BIN" --keystore "$DIR/ks" encrypt "$DIR/in" "$DIR/out.kms" >/dev/null
rm -f "$DIR/out.kms"

now() { date +%s.%N; }
# min_time NAME OUTPUT CMD...: prints the minimum wall time of RUNS runs, removing OUTPUT before each.
min_time() {
    local out=$1
    shift
    local best=""
    for _ in $(seq "$RUNS"); do
        rm -f "$out"
        sync
        local t0 t1 dt
        t0=$(now)
        "$@" >/dev/null
        t1=$(now)
        dt=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$dt < $best" | bc -l)" = 1 ]; then best=$dt; fi
    done
    rm -f "$out"
    echo "$best"
}

T_CP=$(min_time "$DIR/out.cp" cp "$DIR/in" "$DIR/out.cp")
T_RAGE=$(min_time "$DIR/out.age" rage -e -r "$RECIPIENT" -o "$DIR/out.age" "$DIR/in")
T_KMS=$(min_time "$DIR/out.kms" "$BIN" --keystore "$DIR/ks" encrypt "$DIR/in" "$DIR/out.kms")

# Decryption check and time (not a target, for the record).
"$BIN" --keystore "$DIR/ks" encrypt "$DIR/in" "$DIR/out.kms" >/dev/null
T_DEC=$(min_time "$DIR/back" "$BIN" --keystore "$DIR/ks" decrypt "$DIR/out.kms" "$DIR/back")
"$BIN" --keystore "$DIR/ks" decrypt "$DIR/out.kms" "$DIR/back" >/dev/null
cmp -s "$DIR/in" "$DIR/back" || { echo "round trip mismatch" >&2; exit 1; }
rm -f "$DIR/back"

# Peak RSS at the full size and at a quarter of it.
rss() {
    rm -f "$DIR/rss.out"
    /usr/bin/time -f %M "$BIN" --keystore "$DIR/ks" encrypt "$1" "$DIR/rss.out" 2>&1 >/dev/null | tail -n1
}
RSS_FULL=$(rss "$DIR/in")
head -c "$(((SIZE_MIB / 4) << 20))" "$DIR/in" >"$DIR/in.quarter"
RSS_QUARTER=$(rss "$DIR/in.quarter")
rm -f "$DIR/rss.out" "$DIR/in.quarter" "$DIR/out.kms"

printf 'file: %d MiB on %s, min of %d runs, %d cores\n' "$SIZE_MIB" "$TMPFS" "$RUNS" "$(nproc)"
printf '  cp                 %.3f s\n' "$T_CP"
printf '  rage -e            %.3f s\n' "$T_RAGE"
printf '  file_encryption    %.3f s   (decrypt %.3f s)\n' "$T_KMS" "$T_DEC"
printf '  speed vs rage      %.2fx   (target >= 2.5x)\n' "$(echo "$T_RAGE / $T_KMS" | bc -l)"
printf '  time vs cp         %.2fx   (target <= 1.5x)\n' "$(echo "$T_KMS / $T_CP" | bc -l)"
printf '  peak RSS           %s KiB at %d MiB, %s KiB at %d MiB\n' "$RSS_FULL" "$SIZE_MIB" "$RSS_QUARTER" "$((SIZE_MIB / 4))"
