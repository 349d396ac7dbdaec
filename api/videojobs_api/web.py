"""The web app for video makers: plain ES modules served at `/` under a strict Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videojobs.settings import Settings, StorageBackend

WEB_ROOT = Path(__file__).parent / "web"
ASSETS_PATH = "/web"
AWS_S3_ORIGINS = "https://*.amazonaws.com"


def storage_origin(runner: Settings) -> str | None:
    """The origin presigned video URLs point at (S3 storage), which the page's `<video>` must be allowed."""
    if runner.storage_backend is not StorageBackend.S3:
        return None
    if runner.s3_endpoint_url is None:
        return AWS_S3_ORIGINS
    endpoint = urlsplit(runner.s3_endpoint_url)
    return f"{endpoint.scheme}://{endpoint.netloc}"


def content_security_policy(runner: Settings) -> str:
    """Scripts, styles and API calls from this origin only; media also from blobs and the S3 origin."""
    media = " ".join(filter(None, ["'self'", "blob:", storage_origin(runner)]))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob:",
            f"media-src {media}",
            "connect-src 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


class WebSecurityHeaders:
    """Adds the CSP and hardening headers to the web app's responses (the API's JSON needs none)."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = {
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",  # signed video URLs never leak to another site
            "Cache-Control": "no-cache",  # revalidate (ETag) so an upgrade is seen at once
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith(f"{ASSETS_PATH}/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_web_app(app: FastAPI, runner: Settings) -> None:
    """Serve the page at `/` and its modules and styles under /web, with the security headers."""
    app.mount(ASSETS_PATH, StaticFiles(directory=WEB_ROOT), name="web")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_ROOT / "index.html", media_type="text/html")

    app.add_middleware(WebSecurityHeaders, policy=content_security_policy(runner))
