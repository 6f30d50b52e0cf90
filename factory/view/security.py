"""Who may talk to the viewer, and what a page may do once loaded.

- Loopback by default. A non-loopback bind is refused without a token; with one, every request needs
  `Authorization: Bearer TOKEN` or the cookie that opening `/?token=TOKEN` sets, compared in constant time.
- On a loopback bind the `Host` header must name the loopback too, so a web page that rebinds its own
  domain to 127.0.0.1 (DNS rebinding) cannot read the store through the visitor's browser.
- Every response carries a Content-Security-Policy allowing only the viewer's own script and style files:
  row content is untrusted model output, and even if it escaped the templates it could not run.
- Writes (human review) carry a CSRF token and must come from the viewer's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from factory.errors import BadInput

COOKIE = "factory_view"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make form posts say `Origin: null`
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_token(host: str, token: str | None) -> str | None:
    """The token to require for a bind: refuses a non-loopback host without one; `auto` makes one."""
    if token == "auto":
        return secrets.token_urlsafe(24)
    if token is not None and len(token) < 8:
        raise BadInput("--token must be at least 8 characters (or 'auto')")
    if token is None and not is_loopback(host):
        raise BadInput(f"--host {host} is not a loopback address: anyone who can reach it could read the store; "
                       "pass --token TOKEN (or --token auto) to require one")
    return token


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """ASGI middleware: the host check, the token check and the security headers on every response."""

    def __init__(self, app, token: str | None, loopback_only: bool):
        self.app, self.token, self.loopback_only = app, token, loopback_only
        # the cookie holds a digest of the token, so a leaked cookie jar does not print the token itself
        self.cookie_value = hashlib.sha256(b"factory-view:" + token.encode()).hexdigest() if token else ""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.loopback_only and not is_loopback(_hostname(headers.get("host", ""))):
            await _plain(send_secured, 400, "bad Host header: this viewer answers on the loopback only")
            return
        if self.token:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if "token" in query:
                if not same(query["token"], self.token):
                    await _plain(send_secured, 401, "wrong token")
                    return
                rest = urlencode({k: v for k, v in query.items() if k != "token"})
                # never off-site: browsers read `//host` and `/\host` as another site; quoting keeps CR/LF (a
                # header split) and other bytes out of the Location header
                path = "/" + quote(scope["path"].lstrip("/\\"))
                location = path + (f"?{rest}" if rest else "")
                cookie = f"{COOKIE}={self.cookie_value}; HttpOnly; SameSite=Strict; Path=/"
                await _plain(send_secured, 303, "", [(b"location", location.encode()),
                                                      (b"set-cookie", cookie.encode())])
                return
            if not self._authorized(headers):
                await _plain(send_secured, 401, "this viewer needs a token: open /?token=TOKEN or send "
                                                "'Authorization: Bearer TOKEN'",
                             [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send_secured)

    def _authorized(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and same(auth[7:].strip(), self.token or ""):
            return True
        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no credential
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and same(morsel.value, self.cookie_value)


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _plain(send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def check_origin(headers, csrf_expected: str, csrf_given: str) -> None:
    """A write must carry this server's CSRF token and, when the browser says where it comes from, our origin."""
    origin = headers.get("origin")
    host = headers.get("host", "")
    if origin and origin not in (f"http://{host}", f"https://{host}"):
        raise PermissionError("cross-origin write refused")
    if not csrf_given or not same(csrf_given, csrf_expected):
        raise PermissionError("missing or wrong CSRF token: reload the page and try again")
