"""``serve``'s part of agent registration: the directory into the store and the front, and the
front's contacts into the store while serving.

At start it reads ``settings.agents_file``, adds its agents to the shared ACD store and loads
their credentials into Kamailio; then ``RegistrarSync`` polls every ``acd.registrar_poll_s``.
After a Kamailio restart (the supervisor's job) the sync finds the front's credentials gone and
loads the file again by itself, so no hook into the supervisor is needed. Each agent state
change goes to ``on_change`` (``Service.on_agent_change``: ``serve`` publishes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from callcenter.settings import Settings
from telephony.acd.directory import Directory, DirectoryError, load_directory
from telephony.acd.registrar import RegistrarError, RegistrarRpc, RegistrarSync
from telephony.acd.store import AcdStore, StateChange
from telephony.kamailio import KamailioFront

log = logging.getLogger(__name__)


class AgentsRegistrar:
    """Runs the registrar sync for ``front`` while ``serve`` runs. ``start``/``stop``."""

    def __init__(self, settings: Settings, front: KamailioFront,
                 on_change: list[Callable[[StateChange], None]]) -> None:
        self.settings = settings
        self.store = AcdStore(settings.store_url)
        self.rpc = RegistrarRpc(front.rpc_url)
        self.sync = RegistrarSync(self.rpc, self.store, self._load, poll_s=settings.acd.registrar_poll_s,
                                  ready_on_register=settings.acd.ready_on_register, on_change=on_change)
        # the caller's list itself, so callbacks added later are called too
        self.sync.on_change = on_change
        self._last_good = Directory()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> Directory:
        """The agents file; a broken one keeps the last good directory (logged once per reload)."""
        try:
            self._last_good = load_directory(self.settings.agents_file)
        except DirectoryError as exc:
            log.error("agents file unusable, keeping the previous agents: %s", exc)
        return self._last_good

    async def start(self) -> None:
        try:
            await self.sync.load_credentials()
        except RegistrarError as exc:  # the sync retries once the front answers
            log.warning("registrar credentials not loaded yet: %s", exc)
        self._task = asyncio.create_task(self.sync.run(self._stop), name="registrar-sync")

    async def stop(self) -> None:
        """Idempotent."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
            self._task = None
        await self.rpc.aclose()
        await asyncio.to_thread(self.store.close)
