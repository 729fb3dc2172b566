#!/usr/bin/env bash
# Installs the OpenID Provider used by mcp-guard's end-to-end tests.
#
# Usage: tests/oidc/install.sh
#
# Installs tests/oidc/package.json exactly as locked in tests/oidc/package-lock.json
# (npm ci: oidc-provider and its dependencies, plus a Node 22 runtime from the npm
# `node` package, since oidc-provider supports Node 22 LTS and later only) into
# <repo>/.tools/oidc. Idempotent: nothing is done while the installed copy matches
# the manifest and lockfile. Progress goes to stderr; the last line on stdout is
# the node binary to run tests/oidc/server.mjs with.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SRC/../.." && pwd)
readonly SRC REPO
readonly TOOLS="$REPO/.tools/oidc"
readonly NODE="$TOOLS/node_modules/node/bin/node"

log() { printf '[oidc] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installed = the manifest and lockfile npm ci last succeeded with are the current
# ones (copied only after success), and the runtime and provider are in place.
installed() {
    cmp -s "$SRC/package.json" "$TOOLS/package.json" &&
        cmp -s "$SRC/package-lock.json" "$TOOLS/package-lock.json" &&
        [[ -f $TOOLS/.installed ]] &&
        [[ -f $TOOLS/node_modules/oidc-provider/package.json ]] &&
        "$NODE" --version >/dev/null 2>&1
}

install() {
    command -v npm >/dev/null || die "npm is required"
    log "installing $SRC/package-lock.json into $TOOLS"
    rm -f -- "$TOOLS/.installed"
    cp -- "$SRC/package.json" "$SRC/package-lock.json" "$TOOLS/"
    # The `node` package fetches its platform binary in a preinstall script,
    # so scripts must stay enabled. stdout is reserved for the node path.
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
    "$NODE" --version >/dev/null 2>&1 ||
        die "npm ci finished but $NODE does not run (did npm skip the node package's preinstall script?)"
    : >"$TOOLS/.installed"
    log "installed node $("$NODE" --version), oidc-provider $("$NODE" -p 'require(process.argv[1]).version' "$TOOLS/node_modules/oidc-provider/package.json")"
}

mkdir -p "$TOOLS"
# Test runners may call this concurrently; one installs, the others wait for it.
exec 9>"$TOOLS/.lock"
if command -v flock >/dev/null; then
    flock 9
fi
installed || install
printf '%s\n' "$NODE"
