#!/usr/bin/env bash
# Contender `nginx`: nginx (Debian's nginx-light) as a reverse proxy doing
# what it can of mcp-guard's checks, configured per the MCP transport needs:
#   - Host allow-list (a default server answers 421 to other Host values);
#   - Origin check with `map $http_origin` (absent or the loopback origins);
#   - MCP-Protocol-Version allow-list with `map` (absent or a known revision);
#   - `client_max_body_size 4m`; `limit_req` per client IP at ~100,000,000/min;
#   - mcp-guard's security headers (`add_header ... always`), Server hidden;
#   - the client's Authorization and Cookie not forwarded;
#   - `proxy_http_version 1.1` + upstream keepalive 64, `proxy_buffering off`
#     (SSE must stream event by event);
#   - access log off (mcp-guard writes no line per request either).
# It cannot do JWT, JSON-RPC inspection, policy, schema validation or audit.
# Runs with its own prefix/config under $BENCH_RUN_DIR/nginx/ in the
# foreground (`daemon off`, master PID recorded), never the system service.
# worker_processes = the CPUs this script may run on (run.sh pins it).
set -euo pipefail
CONTENDER=nginx
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}

do_install() {
    [[ -x $NGINX_BIN ]] && return 0
    blog "installing nginx-light from the distribution"
    if [[ $(id -u) -eq 0 ]]; then
        (apt-get install -y nginx-light || { apt-get update && apt-get install -y nginx-light; }) >&2 || bdie "apt-get install nginx-light failed"
    else
        (sudo apt-get install -y nginx-light || { sudo apt-get update && sudo apt-get install -y nginx-light; }) >&2 || bdie "apt-get install nginx-light failed"
    fi
}
do_version() { "$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'; }

do_start() {
    local port=$1 upstream=$2 hostport path dir workers
    [[ -x $NGINX_BIN ]] || bdie "nginx not found (run $0 install)"
    [[ $upstream =~ ^http://([^/]+)(/.*)$ ]] || bdie "upstream must be http://host:port/path"
    hostport=${BASH_REMATCH[1]} path=${BASH_REMATCH[2]}
    dir="$BENCH_RUN_DIR/nginx"
    workers=$(nproc)
    mkdir -p "$dir/logs" "$dir/tmp"
    chmod 0777 "$dir/tmp"
    cat >"$dir/nginx.conf" <<CONF
worker_processes $workers;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    map \$http_origin \$origin_ok {
        default 0;
        "" 1;
        "http://127.0.0.1:$port" 1;
        "http://localhost:$port" 1;
    }
    map \$http_mcp_protocol_version \$version_ok {
        default 0;
        "" 1;
        "2025-03-26" 1;
        "2025-06-18" 1;
        "2025-11-25" 1;
        "2026-07-28" 1;
    }
    # ~100,000,000 per minute per client IP: evaluated, never refuses here.
    limit_req_zone \$binary_remote_addr zone=mcp:10m rate=1666666r/s;
    upstream mcp_upstream {
        server $hostport;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port default_server;
        return 421;
    }
    server {
        listen 127.0.0.1:$port;
        server_name 127.0.0.1 localhost;
        client_max_body_size 4m;
        location = /health { return 200 "ok\n"; }
        location = /mcp {
            if (\$origin_ok = 0) { return 403; }
            if (\$version_ok = 0) { return 400; }
            limit_req zone=mcp burst=10000 nodelay;
            add_header X-Frame-Options DENY always;
            add_header X-Content-Type-Options nosniff always;
            add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;
            add_header Referrer-Policy no-referrer always;
            add_header Cache-Control no-store always;
            proxy_hide_header X-Powered-By;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $hostport;
            proxy_set_header Authorization "";
            proxy_set_header Cookie "";
            proxy_buffering off;
            proxy_read_timeout 60s;
            proxy_pass http://mcp_upstream$path;
        }
    }
}
CONF
    "$NGINX_BIN" -t -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >>"$(log_file)" 2>&1 || { tail -n 20 "$(log_file)" >&2; bdie "nginx -t failed"; }
    local argv=("$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;')
    record_argv "${argv[@]}"
    start_bg "${argv[@]}"
    wait_ready "$BG_PID" "$port" /health || { stop_all; exit 1; }
    printf 'http://127.0.0.1:%s/mcp\n' "$port"
}
contender_main "$@"
