"""A validated IVR flow as the session walks it: frozen dataclasses, no parsing here.

:mod:`ivr.flow_schema` checks what a YAML file may contain and :mod:`ivr.flow` builds these from
it; the session only ever sees objects that passed both, so no lookup fails mid-call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speech.file_path import PathPart, dotted

DTMF_KEYS = frozenset("0123456789*#ABCD")
"""Keys a caller can send (RFC 4733 events 0-15)."""
DIGIT_KEYS = frozenset("0123456789")
DEFAULT_TIMEOUT_S = 5.0
"""Seconds of silence after a prompt ends before a menu or collect times out."""
DEFAULT_RETRIES = 2
"""Re-prompts after the first attempt before the fallback is taken."""



@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a flow file, at ``path`` inside it (empty: the file as a whole)."""

    path: tuple[PathPart, ...]
    message: str

    @property
    def node(self) -> str | None:
        """The node id the problem is in, if it is inside ``nodes``."""
        return str(self.path[1]) if len(self.path) >= 2 and self.path[0] == "nodes" else None


class FlowError(ValueError):
    """A flow file is unreadable or inconsistent.

    The message reads ``<file>: node '<id>': <path>: <problem>`` (node and path when known), one
    line per problem; ``node``, ``path`` and ``problems`` carry the same for code.
    """

    def __init__(
        self, source: Path | str, message: str, node: str | None = None, *,
        path: Sequence[PathPart] = (), more: Sequence[Problem] = (),
    ) -> None:
        self.source = str(source)
        first = Problem(tuple(path), message)
        self.node = node if node is not None else first.node
        self.path = dotted(first.path)
        self.problems: tuple[Problem, ...] = (first, *more)
        lines = [self._line(first, self.node)] + [self._line(p, p.node) for p in more]
        super().__init__("\n".join(lines))

    @classmethod
    def of(cls, source: Path | str, problems: Sequence[Problem]) -> FlowError:
        """One error reporting every problem, the first one first."""
        first, *more = problems
        return cls(source, first.message, path=first.path, more=more)

    def _line(self, problem: Problem, node: str | None) -> str:
        where = f"{self.source}: node '{node}'" if node else self.source
        if problem.path:
            where += f": {dotted(problem.path)}"
        return f"{where}: {problem.message}"


@dataclass(frozen=True, slots=True)
class Choice:
    """One way out of a menu: a key, spoken phrases, or both."""

    goto: str
    dtmf: str | None = None
    say: tuple[str, ...] = ()
    name: str = ""
    """Label reported in IvrStep details; defaults to the first phrase or the target node."""


Link = tuple[tuple[PathPart, ...], str]
"""Where inside a node a reference sits, and what it names."""


@dataclass(frozen=True, slots=True)
class Node:
    """Base of all nodes. ``prompt`` names an entry of the flow's ``prompts``."""

    id: str
    prompt: str | None = None

    kind = "node"
    is_end = False

    def links(self) -> Iterator[Link]:
        """Node ids this node can continue to, each with its path inside the node."""
        return iter(())

    def prompt_links(self) -> Iterator[Link]:
        """Prompt names this node plays, each with its path inside the node."""
        for attr in ("prompt", "reprompt", "no_match"):
            name = getattr(self, attr, None)
            if name:
                yield (attr,), name

    def targets(self) -> Iterator[str]:
        """Node ids this node can continue to."""
        return (target for _, target in self.links())


