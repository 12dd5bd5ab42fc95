#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets), or those named after the
# seconds, for the given seconds each (default 10), from its committed corpus (fuzz/corpus/<target>); what a run
# finds is kept in fuzz/target/corpus, and a crash in fuzz/artifacts/<target>,
# failing the script. `scripts/fuzz.sh 600` is a ten-minute run of each.
# cargo fuzz needs the nightly compiler: the installed nightly when there is
# one, else the stable compiler with its nightly features unlocked.
set -euo pipefail
seconds="${1:-10}"
shift || true
cd "$(dirname "$0")/.."

if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
# No sanitizer: the targets are safe Rust, and libFuzzer still finds panics,
# overflows (debug assertions are on), hangs and runaway memory.
fuzz=(cargo "${toolchain[@]}" fuzz)
"${fuzz[@]}" build --sanitizer none
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <("${fuzz[@]}" list)
for target in "${targets[@]}"; do
    found="fuzz/target/corpus/$target"
    mkdir -p "$found"
    echo "fuzz: $target for ${seconds}s"
    log="fuzz/target/$target.log"
    if ! "${fuzz[@]}" run --sanitizer none "$target" "$found" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz: $target failed (its input is in fuzz/artifacts/$target)"
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' "$log" || true
done
