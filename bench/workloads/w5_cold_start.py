"""W5: cold start to the first answered request.

Spawns the contender's recorded command (NUL-separated argv file written by
its start script; a leading `env VAR=value ...` is applied here instead of
exec'ing env) in a new session, pinned to --cpus, then polls its endpoint
with a raw HTTP/1.1 POST tools/call `echo` (re-trying every 0.5 ms while
the port refuses) until a 200 whose body carries a JSON-RPC "result"; the
time from spawn to that answer is one sample. The process group is then
killed and reaped. Prints one JSON line with cold_start_ms (median) and the
samples. Python 3 standard library only.
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, time
from urllib.parse import urlsplit

BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'


def request_bytes(url, headers):
    u = urlsplit(url)
    lines = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {u.netloc}",
             "Content-Type: application/json", "Accept: application/json, text/event-stream",
             "MCP-Protocol-Version: 2025-11-25", f"Content-Length: {len(BODY)}", "Connection: close"]
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + BODY, (u.hostname, u.port or 80)


def try_once(req, addr):
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b'"result"' in data:
                break
    return data.startswith(b"HTTP/1.1 200") and b'"result"' in data


def one(argv, env, cpus, req, addr, pid_file, timeout):
    def pin():
        if cpus:
            os.sched_setaffinity(0, cpus)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=pin)
    with open(pid_file, "a") as f:
        f.write(f"{proc.pid}\n")
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before answering")
            try:
                if try_once(req, addr):
                    return (time.perf_counter() - t0) * 1000.0
            except OSError:
                pass
            time.sleep(0.0005)
        raise RuntimeError(f"no answer within {timeout}s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--argv-file", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cpus", default="")
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    argv = open(a.argv_file, "rb").read().split(b"\0")
    argv = [x.decode() for x in argv if x]
    env = dict(os.environ)
    if argv and os.path.basename(argv[0]) == "env":
        argv = argv[1:]
        while argv and "=" in argv[0] and not argv[0].startswith("-"):
            k, v = argv.pop(0).split("=", 1)
            env[k] = v
    headers = [h.strip() for h in os.environ.get("BENCH_HEADERS", "").splitlines() if h.strip()]
    req, addr = request_bytes(a.url, headers)
    cpus = {int(c) for c in a.cpus.split(",") if c.strip()}
    samples = []
    for _ in range(a.runs):
        samples.append(one(argv, env, cpus, req, addr, a.pid_file, a.timeout))
        time.sleep(0.2)
    print(json.dumps({"cold_start_ms": round(statistics.median(samples), 2),
                      "cold_start_min_ms": round(min(samples), 2),
                      "cold_start_samples_ms": [round(s, 2) for s in samples]}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one JSON line either way
        print(json.dumps({"error": str(e)}))
        sys.exit(1)
