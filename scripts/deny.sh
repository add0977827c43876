#!/usr/bin/env bash
# Supply-chain checks: cargo-deny bans, licenses and sources (see deny.toml and SECURITY.md).
#
#   bash scripts/deny.sh
#
# Installs cargo-deny if it is missing (a few minutes of compiling, once per machine). Checks the
# default build (the `aws-lc` backend), then every feature together (adds the `rust-crypto`
# backend, `fetch`, `openssl-bench`). The advisory check needs the online RustSec database and is
# not run here: `cargo deny check advisories` (SECURITY.md, "Supply chain").
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    echo "deny.sh: installing cargo-deny (cargo install cargo-deny --locked)"
    cargo install cargo-deny --locked
fi
cargo deny --version

echo "deny.sh: default features"
# The `signature 2` skip in deny.toml only matters with `rust-crypto`; in the default build it is
# unnecessary by design, so that one lint is allowed here.
cargo deny check -A unnecessary-skip bans licenses sources

echo "deny.sh: all features"
cargo deny --all-features check bans licenses sources

echo "deny.sh: bans ok, licenses ok, sources ok (default and all features)"
