#!/usr/bin/env bash
# Supply-chain checks, offline, against the RustSec snapshot in ../shared:
# cargo deny (advisories, bans, licenses, sources; rules in deny.toml) and
# cargo audit (the same advisory database, RustSec's own matcher). Either
# finding anything fails the run; informational advisories (unmaintained,
# unsound) fail it too, as they do in cargo deny.
#
# Installs what is missing: cargo-deny with cargo (as before), cargo-audit
# into .tools/ (a pinned version, ~5 CPU-minutes to build once).
#
#   usage: scripts/supply-chain.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prepare=../shared/supply-chain/prepare-advisory-db.sh
if [[ ! -f $prepare ]]; then
  echo "no ../shared/supply-chain: the advisory database snapshot is missing" >&2
  exit 1
fi
# Its last line is the checkout cargo deny reads by default; cargo audit is pointed at it.
db=$(bash "$prepare" | tail -n 1)

# --offline metadata needs every locked crate present, platform-specific ones included.
cargo fetch --locked --quiet

if ! cargo deny --version >/dev/null 2>&1; then
  cargo install --locked cargo-deny
fi
cargo deny --offline check

audit_version=0.22.2
audit_root=.tools/cargo-audit-$audit_version
if [[ ! -x $audit_root/bin/cargo-audit ]]; then
  cargo install --locked --quiet cargo-audit --version "$audit_version" --root "$audit_root"
fi
# --no-yanked: yanked-crate checks need the live crates.io index.
"$audit_root/bin/cargo-audit" audit --db "$db" --no-fetch --no-yanked --deny warnings
