"""The ACD as the console and the live feed see it: the agents directory and the shared store
bound into the callables ``live`` asks for (``live`` imports neither ``telephony`` nor us).

``build_agent_console`` gives the console's agent logins, states and queue view;
``build_acd_feed`` the task that keeps the retained queue snapshots and agent states on MQTT.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any

from callcenter.settings import Settings
from live.acd_feed import DEFAULT_INTERVAL_S, AcdFeed, FeedSink
from live.console.agents import AgentConsole, SupervisionChannel
from speech.events import AgentStatus
from telephony.acd.directory import (
    Directory,
    DirectoryError,
    check_password,
    hash_password,
    load_directory,
)
from telephony.acd.store import AcdStore

log = logging.getLogger(__name__)


class DirectoryFile:
    """The agents file, read again when it changes (``callcenter agents add`` while serving);
    a file that became invalid keeps the last good directory (and says so in the log)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._directory = Directory()

    def get(self) -> Directory:
        try:
            stat = self.path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._directory = load_directory(self.path if stamp is not None else None)
                except DirectoryError as exc:
                    log.warning("keeping the previous agents directory: %s", exc)
            return self._directory


class _Logins:
    """Password checks that take as long for an unknown agent as for a known one."""

    def __init__(self, directory: DirectoryFile) -> None:
        self.directory = directory
        self._decoy: str | None = None

    def __call__(self, agent_id: str, password: str) -> bool:
        agent = self.directory.get().get(agent_id)
        if agent is None or not agent.password_hash:
            if self._decoy is None:
                self._decoy = hash_password("decoy")
            check_password(password, self._decoy)
            return False
        return check_password(password, agent.password_hash)


def _agents(store: AcdStore, directory: DirectoryFile) -> list[dict[str, Any]]:
    """Every agent of the directory with their state in the store (logged out until the store
    knows them)."""
    rows = {r.agent_id: r for r in store.agents()}
    out = []
    for agent in directory.get().agents:
        row = rows.get(agent.id)
        out.append({
            "agent_id": agent.id, "name": agent.name, "supervisor": agent.supervisor,
            "skills": list(agent.skills),
            "state": (row.state if row else AgentStatus.LOGGED_OUT).value,
            "reason": row.reason if row else "", "call_id": row.call_id if row else "",
            "since": row.since if row else 0.0, "registered": row.registered if row else False,
        })
    return out


def _set_state(store: AcdStore, agent_id: str, state: str, reason: str) -> dict[str, Any] | None:
    change = store.set_state(agent_id, AgentStatus(state), reason)
    if change is None:
        return None
    return {"agent_id": change.agent_id, "state": change.state.value,
            "previous": change.previous.value, "reason": change.reason}


def _queues(store: AcdStore) -> list[dict[str, Any]]:
    return [dataclasses.asdict(store.snapshot(q)) for q in store.queues()]


def supervision_channel(store: AcdStore, answer_wait_s: float) -> SupervisionChannel:
    """The console's side of ``acd_supervision`` (the worker's is ``callcenter.supervision``)."""

    def status(request_id: int) -> dict[str, Any] | None:
        row = store.supervision_request(request_id)
        return None if row is None else dataclasses.asdict(row)

    def current(call_id: str | None) -> list[dict[str, Any]]:
        return [{"call_id": r.call_id, "supervisor_id": r.supervisor_id, "mode": r.mode, "since": r.done_at}
                for r in store.supervision(call_id)]

    return SupervisionChannel(request=store.request_supervision, status=status,
                              expire=store.expire_supervision, current=current, answer_wait_s=answer_wait_s)


def build_agent_console(settings: Settings) -> AgentConsole:
    """The console's view of the ACD: logins against the agents file, states and queue
    snapshots from the store at ``settings.store_url``. Opens nothing until first used."""
    store = AcdStore(settings.store_url)
    directory = DirectoryFile(settings.agents_file)
    return AgentConsole(
        login=_Logins(directory),
        agents=lambda: _agents(store, directory),
        set_state=lambda agent_id, state, reason: _set_state(store, agent_id, state, reason),
        queues=lambda: _queues(store),
        close=store.close,
        supervision=supervision_channel(store, settings.acd.ring_timeout_s + 5.0),
    )


def build_acd_feed(settings: Settings, publisher: FeedSink, store: AcdStore | None = None,
                   interval_s: float = DEFAULT_INTERVAL_S) -> AcdFeed:
    """The task publishing queue snapshots and agent states (start it with ``await
    feed.start()`` beside a started publisher; ``stop()`` before the publisher's)."""
    acd = store or AcdStore(settings.store_url)
    return AcdFeed(queues_fn=lambda: _queues(acd), agents_fn=acd.agents, publisher=publisher,
                   interval_s=interval_s)
