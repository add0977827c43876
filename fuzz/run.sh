#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30); fails on any crash, leak or timeout.
#   bash fuzz/run.sh 30
# Installs a nightly toolchain and cargo-fuzz when they are missing. New inputs go to
# fuzz/corpus/<target> (gitignored), seeded from the committed fuzz/seeds/<target>; crash inputs
# land in fuzz/artifacts/<target>: copy the ones worth keeping to fuzz/regressions/<target>, which
# tests/decrypt/fuzz_regression.rs replays on stable.
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "installing the $TOOLCHAIN toolchain" >&2
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
targets=$(cargo "+$TOOLCHAIN" fuzz list)
cargo "+$TOOLCHAIN" fuzz build

failed=()
for target in $targets; do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== $target: ${SECONDS_PER_TARGET}s" >&2
    if ! cargo "+$TOOLCHAIN" fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 2>"corpus/$target.log"; then
        tail -n 40 "corpus/$target.log" >&2
        failed+=("$target")
    else
        grep -E '^(stat::number_of_executed_units|#[0-9]+ +DONE)' "corpus/$target.log" >&2 || true
    fi
done

if ((${#failed[@]})); then
    echo "fuzz targets that failed: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "all ${SECONDS_PER_TARGET}s fuzz runs passed" >&2
