"""The front's registrar, seen from Python: who may register, and who is reachable where.

Kamailio (``telephony/kamailio_front.cfg``) checks agents' REGISTERs and feature-code INVITEs
with digest auth against an in-memory htable ``agents`` (agent id → HA1) and keeps their
contacts in memory (usrloc ``db_mode`` 0): no database module is available to it. Python fills
that table and reads the contacts over Kamailio's JSON-RPC over HTTP, on a loopback-only port
(``KamailioFront.rpc_url``). A restarted Kamailio has lost both: ``RegistrarSync`` notices (the
``acd`` table no longer holds the realm it wrote) and loads the credentials again; the phones
come back with their next re-REGISTER.

``RegistrarSync`` polls the contacts into the shared ``AcdStore`` (so an agent whose phone
registers becomes ready, one whose registration is gone is logged out) and hands each
``StateChange`` to its callbacks (``serve`` publishes them as ``AgentStateChanged``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from telephony.acd.directory import Directory
from telephony.acd.store import AcdStore, StateChange

log = logging.getLogger(__name__)

CREDENTIALS_TABLE = "agents"
"""htable of agent id → HA1 (the cfg's ``$sht(agents=>$au)``)."""
SETTINGS_TABLE = "acd"
"""htable holding ``realm``; empty after a Kamailio restart."""
LOCATION_TABLE = "location"
RESYNC_S = 30.0
"""Unchanged contacts are still written to the store this often (another process may have
changed an agent's row, e.g. a worker syncing the directory)."""


class RegistrarError(RuntimeError):
    """The front's JSON-RPC did not answer (``code`` None), or answered with an error."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RegistrarRpc:
    """Kamailio's JSON-RPC (htable, usrloc) at ``url``. ``transport``: a test seam
    (``httpx.MockTransport``)."""

    def __init__(self, url: str, *, timeout_s: float = 3.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._ids = itertools.count(1)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, method: str, *params: str) -> Any:
        """One JSON-RPC request; its ``result`` (``RegistrarError`` on any failure)."""
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": next(self._ids)}
        try:
            resp = await self._client.post(self.url, json=body)
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RegistrarError(f"{method}: front RPC unreachable ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise RegistrarError(f"{method}: unexpected answer")
        if "error" in data:
            err = data["error"] or {}
            code = err.get("code")
            raise RegistrarError(f"{method}: {code} {err.get('message')}",
                                 code if isinstance(code, int) else None)
        return data.get("result")

    async def set_credentials(self, directory: Directory) -> None:
        """Make the front's credentials the directory's: every agent with an HA1 may register,
        no one else (agents removed from the file lose their registration too). Keys are
        replaced, not flushed first, so a reload never refuses a registered agent meanwhile."""
        wanted = {a.id: a.ha1 for a in directory.agents if a.ha1}
        held = await self._keys(CREDENTIALS_TABLE)
        for agent_id, ha1 in wanted.items():
            await self.call("htable.sets", CREDENTIALS_TABLE, agent_id, ha1)
        for agent_id in held - wanted.keys():
            await self.call("htable.delete", CREDENTIALS_TABLE, agent_id)
            await self.call("ul.rm", LOCATION_TABLE, agent_id)
        # Written last: its presence means "credentials loaded" (see ``credentials_loaded``).
        await self.call("htable.sets", SETTINGS_TABLE, "realm", directory.realm)

    async def credentials_loaded(self) -> bool:
        """False on a front that (re)started since ``set_credentials``."""
        try:
            await self.call("htable.get", SETTINGS_TABLE, "realm")
        except RegistrarError as exc:
            if exc.code is not None:  # "Key name doesn't exist in htable."
                return False
            raise
        return True

    async def contacts(self) -> dict[str, str]:
        """Agent id → contact URI of every registered phone (the most recent, when several)."""
        return parse_ul_dump(await self.call("ul.dump"))

    async def _keys(self, table: str) -> set[str]:
        slots = await self.call("htable.dump", table) or []
        return {str(item["name"]) for slot in slots for item in slot.get("slot", [])}


def parse_ul_dump(result: Any) -> dict[str, str]:
    """``ul.dump``'s ``{"Domains": [{"Domain": {"AoRs": [{"Info": {"AoR", "Contacts":
    [{"Contact": {"Address", "Last-Modified"...}}]}}]}}]}`` → AoR → newest contact."""
    out: dict[str, str] = {}
    for dom in (result or {}).get("Domains", []):
        for aor in dom.get("Domain", {}).get("AoRs", []) or []:
            info = aor.get("Info", {})
            contacts = [c.get("Contact", {}) for c in info.get("Contacts", []) or []]
            contacts = [c for c in contacts if c.get("Address")]
            if contacts:
                newest = max(contacts, key=lambda c: int(c.get("Last-Modified", 0) or 0))
                out[str(info.get("AoR", ""))] = str(newest["Address"])
    return out


ChangeCallback = Callable[[StateChange], None]


class RegistrarSync:
    """Keeps the front's credentials loaded and the store's registrations current.

    ``load`` returns the agents directory (read again whenever credentials are pushed: at start
    and after a front restart); ``on_change`` gets every ``StateChange`` (a list: ``serve`` adds
    its publishers)."""

    def __init__(self, rpc: RegistrarRpc, store: AcdStore, load: Callable[[], Directory], *,
                 poll_s: float = 1.0, ready_on_register: bool = True,
                 on_change: ChangeCallback | Sequence[ChangeCallback] = ()) -> None:
        self.rpc = rpc
        self.store = store
        self.load = load
        self.poll_s = poll_s
        self.ready_on_register = ready_on_register
        self.on_change: list[ChangeCallback] = [on_change] if callable(on_change) else list(on_change)
        self.directory = Directory()
        self._applied: dict[str, str] | None = None
        self._applied_at = 0.0

    async def load_credentials(self) -> None:
        """Read the directory, add its agents to the store, load its credentials into the front."""
        self.directory = await asyncio.to_thread(self.load)
        changes = await asyncio.to_thread(self.store.sync_directory, self.directory,
                                          ready_on_register=self.ready_on_register)
        self._emit(changes)
        await self.rpc.set_credentials(self.directory)
        self._applied = None  # write the registrations anew
        log.info("registrar credentials loaded for %d agent(s)", sum(1 for a in self.directory.agents if a.ha1))

    async def poll_once(self) -> list[StateChange]:
        """One round: credentials reloaded if the front lost them, contacts into the store."""
        if not await self.rpc.credentials_loaded():
            await self.load_credentials()
        contacts = await self.rpc.contacts()
        now = time.monotonic()
        if contacts == self._applied and now - self._applied_at < RESYNC_S:
            return []
        static = [a.id for a in self.directory.agents if a.contact]
        changes = await asyncio.to_thread(self.store.set_registrations, contacts,
                                          ready_on_register=self.ready_on_register, static=static)
        self._applied, self._applied_at = contacts, now
        self._emit(changes)
        return changes

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``poll_s`` until ``stop``; a front that is down (restarting) is retried."""
        failing = False
        while not stop.is_set():
            try:
                await self.poll_once()
                if failing:
                    log.warning("registrar reachable again")
                failing = False
            except RegistrarError as exc:
                if not failing:
                    log.warning("registrar sync paused: %s", exc)
                failing = True
            except Exception:  # a database hiccup must not end the sync
                log.exception("registrar sync failed")
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                pass

    def _emit(self, changes: list[StateChange]) -> None:
        for change in changes:
            for callback in self.on_change:
                try:
                    callback(change)
                except Exception:  # one broken subscriber must not stop the others
                    log.exception("agent state callback failed")
