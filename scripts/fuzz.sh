#!/usr/bin/env bash
# Short, fixed-length fuzzing of the parsers of untrusted input (see fuzz/README.md):
# installs cargo-fuzz into .tools/cargo if missing, replays every saved crash under
# fuzz/regressions/, then runs each cargo-fuzz target for a fixed number of iterations
# from its committed seed corpus. Exits non-zero if any input crashes, hangs or fails
# an invariant; the crashing input is left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                 # every target, 20000 runs each
#   scripts/fuzz.sh 200000 manifest # more runs, one target
#
# Environment: FUZZ_RUNS (default 20000), FUZZ_SEED (libFuzzer seed, default 1 so that CI
# runs are repeatable; 0 picks a random one), FUZZ_SANITIZER (none, the default, or
# address), FUZZ_TIMEOUT (seconds one input may take, default 10).
#
# Only the stable toolchain exists here: cargo-fuzz's nightly flags (-Zsanitizer, the
# sancov passes) are enabled with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-${FUZZ_RUNS:-20000}}"
shift || true
SEED="${FUZZ_SEED:-1}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
CARGO_FUZZ_VERSION=0.13.2

TOOLS="$PWD/.tools/cargo"
export PATH="$TOOLS/bin:$PATH"
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS"
fi
export RUSTC_BOOTSTRAP=1

cd fuzz
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
# An address-sanitized build gets its own target dir, so switching never rebuilds the other.
target_dir="target"
[ "$SANITIZER" = none ] || target_dir="target-$SANITIZER"
echo "fuzz.sh: building ${targets[*]} (sanitizer $SANITIZER)"
if [ "$#" -eq 0 ]; then
    cargo fuzz build --sanitizer "$SANITIZER" --target-dir "$target_dir"
else
    for t in "${targets[@]}"; do cargo fuzz build --sanitizer "$SANITIZER" --target-dir "$target_dir" "$t"; done
fi
host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$host/release"

failed=()
passed=0

# 1. Every saved crash, one process each so all of them are reported.
for t in "${targets[@]}"; do
    [ -d "regressions/$t" ] || continue
    for f in "regressions/$t"/*; do
        [ -f "$f" ] || continue
        if "$bin_dir/$t" -runs=1 "$f" >"$f.log.tmp" 2>&1; then
            passed=$((passed + 1))
        else
            echo "fuzz.sh: REGRESSION $f still fails:"
            grep -A3 -m1 "panicked at" "$f.log.tmp" | sed 's/^/    /' || tail -5 "$f.log.tmp" | sed 's/^/    /'
            failed+=("$f")
        fi
        rm -f "$f.log.tmp"
    done
done

# 2. A fixed number of fuzzing iterations per target. New inputs go to a scratch corpus;
#    the committed seeds (the second directory) are only read.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    log="$scratch/$t.log"
    start="$(date +%s.%N)"
    if "$bin_dir/$t" "$scratch/$t" "corpus/$t" -runs="$RUNS" -seed="$SEED" -timeout="$TIMEOUT" \
        -rss_limit_mb=2048 -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 </dev/null; then
        execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
        cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
        awk -v t="$t" -v n="${execs:-0}" -v s="$start" -v e="$(date +%s.%N)" -v c="${cov:-cov: ?}" \
            'BEGIN { d = e - s; printf "fuzz.sh: %s: ok, %d runs in %.1fs (%.0f exec/s, %s)\n", t, n, d, n / d, c }'
        passed=$((passed + 1))
    else
        echo "fuzz.sh: $t: CRASH (log below; input saved under fuzz/artifacts/$t/)"
        grep -E -A12 "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY" "$log" | head -40 | sed 's/^/    /'
        grep -E "Test unit written to" "$log" | sed 's/^/    /' || true
        failed+=("$t")
    fi
done

echo "fuzz: $passed passed, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: failing: ${failed[*]}"
    echo "fuzz.sh: reproduce in fuzz/ with: RUSTC_BOOTSTRAP=1 PATH=$TOOLS/bin:\$PATH cargo fuzz run --sanitizer $SANITIZER TARGET INPUT"
    echo "fuzz.sh: minimise with cargo fuzz tmin, save it under fuzz/regressions/TARGET/ (see fuzz/README.md)"
    exit 1
fi
