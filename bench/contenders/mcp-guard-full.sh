#!/usr/bin/env bash
# Contender `mcp-guard-full`: the release mcp-guard with every layer on:
#   - JWT auth, ES256, a static key from a PEM file (warm: no JWKS fetch),
#     and a long-lived token minted here (printed as a HEADER line);
#   - Host/Origin, protocol version, 4 MiB body limit, security headers,
#     JSON inspection (defaults);
#   - rate limit per principal at 100,000,000/min (evaluated, never refuses);
#   - a policy: default allow, a deny rule on `crash` (tools/list filtered);
#   - tool argument validation against inputSchema (the default "enforce");
#   - audit log to a file (one JSON line per request).
# The key pair, token and config are made under $BENCH_RUN_DIR/mcp-guard-full/
# with openssl and python3 (standard library only).
set -euo pipefail
CONTENDER=mcp-guard-full
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
do_install() {
    need_guard_bin
    command -v openssl >/dev/null || bdie "openssl is required"
    command -v python3 >/dev/null || bdie "python3 is required"
}
do_version() { "$GUARD_BIN" --version; }

# mint_token DIR AUDIENCE: an ES256 JWT signed with DIR/key.pem, valid 7 days.
mint_token() {
    local dir=$1 aud=$2
    python3 - "$dir" "$aud" <<'PY'
import base64, json, subprocess, sys, time
d, aud = sys.argv[1], sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
header = {"alg": "ES256", "typ": "JWT"}
claims = {"iss": "https://issuer.bench.invalid", "sub": "bench-client", "aud": aud,
          "iat": now, "nbf": now, "exp": now + 7 * 86400, "scope": "mcp:tools"}
signing_input = (b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                 b64(json.dumps(claims, separators=(",", ":")).encode())).encode()
der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{d}/key.pem"],
                     input=signing_input, capture_output=True, check=True).stdout
# DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each (JWS ES256).
def read_int(buf, i):
    assert buf[i] == 0x02
    n = buf[i + 1]
    return int.from_bytes(buf[i + 2:i + 2 + n], "big"), i + 2 + n
i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
r, i = read_int(der, i)
s, _ = read_int(der, i)
sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
print(signing_input.decode() + "." + b64(sig))
PY
}

do_start() {
    local port=$1 upstream=$2
    [[ -x $GUARD_BIN ]] || bdie "not built: $GUARD_BIN (run $0 install)"
    local dir="$BENCH_RUN_DIR/$CONTENDER" resource="http://127.0.0.1:$port/mcp"
    mkdir -p "$dir"
    if [[ ! -f $dir/key.pem ]]; then
        openssl ecparam -name prime256v1 -genkey -noout -out "$dir/key.pem" 2>/dev/null || bdie "openssl ecparam failed"
        openssl ec -in "$dir/key.pem" -pubout -out "$dir/pub.pem" 2>/dev/null || bdie "openssl ec failed"
    fi
    cat >"$dir/mcp-guard.toml" <<TOML
[server]
listen = "127.0.0.1:$port"

[upstream]
url = "$upstream"

[auth]
resource = "$resource"

[auth.jwt]
issuer = "https://issuer.bench.invalid"
keys = [{ alg = "ES256", pem_file = "$dir/pub.pem" }]

[rate_limit]
per_minute = 100000000

[policy]
default = "allow"
[[policy.rules]]
principals = ["*"]
effect = "deny"
tools = ["crash"]

[audit]
output = "file"
path = "$dir/audit.jsonl"
max_file_size = "64MiB"
max_files = 2
TOML
    local token
    token=$(mint_token "$dir" "$resource") || bdie "minting the token failed"
    "$GUARD_BIN" check-config "$dir/mcp-guard.toml" >/dev/null 2>>"$(log_file)" || { tail -n 20 "$(log_file)" >&2; bdie "check-config failed"; }
    local argv=("$GUARD_BIN" --config "$dir/mcp-guard.toml")
    record_argv "${argv[@]}"
    start_bg "${argv[@]}"
    wait_ready "$BG_PID" "$port" /health || { stop_all; exit 1; }
    printf 'HEADER: Authorization: Bearer %s\n' "$token"
    printf '%s\n' "$resource"
}
contender_main "$@"
