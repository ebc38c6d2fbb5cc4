"""Token access for the console: ``?token=`` once, then an HttpOnly cookie; 401 otherwise."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

COOKIE = "cc_console"


def cookie_value(token: str) -> str:
    """What the cookie holds: a digest of the token, so the cookie jar never has the token."""
    return hashlib.sha256(b"callcenter-console:" + token.encode()).hexdigest()


def check(request: Request, token: str) -> Response | None:
    """None when the request may proceed; else the response to send instead.

    A valid ``?token=`` on a GET redirects to the same URL without it (so it does not linger in
    the address bar, history or Referer) and sets the cookie.
    """
    given = request.query_params.get("token")
    if given is not None and hmac.compare_digest(given.encode(), token.encode()):
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        url = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response: Response = RedirectResponse(url, status_code=303)
        response.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="strict")
        return response
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), cookie_value(token).encode()):
        return None
    return PlainTextResponse("401 Unauthorized: open the console with ?token=...", status_code=401)
