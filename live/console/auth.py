"""Who may use the console.

The console token: ``?token=`` once, then an HttpOnly cookie holding a digest of it; 401
otherwise. It opens everything (operators, supervisors' wallboards).

Agents: their own id and password (checked by the injected ``AgentConsole.login``), then a
signed session cookie that opens only the agent's page, their API and the static files (and the
queue view for supervisors). The cookie holds the agent id, an expiry and a random nonce, signed
with HMAC-SHA256; logging out revokes the nonce. Both cookies are HttpOnly, SameSite=Strict, and
Secure when the console is served over https.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

COOKIE = "cc_console"
AGENT_COOKIE = "cc_agent"
AGENT_SESSION_S = 12 * 3600
"""An agent's session lasts a long shift; then they log in again."""


def cookie_value(token: str) -> str:
    """What the cookie holds: a digest of the token, so the cookie jar never has the token."""
    return hashlib.sha256(b"callcenter-console:" + token.encode()).hexdigest()


def secure(request: Request) -> bool:
    """Whether cookies set in answer to ``request`` should be Secure (served over https)."""
    return request.url.scheme == "https"


def has_token(request: Request, token: str) -> bool:
    """Whether the request carries the console token's cookie."""
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), cookie_value(token).encode())


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
        response.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="strict",
                            secure=secure(request))
        return response
    if has_token(request, token):
        return None
    return PlainTextResponse("401 Unauthorized: open the console with ?token=...", status_code=401)


def session_secret(token: str) -> bytes:
    """The default key of agent sessions: derived from the console token, so sessions survive a
    restart and whoever changes the token also ends every agent session."""
    return hmac.new(token.encode(), b"callcenter-agent-session", hashlib.sha256).digest()


class AgentSessions:
    """Signed agent session cookies: ``agent_id:expires:nonce:signature``."""

    def __init__(self, secret: bytes, *, ttl_s: float = AGENT_SESSION_S,
                 clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must have at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock
        self._revoked: dict[str, float] = {}

    def issue(self, agent_id: str) -> str:
        body = f"{agent_id}:{int(self._clock() + self.ttl_s)}:{secrets.token_hex(8)}"
        return f"{body}:{self._sign(body)}"

    def agent_of(self, value: str) -> str | None:
        """The agent id of a valid, unexpired, unrevoked cookie value; else None."""
        try:
            body, signature = value.rsplit(":", 1)
            agent_id, expires, nonce = body.rsplit(":", 2)
            expiry = int(expires)
        except ValueError:
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        if expiry < self._clock() or nonce in self._revoked or not agent_id:
            return None
        return agent_id

    def revoke(self, value: str) -> None:
        """End the session ``value`` (logout) before its expiry."""
        if self.agent_of(value) is None:
            return
        body = value.rsplit(":", 1)[0]
        _, expires, nonce = body.rsplit(":", 2)
        now = self._clock()
        self._revoked = {n: t for n, t in self._revoked.items() if t >= now}
        self._revoked[nonce] = float(expires)

    def set_cookie(self, response: Response, request: Request, agent_id: str) -> None:
        response.set_cookie(AGENT_COOKIE, self.issue(agent_id), max_age=int(self.ttl_s),
                            httponly=True, samesite="strict", secure=secure(request))

    def clear_cookie(self, response: Response, request: Request) -> None:
        self.revoke(request.cookies.get(AGENT_COOKIE, ""))
        response.delete_cookie(AGENT_COOKIE, httponly=True, samesite="strict", secure=secure(request))

    def from_request(self, request: Request) -> str | None:
        value = request.cookies.get(AGENT_COOKIE, "")
        return self.agent_of(value) if value else None

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
