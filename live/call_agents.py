"""Which agent is on which call, as a publisher sees the call's events go by.

An agent's dashboard subscribes to one topic, ``{prefix}/agents/{id}/call``, and gets whatever
call they are on, without knowing call ids in advance. The publisher learns the pairing from the
call's own ``PartyJoined(agent_id=...)`` and forgets it at that agent's ``PartyLeft`` or at
``CallEnded``. Supervisors' steps never go there (silent monitoring). The summary comes after
the hang-up and is what the agent's wrap-up is for, so it still goes to the last agent who talked
with the caller (not to one who transferred the call on). Both maps are bounded: a publisher
runs for months, and a call whose end was never seen (its worker died) must not stay in memory
forever.
"""

from __future__ import annotations

from collections import OrderedDict

from speech.events import CallEnded, Event, PartyJoined, PartyLeft, SummaryReady, SupervisionChanged
from speech.frames import Party

MAX_CALLS = 1000
"""Calls remembered per map; the oldest pairing is dropped first (a worker holds at most 4 calls,
a process publishing for several workers a few dozen)."""


class CallAgents:
    """The call → agent pairing of one publisher; :meth:`route` is called for every event, in
    order, and names the agent whose call feed the event also goes to ("" for none)."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self.max_calls = max_calls
        self._on_call: OrderedDict[str, str] = OrderedDict()
        self._wrap_up: OrderedDict[str, str] = OrderedDict()

    def route(self, event: Event) -> str:
        call_id = event.call_id
        if not call_id or isinstance(event, SupervisionChanged):  # monitoring is silent
            return ""
        if isinstance(event, PartyJoined) and event.agent_id:
            self._wrap_up.pop(call_id, None)
            _put(self._on_call, call_id, event.agent_id, self.max_calls)
            return event.agent_id
        agent_id = self._on_call.get(call_id, "")
        if isinstance(event, PartyLeft) and agent_id and _is(event, agent_id):
            del self._on_call[call_id]
            if event.reason != "transfer":
                _put(self._wrap_up, call_id, agent_id, self.max_calls)
        elif isinstance(event, CallEnded) and agent_id:
            del self._on_call[call_id]
            _put(self._wrap_up, call_id, agent_id, self.max_calls)
        elif isinstance(event, SummaryReady):
            return self._wrap_up.pop(call_id, "")
        return agent_id

    def agent_of(self, call_id: str) -> str:
        """The agent on ``call_id`` now ("" for none)."""
        return self._on_call.get(call_id, "")

    def __len__(self) -> int:
        return len(self._on_call) + len(self._wrap_up)


def _is(left: PartyLeft, agent_id: str) -> bool:
    """Whether ``left`` is that agent leaving (not the caller, not another agent)."""
    if left.agent_id:
        return left.agent_id == agent_id
    return left.party is Party.AGENT


def _put(mapping: OrderedDict[str, str], key: str, value: str, limit: int) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > limit:
        mapping.popitem(last=False)