@dataclass(frozen=True, slots=True)
class MenuNode(Node):
    choices: tuple[Choice, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    reprompt: str | None = None
    """Played instead of ``prompt`` on retries; default: ``prompt`` again."""
    no_match: str | None = None
    """Played before the re-prompt after input that matches no choice."""
    fallback: str | None = None
    """Where to go once retries are used up; none: hang up."""
    barge_in: bool = True

    kind = "menu"

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every spoken phrase of every choice: the ASR grammar while this menu waits."""
        return tuple(p for c in self.choices for p in c.say)

    def links(self) -> Iterator[Link]:
        for i, choice in enumerate(self.choices):
            yield ("choices", i, "goto"), choice.goto
        if self.fallback:
            yield ("fallback",), self.fallback


@dataclass(frozen=True, slots=True)
class CollectNode(Node):
    goto: str = ""
    min_digits: int = 1
    max_digits: int = 16
    terminator: str | None = "#"
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Also the inter-digit timeout: each key press restarts it."""
    retries: int = DEFAULT_RETRIES
    secure: bool = False
    """The digits are PII (a card number): IvrStep details carry their count, never the digits;
    the entry step says ``secure`` so redactors mask the keys that follow, in live feeds too; the
    call's recording holds silence from the node's start to its end (``IvrMedia.secure_input``)."""
    store_as: str = ""
    reprompt: str | None = None
    no_match: str | None = None
    fallback: str | None = None
    barge_in: bool = True

    kind = "collect"

    def links(self) -> Iterator[Link]:
        yield ("goto",), self.goto
        if self.fallback:
            yield ("fallback",), self.fallback


@dataclass(frozen=True, slots=True)
class PlayNode(Node):
    goto: str = ""
    hold: bool = False
    """Announce as hold audio (PlaybackStarted kind="hold") rather than a prompt."""
    barge_in: bool = False
    """A key press ends the playback early (the key stays buffered for the next node)."""

    kind = "play"

    def links(self) -> Iterator[Link]:
        yield ("goto",), self.goto


@dataclass(frozen=True, slots=True)
class QueueNode(Node):
    queue: str = ""
    max_wait_s: float | None = None
    overflow: str | None = None
    callback: bool = False

    kind = "queue"
    is_end = True


@dataclass(frozen=True, slots=True)
class TransferNode(Node):
    uri: str = ""
    fallback: str | None = None
    """Where to go if the transfer is refused or fails; none: the call ends as failed."""

    kind = "transfer"
    is_end = True

    def links(self) -> Iterator[Link]:
        if self.fallback:
            yield ("fallback",), self.fallback


@dataclass(frozen=True, slots=True)
class HangupNode(Node):
    kind = "hangup"
    is_end = True


@dataclass(frozen=True)
class Flow:
    """A validated flow. ``prompts`` maps prompt names to the text rendered into ``<name>.wav``."""

    name: str
    start: str
    nodes: Mapping[str, Node]
    prompts: Mapping[str, str]
    params: Mapping[str, str] = field(default_factory=dict)
    source: Path | None = None
    prompts_dir: Path | None = None
    """Where ``<name>.wav`` files live (``prompts_dir:`` in the file, relative to it)."""

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def prompt_path(self, name: str, prompts_dir: Path | None = None) -> Path:
        base = prompts_dir or self.prompts_dir
        if base is None:
            raise FlowError(self.source or self.name, "no prompts directory given")
        return Path(base) / f"{name}.wav"

    def checked_prompts_dir(self, prompts_dir: Path | None = None) -> Path:
        """Where this flow's prompt WAVs are (``prompts_dir`` or the flow's own), all of them there."""
        base = prompts_dir if prompts_dir is not None else self.prompts_dir
        if base is None:
            raise FlowError(self.source or self.name, "no prompts directory for this flow")
        missing = self.missing_prompt_files(Path(base))
        if missing:
            names = ", ".join(p.name for p in missing[:5])
            raise FlowError(
                self.source or self.name,
                f"{len(missing)} prompt WAV(s) missing in {base}: {names} (run `callcenter ivr render-prompts`)",
            )
        return Path(base)

    def used_prompts(self) -> tuple[str, ...]:
        """Prompt names referenced by nodes, in node order, each once."""
        seen: dict[str, None] = {}
        for node in self.nodes.values():
            for _, name in node.prompt_links():
                seen.setdefault(name, None)
        return tuple(seen)

    def missing_prompt_files(self, prompts_dir: Path | None = None) -> list[Path]:
        return [p for p in (self.prompt_path(n, prompts_dir) for n in self.used_prompts()) if not p.is_file()]

    def reachable(self) -> set[str]:
        """Node ids reachable from ``start``."""
        seen: set[str] = set()
        todo = [self.start]
        while todo:
            nid = todo.pop()
            if nid in seen:
                continue
            seen.add(nid)
            todo.extend(self.nodes[nid].targets())
        return seen
