"""The seed guide's FastAPI app (`src/web_chat/main.py`), its `/chat` endpoint
replaced by a reverse proxy of `/mcp` to an upstream MCP server.

As in the guide: CORSMiddleware on CORS_ORIGINS (the guide's "CORS and Origin
Validation" setting), the four security middlewares registered with
`app.add_middleware`, and slowapi rate limiting on the endpoint with
`@limiter.limit(f"{RATE_LIMIT_PER_MINUTE}/minute")` keyed by client address
(in-process memory storage, so per worker, as the guide configures it).
The benchmark sets RATE_LIMIT_PER_MINUTE high enough never to trigger, so the
limiter's bookkeeping is measured, not its refusals.

What had to change to proxy: the endpoint forwards POST/GET/DELETE /mcp to
UPSTREAM_URL with one shared `httpx.AsyncClient` (keep-alive pool, created in
the lifespan), hop-by-hop headers dropped both ways; `text/event-stream`
answers are streamed through chunk by chunk (StreamingResponse over
`aiter_raw`), JSON answers are read and returned whole.

Environment: UPSTREAM_URL (required), CORS_ORIGINS (JSON list, as in the
guide's .env), RATE_LIMIT_PER_MINUTE, ENVIRONMENT, MAX_REQUEST_SIZE (bytes).
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import StreamingResponse
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.background import BackgroundTask

from security_middleware import (
    OriginValidationMiddleware,
    ProtocolVersionMiddleware,
    RequestSizeLimitMiddleware,
    SecurityHeadersMiddleware,
)

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s")

UPSTREAM_URL = os.environ["UPSTREAM_URL"]
CORS_ORIGINS: list[str] = json.loads(
    os.environ.get("CORS_ORIGINS", '["http://localhost:3000", "http://localhost:8000"]')
)
RATE_LIMIT_PER_MINUTE = int(os.environ.get("RATE_LIMIT_PER_MINUTE", "60"))
ENVIRONMENT = os.environ.get("ENVIRONMENT", "development")
MAX_REQUEST_SIZE = int(os.environ.get("MAX_REQUEST_SIZE", str(10 * 1024 * 1024)))

# RFC 9110 7.6.1 connection-specific fields, plus what httpx/uvicorn set themselves.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}

client: httpx.AsyncClient | None = None


@asynccontextmanager
async def lifespan(_app: FastAPI):
    global client
    # One pooled client per worker. No read timeout: GET SSE streams stay open
    # as long as the client keeps them.
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, read=None),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
    )
    yield
    await client.aclose()


limiter = Limiter(key_func=get_remote_address)
app = FastAPI(title="web_chat MCP proxy", lifespan=lifespan)
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)

# Starlette runs the last-added middleware first: origin, then protocol
# version, then size, with security headers added to whatever comes back.
app.add_middleware(SecurityHeadersMiddleware, environment=ENVIRONMENT)
app.add_middleware(RequestSizeLimitMiddleware, max_size=MAX_REQUEST_SIZE)
app.add_middleware(ProtocolVersionMiddleware)
app.add_middleware(OriginValidationMiddleware, allowed_origins=CORS_ORIGINS)
app.add_middleware(
    CORSMiddleware,
    allow_origins=CORS_ORIGINS,
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
    expose_headers=["Mcp-Session-Id"],
)


@app.get("/health")
async def health():
    return {"status": "healthy"}


@app.api_route("/mcp", methods=["POST", "GET", "DELETE"])
@limiter.limit(f"{RATE_LIMIT_PER_MINUTE}/minute")
async def mcp_proxy(request: Request):
    assert client is not None
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
    body = await request.body()
    upstream_request = client.build_request(request.method, UPSTREAM_URL, headers=headers, content=body)
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.HTTPError as exc:
        logging.getLogger("web_chat.proxy").warning("upstream_error: %r", exc)
        return Response(status_code=502, content=b'{"error": "Bad Gateway"}', media_type="application/json")
    # uvicorn sets its own Date and Server.
    response_headers = {
        k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in ("date", "server")
    }
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=response_headers,
            background=BackgroundTask(upstream.aclose),
        )
    # Raw bytes, as the Content-Encoding header passed through describes them.
    content = b"".join([chunk async for chunk in upstream.aiter_raw()])
    await upstream.aclose()
    return Response(content=content, status_code=upstream.status_code, headers=response_headers)
