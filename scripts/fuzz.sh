#!/usr/bin/env bash
# Runs one fuzz target for a while: scripts/fuzz.sh TARGET SECONDS
#
# Uses a nightly toolchain when one is installed, otherwise the stable one with
# RUSTC_BOOTSTRAP=1. Without a sanitizer runtime (always the case on stable) it builds with
# `-s none`: libFuzzer's coverage guidance still works, and the targets check their own
# properties. New inputs go to fuzz/corpus-work/TARGET (not committed); the seed corpus in
# fuzz/corpus/TARGET is read, never written. Crashes land in fuzz/artifacts/TARGET.
set -euo pipefail

target=${1:?usage: scripts/fuzz.sh TARGET SECONDS (targets: rpc_parse line_framing policy_load search_page path_rules host_rules plugin_response seccomp_filter)}
seconds=${2:-60}
cd "$(dirname "$0")/../fuzz"

if [[ ! -f "fuzz_targets/${target}.rs" ]]; then
    echo "unknown target ${target}; see fuzz/fuzz_targets/" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

toolchain=()
sanitizer=(-s none)
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
    sanitizer=()
else
    export RUSTC_BOOTSTRAP=1
fi

mkdir -p "corpus-work/${target}"
exec cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "${target}" \
    "corpus-work/${target}" "corpus/${target}" -- \
    -max_total_time="${seconds}" -max_len=65536 -print_final_stats=1
