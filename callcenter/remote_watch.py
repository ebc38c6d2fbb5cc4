"""The front's view of workers on other hosts (``sip.remote_workers``).

The front cannot see a remote worker's process, only whether it answers the dispatcher's OPTIONS
pings. New calls go around a worker from its first missed ping (Kamailio marks it inactive). A
worker that stays silent for ``sip.remote_lost_after_s`` is taken as lost with its host (link
down, host down): the front BYEs its callers, whose media went with it, so nobody sits in a dead
call. What that host's workers held is stored by that host when it can reach the store again
(its call records and spool stay in its own ``data_dir``; see ``callcenter.roles``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from telephony.acd.queue_call import cancel_task
from telephony.kamailio import FrontError, KamailioFront, Worker

log = logging.getLogger(__name__)

POLL_S = 1.0


@dataclass
class RemoteWorkerHealth:
    uri: str
    state: str = "starting"
    """``starting`` (not yet answered a ping), ``serving``, ``unreachable`` (missed pings, no new calls), ``lost`` (its callers BYE'd) or
    ``disabled`` (taken out of dispatch on purpose: no new calls, its calls go on)."""
    since: float = 0.0
    """Monotonic time of the last state change."""
    outages: int = 0
    calls_ended: int = 0
    """Callers the front hung up because this worker was lost."""


def dispatcher_states(text: str) -> dict[str, str]:
    """``kamcmd dispatcher.list`` output: each destination's URI and its flags (``AP`` active and
    probed, ``IP`` inactive, ``TP`` trying, ``DX`` disabled...)."""
    out: dict[str, str] = {}
    uri = None
    for raw in text.splitlines():
        key, _, value = raw.strip().partition(": ")
        if key == "URI":
            uri = value.strip()
        elif key == "FLAGS" and uri is not None:
            out[uri] = value.strip()
            uri = None
    return out


class RemoteWatch:
    """Polls the front's dispatcher; ends the dialogs of a remote worker lost for ``lost_after_s``."""

    def __init__(self, front: KamailioFront, workers: Sequence[Worker], lost_after_s: float, *,
                 poll_s: float = POLL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.front = front
        self.workers = list(workers)
        self.lost_after_s = lost_after_s
        self.poll_s = poll_s
        self.clock = clock
        now = clock()
        self.state = {w.uri: RemoteWorkerHealth(w.uri, since=now) for w in self.workers}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.workers:
            self._task = asyncio.create_task(self._run(), name="remote-workers")

    async def stop(self) -> None:
        """Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_task(task)

    def health(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.state.values()]

    @property
    def serving(self) -> int:
        return sum(h.state == "serving" for h in self.state.values())

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except FrontError as exc:  # the front restarting: the supervisor handles it
                log.debug("dispatcher not readable: %s", exc)
            except Exception:  # noqa: BLE001 - the watch must outlive one bad poll
                log.exception("remote worker watch failed a poll")
            await asyncio.sleep(self.poll_s)

    async def poll_once(self) -> None:
        """Read the dispatcher's states once and act on the changes."""
        flags = dispatcher_states(await self.front.rpc("dispatcher.list"))
        now = self.clock()
        for worker in self.workers:
            health = self.state[worker.uri]
            flag = flags.get(worker.uri, "I")[:1]
            if flag == "D":  # disabled on purpose (drained, or overloaded): its calls go on
                if health.state != "disabled":
                    health.state, health.since = "disabled", now
                continue
            if flag == "A":
                if health.state == "starting" and flags[worker.uri][1:2] != "P":
                    continue  # listed, not probed yet
                if health.state != "serving":
                    log.warning("remote worker %s answers%s", worker.uri,
                                "" if health.state == "starting" else " again")
                    health.state, health.since = "serving", now
                continue
            if health.state == "starting":
                continue  # never answered: it holds no calls (the dispatcher already avoids it)
            if health.state in ("serving", "disabled"):
                health.state, health.since = "unreachable", now
                health.outages += 1
                log.warning("remote worker %s misses its pings: new calls go to the others", worker.uri)
            elif health.state == "unreachable" and now - health.since >= self.lost_after_s:
                ended = await self.front.end_worker_dialogs(worker)
                health.state, health.since = "lost", now
                health.calls_ended += len(ended)
                log.error("remote worker %s lost for %.0f s: %d caller(s) sent BYE", worker.uri,
                          self.lost_after_s, len(ended))
