"""Which one-way audio links put a supervisor on a bridged call in each mode.

Caller C and agent A are bridged both ways (``SipEndpoint.bridge``); the supervisor S is a third
call on the same conference bridge, joined by one-way links only (``SipEndpoint.connect``), so a
mode switch adds or removes links and never re-dials:

- listen:  C→S, A→S            (S hears both, nobody hears S)
- whisper: listen + S→A        (coaching: only the agent hears S)
- barge:   whisper + S→C       (all three talk)
- left:    no links

A call with no agent leg to send to (a SIPREC recording, which never sends media) is listen-only.
"""

from __future__ import annotations

from enum import StrEnum

from speech.events import SupervisorMode


class Role(StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    SUPERVISOR = "supervisor"


Link = tuple[Role, Role]
"""(source, destination): the source's far end is heard by the destination's far end."""

_LISTEN: frozenset[Link] = frozenset({(Role.CALLER, Role.SUPERVISOR), (Role.AGENT, Role.SUPERVISOR)})
_WHISPER: frozenset[Link] = _LISTEN | {(Role.SUPERVISOR, Role.AGENT)}
_BARGE: frozenset[Link] = _WHISPER | {(Role.SUPERVISOR, Role.CALLER)}

MODE_LINKS: dict[SupervisorMode, frozenset[Link]] = {
    SupervisorMode.LISTEN: _LISTEN,
    SupervisorMode.WHISPER: _WHISPER,
    SupervisorMode.BARGE: _BARGE,
    SupervisorMode.LEFT: frozenset(),
}

LISTEN_ONLY_MODES = frozenset({SupervisorMode.LISTEN, SupervisorMode.LEFT})
"""What a call without an agent leg to talk to allows."""

DTMF_MODES: dict[str, SupervisorMode] = {
    "1": SupervisorMode.LISTEN,
    "2": SupervisorMode.WHISPER,
    "3": SupervisorMode.BARGE,
}
"""Keys on the supervisor's phone that switch modes."""


def mode_links(mode: SupervisorMode) -> frozenset[Link]:
    return MODE_LINKS[mode]


def link_changes(old: SupervisorMode, new: SupervisorMode) -> tuple[frozenset[Link], frozenset[Link]]:
    """(links to remove, links to add) to go from ``old`` to ``new``; unchanged links stay up,
    so a switch never interrupts what the supervisor hears."""
    before, after = MODE_LINKS[old], MODE_LINKS[new]
    return before - after, after - before
