#!/usr/bin/env python3
"""W4's load tool: N concurrent GET SSE streams, each in its own MCP session.

For each stream, on one keep-alive connection: POST initialize (take
Mcp-Session-Id and the negotiated version), POST notifications/initialized,
then GET with `Accept: text/event-stream` + the session id, and keep reading
(discarding) until the server ends it. Set-up runs with bounded concurrency;
once every stream has been attempted the streams are held HOLD seconds and
then counted. Meanwhile the gateway's VmRSS is sampled (if a PID is given).

Standard library only (asyncio streams, a minimal HTTP/1.1 client), so any
python3 >= 3.8 runs it.

Usage: w4_streams.py URL --streams N --hold S [--pid PID] [--concurrency C]
       [--header 'Name: value']...
Prints one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

INIT = (
    '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    '"capabilities":{},"clientInfo":{"name":"bench-w4","version":"1"}}}'
)
INITIALIZED = '{"jsonrpc":"2.0","method":"notifications/initialized"}'


class Failure(Exception):
    pass


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of pid in KiB, or (0, 0)."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def fd_limit(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return b""  # 202/204 and the like


def result_of(body: bytes) -> dict | None:
    text = body.decode("utf-8", "replace")
    for candidate in [text] + [l[5:].strip() for l in text.splitlines() if l.startswith("data:")]:
        try:
            msg = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(msg, dict) and "result" in msg:
            return msg["result"]
    return None


class Stream:
    def __init__(self, host: str, port: int, path: str, extra: list[tuple[str, str]]):
        self.host, self.port, self.path, self.extra = host, port, path, extra
        self.writer: asyncio.StreamWriter | None = None
        self.open = False
        self.closed_reason: str | None = None

    def request(self, method: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
        data = body.encode()
        lines = [f"{method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.extra + headers]
        if method == "POST":
            lines.append(f"Content-Length: {len(data)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    async def setup(self) -> asyncio.StreamReader:
        try:
            reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        except OSError as exc:
            raise Failure(f"connect: {exc.__class__.__name__}") from exc
        post = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        self.writer.write(self.request("POST", post, INIT))
        status, headers = await read_head(reader)
        body = await read_body(reader, headers)
        if status != 200:
            raise Failure(f"initialize {status}")
        result = result_of(body)
        if result is None:
            raise Failure("initialize: no result")
        session = headers.get("mcp-session-id")
        if not session:
            raise Failure("initialize: no session id")
        sess = [("Mcp-Session-Id", session), ("MCP-Protocol-Version", result.get("protocolVersion", "2025-03-26"))]
        self.writer.write(self.request("POST", post + sess, INITIALIZED))
        status, headers = await read_head(reader)
        await read_body(reader, headers)
        if status not in (200, 202):
            raise Failure(f"initialized {status}")
        self.writer.write(self.request("GET", [("Accept", "text/event-stream")] + sess))
        status, headers = await read_head(reader)
        if status != 200:
            raise Failure(f"GET {status}")
        if not headers.get("content-type", "").startswith("text/event-stream"):
            raise Failure("GET: not text/event-stream")
        return reader

    async def run(self, sem: asyncio.Semaphore, outcomes: Counter) -> None:
        async with sem:
            try:
                reader = await asyncio.wait_for(self.setup(), 60)
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                reason = str(exc) if isinstance(exc, Failure) else exc.__class__.__name__
                outcomes[reason] += 1
                self.close()
                return
        self.open = True
        outcomes["opened"] += 1
        try:
            while await reader.read(65536):
                pass
            self.closed_reason = "eof"
        except Exception as exc:  # noqa: BLE001
            self.closed_reason = exc.__class__.__name__
        self.open = False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--header", action="append", default=[])
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    url = urlsplit(args.url)
    extra = [tuple(p.strip() for p in h.split(":", 1)) for h in args.header if ":" in h]
    streams = [Stream(url.hostname, url.port or 80, url.path or "/", extra) for _ in range(args.streams)]
    outcomes: Counter = Counter()
    sem = asyncio.Semaphore(args.concurrency)

    peak_rss = 0

    async def sample() -> None:
        nonlocal peak_rss
        while True:
            if args.pid:
                peak_rss = max(peak_rss, rss_kib(args.pid)[0])
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    rss_before = rss_kib(args.pid)[0] if args.pid else 0
    started = time.monotonic()
    tasks = [asyncio.create_task(s.run(sem, outcomes)) for s in streams]
    # Every stream attempted: all set-ups done (each one either failed or is open).
    while sum(outcomes.values()) < len(streams):
        await asyncio.sleep(0.1)
    setup_s = time.monotonic() - started
    opened = sum(s.open for s in streams)
    await asyncio.sleep(args.hold)
    still_open = sum(s.open for s in streams)
    rss, hwm = rss_kib(args.pid) if args.pid else (0, 0)
    sampler.cancel()
    closed = Counter(s.closed_reason for s in streams if s.closed_reason)
    for s in streams:
        s.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    failures = {k: v for k, v in outcomes.items() if k != "opened"}
    out = {
        "open_streams": still_open,
        "target": args.streams,
        "opened": opened,
        "setup_s": round(setup_s, 2),
        "hold_s": args.hold,
        "rss_mb": round(rss / 1024, 1) if args.pid else None,
        "peak_rss_mb": round(max(hwm, peak_rss) / 1024, 1) if args.pid else None,
        "rss_before_mb": round(rss_before / 1024, 1) if args.pid else None,
        "failures": failures,
        "closed_during_hold": dict(closed),
        "client_fd_limit": soft,
        "gateway_fd_limit": fd_limit(args.pid) if args.pid else None,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
