"""IVR flow files: YAML in, frozen and validated dataclasses out.

A flow is a graph of named nodes (menu, collect, play, queue, transfer, hangup) and a table of
named prompts. Everything that can be wrong with a file is found at load time and reported as one
``FlowError`` naming the file and the node, so a typo never surfaces as a dead end mid-call.

``${name}`` in a transfer URI or queue name is replaced from the flow's ``params:`` section,
which the caller of :func:`load_flow` can override (e.g. the agent URI from settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

DTMF_KEYS = frozenset("0123456789*#ABCD")
"""Keys a caller can send (RFC 4733 events 0-15)."""
DIGIT_KEYS = frozenset("0123456789")
DEFAULT_TIMEOUT_S = 5.0
"""Seconds of silence after a prompt ends before a menu or collect times out."""
DEFAULT_RETRIES = 2
"""Re-prompts after the first attempt before the fallback is taken."""
SAMPLE_FLOW = Path(__file__).resolve().parent / "flows" / "contact_center.yaml"
"""The shipped contact-center flow; its prompts live in ``ivr/prompts``."""

_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class FlowError(ValueError):
    """A flow file is unreadable or inconsistent; the message names the file and the node."""

    def __init__(self, source: Path | str, message: str, node: str | None = None) -> None:
        self.source = str(source)
        self.node = node
        where = f"{source}: node '{node}'" if node else f"{source}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Choice:
    """One way out of a menu: a key, spoken phrases, or both."""

    goto: str
    dtmf: str | None = None
    say: tuple[str, ...] = ()
    name: str = ""
    """Label reported in IvrStep details; defaults to the first phrase or the target node."""


@dataclass(frozen=True, slots=True)
class Node:
    """Base of all nodes. ``prompt`` names an entry of the flow's ``prompts``."""

    id: str
    prompt: str | None = None

    kind = "node"
    is_end = False

    def targets(self) -> Iterator[str]:
        """Node ids this node can continue to."""
        return iter(())


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

    def targets(self) -> Iterator[str]:
        yield from (c.goto for c in self.choices)
        if self.fallback:
            yield self.fallback


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
    """The digits are PII: IvrStep details carry their count, never the digits."""
    store_as: str = ""
    reprompt: str | None = None
    no_match: str | None = None
    fallback: str | None = None
    barge_in: bool = True

    kind = "collect"

    def targets(self) -> Iterator[str]:
        yield self.goto
        if self.fallback:
            yield self.fallback


@dataclass(frozen=True, slots=True)
class PlayNode(Node):
    goto: str = ""
    hold: bool = False
    """Announce as hold audio (PlaybackStarted kind="hold") rather than a prompt."""
    barge_in: bool = False
    """A key press ends the playback early (the key stays buffered for the next node)."""

    kind = "play"

    def targets(self) -> Iterator[str]:
        yield self.goto


@dataclass(frozen=True, slots=True)
class QueueNode(Node):
    queue: str = ""

    kind = "queue"
    is_end = True


@dataclass(frozen=True, slots=True)
class TransferNode(Node):
    uri: str = ""
    fallback: str | None = None
    """Where to go if the transfer is refused or fails; none: the call ends as failed."""

    kind = "transfer"
    is_end = True

    def targets(self) -> Iterator[str]:
        if self.fallback:
            yield self.fallback


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

    def used_prompts(self) -> tuple[str, ...]:
        """Prompt names referenced by nodes, in node order, each once."""
        seen: dict[str, None] = {}
        for node in self.nodes.values():
            for name in _prompt_refs(node):
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


def load_flow(path: str | Path | None = None, *, params: Mapping[str, str] | None = None) -> Flow:
    """Read and validate a flow file (default: the sample contact-center flow)."""
    src = Path(path) if path is not None else SAMPLE_FLOW
    try:
        text = src.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FlowError(src, "flow file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(src, f"cannot read flow file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowError(src, f"invalid YAML: {exc}") from exc
    return parse_flow(data, source=src, params=params)


def parse_flow(data: Any, *, source: Path | str = "<flow>", params: Mapping[str, str] | None = None) -> Flow:
    """Validate already-parsed YAML (a mapping) into a :class:`Flow`."""
    src = Path(source) if not isinstance(source, Path) else source
    if not isinstance(data, dict):
        raise FlowError(src, "top level must be a mapping with 'start', 'prompts' and 'nodes'")
    _check_keys(src, None, data, {"name", "start", "prompts", "nodes", "params", "prompts_dir", "defaults"})

    flow_params = _str_map(src, data.get("params") or {}, "params")
    flow_params.update({str(k): str(v) for k, v in (params or {}).items()})
    prompts = _str_map(src, data.get("prompts"), "prompts")
    for name, text in prompts.items():
        if not _NAME.match(name):
            raise FlowError(src, f"prompt name {name!r} must be letters, digits, '_', '-' or '.'")
        if not text.strip():
            raise FlowError(src, f"prompt {name!r} has no text")

    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise FlowError(src, "'defaults' must be a mapping")
    _check_keys(src, None, defaults, {"timeout_s", "retries", "barge_in"}, what="defaults")

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise FlowError(src, "'nodes' must be a non-empty mapping of node id to node")
    nodes: dict[str, Node] = {}
    for nid, raw in raw_nodes.items():
        nid = str(nid)
        if not isinstance(raw, dict):
            raise FlowError(src, "node must be a mapping with a 'kind'", nid)
        nodes[nid] = _parse_node(src, nid, raw, defaults, flow_params)

    start = data.get("start")
    if not isinstance(start, str) or not start:
        raise FlowError(src, "'start' must name the first node")
    if start not in nodes:
        raise FlowError(src, f"'start' refers to unknown node {start!r}")

    for node in nodes.values():
        for target in node.targets():
            if target not in nodes:
                raise FlowError(src, f"refers to unknown node {target!r}", node.id)
        for pname in _prompt_refs(node):
            if pname not in prompts:
                raise FlowError(src, f"prompt {pname!r} is not defined in 'prompts'", node.id)

    prompts_dir_raw = data.get("prompts_dir")
    base = src.parent if src.suffix else Path.cwd()
    prompts_dir = (base / str(prompts_dir_raw)).resolve() if prompts_dir_raw else (base / "prompts").resolve()
    flow = Flow(
        name=str(data.get("name") or src.stem),
        start=start,
        nodes=MappingProxyType(nodes),
        prompts=MappingProxyType(prompts),
        params=MappingProxyType(flow_params),
        source=src,
        prompts_dir=prompts_dir,
    )
    unreachable = [nid for nid in nodes if nid not in flow.reachable()]
    if unreachable:
        raise FlowError(src, f"cannot be reached from start {start!r}", unreachable[0])
    return flow


# -- parsing helpers ------------------------------------------------------------------------

_COMMON = {"kind", "prompt"}
_KEYS: dict[str, set[str]] = {
    "menu": _COMMON | {"choices", "timeout_s", "retries", "reprompt", "no_match", "fallback", "barge_in"},
    "collect": _COMMON
    | {"goto", "digits", "terminator", "timeout_s", "retries", "secure", "store_as", "reprompt",
       "no_match", "fallback", "barge_in"},
    "play": _COMMON | {"goto", "hold", "barge_in"},
    "queue": _COMMON | {"queue"},
    "transfer": _COMMON | {"uri", "fallback"},
    "hangup": _COMMON,
}


def _parse_node(src: Path, nid: str, raw: dict[str, Any], defaults: dict[str, Any], params: Mapping[str, str]) -> Node:
    kind = raw.get("kind")
    if kind not in _KEYS:
        raise FlowError(src, f"unknown kind {kind!r} (expected one of {', '.join(_KEYS)})", nid)
    _check_keys(src, nid, raw, _KEYS[kind])
    prompt = _opt_str(src, nid, raw, "prompt")
    if kind in ("menu", "collect", "play", "hangup") and not prompt:
        raise FlowError(src, f"a {kind} node needs a 'prompt'", nid)

    if kind == "menu":
        choices = _parse_choices(src, nid, raw.get("choices"))
        return MenuNode(
            id=nid, prompt=prompt, choices=choices,
            timeout_s=_timeout(src, nid, raw, defaults), retries=_retries(src, nid, raw, defaults),
            reprompt=_opt_str(src, nid, raw, "reprompt"), no_match=_opt_str(src, nid, raw, "no_match"),
            fallback=_opt_str(src, nid, raw, "fallback"),
            barge_in=_bool(src, nid, raw, "barge_in", defaults.get("barge_in", True)),
        )
    if kind == "collect":
        lo, hi = _digit_range(src, nid, raw.get("digits", {"min": 1, "max": 16}))
        terminator = raw.get("terminator", "#")
        if terminator is not None:
            terminator = str(terminator)
            if terminator not in DTMF_KEYS or terminator in DIGIT_KEYS:
                raise FlowError(src, f"terminator {terminator!r} must be one of * # A B C D", nid)
        return CollectNode(
            id=nid, prompt=prompt, goto=_req_str(src, nid, raw, "goto"), min_digits=lo, max_digits=hi,
            terminator=terminator, timeout_s=_timeout(src, nid, raw, defaults),
            retries=_retries(src, nid, raw, defaults), secure=_bool(src, nid, raw, "secure", False),
            store_as=_opt_str(src, nid, raw, "store_as") or nid,
            reprompt=_opt_str(src, nid, raw, "reprompt"), no_match=_opt_str(src, nid, raw, "no_match"),
            fallback=_opt_str(src, nid, raw, "fallback"),
            barge_in=_bool(src, nid, raw, "barge_in", defaults.get("barge_in", True)),
        )
    if kind == "play":
        return PlayNode(
            id=nid, prompt=prompt, goto=_req_str(src, nid, raw, "goto"),
            hold=_bool(src, nid, raw, "hold", False), barge_in=_bool(src, nid, raw, "barge_in", False),
        )
    if kind == "queue":
        queue = _subst(src, nid, _req_str(src, nid, raw, "queue"), params)
        return QueueNode(id=nid, prompt=prompt, queue=queue)
    if kind == "transfer":
        uri = _subst(src, nid, _req_str(src, nid, raw, "uri"), params)
        if not uri.startswith(("sip:", "sips:", "tel:")):
            raise FlowError(src, f"transfer uri {uri!r} must start with sip:, sips: or tel:", nid)
        return TransferNode(id=nid, prompt=prompt, uri=uri, fallback=_opt_str(src, nid, raw, "fallback"))
    return HangupNode(id=nid, prompt=prompt)


def _parse_choices(src: Path, nid: str, raw: Any) -> tuple[Choice, ...]:
    if not isinstance(raw, list) or not raw:
        raise FlowError(src, "a menu needs at least one choice in 'choices'", nid)
    keys: dict[str, int] = {}
    phrases: dict[str, int] = {}
    out: list[Choice] = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise FlowError(src, f"choice {i} must be a mapping with 'goto' and 'dtmf' and/or 'say'", nid)
        _check_keys(src, nid, item, {"dtmf", "say", "goto", "name"}, what=f"choice {i}")
        goto = item.get("goto")
        if not isinstance(goto, str) or not goto:
            raise FlowError(src, f"choice {i} has no 'goto'", nid)
        dtmf = item.get("dtmf")
        if dtmf is not None:
            dtmf = str(dtmf)
            if dtmf not in DTMF_KEYS:
                raise FlowError(src, f"choice {i}: dtmf {dtmf!r} is not a single key 0-9 * # A-D", nid)
            if dtmf in keys:
                raise FlowError(src, f"duplicate dtmf key {dtmf!r} in choices {keys[dtmf]} and {i}", nid)
            keys[dtmf] = i
        say_raw = item.get("say", ())
        say_list = [say_raw] if isinstance(say_raw, str) else say_raw
        if not isinstance(say_list, list | tuple) or not all(isinstance(s, str) for s in say_list):
            raise FlowError(src, f"choice {i}: 'say' must be a phrase or a list of phrases", nid)
        say = tuple(s.strip() for s in say_list)
        for phrase in say:
            norm = normalize_text(phrase)
            if not norm:
                raise FlowError(src, f"choice {i}: empty phrase in 'say'", nid)
            if norm in phrases and phrases[norm] != i:
                raise FlowError(src, f"duplicate phrase {phrase!r} in choices {phrases[norm]} and {i}", nid)
            phrases[norm] = i
        if dtmf is None and not say:
            raise FlowError(src, f"choice {i} needs a 'dtmf' key or 'say' phrases", nid)
        name = str(item.get("name") or (say[0] if say else goto))
        out.append(Choice(goto=goto, dtmf=dtmf, say=say, name=name))
    return tuple(out)


def _digit_range(src: Path, nid: str, raw: Any) -> tuple[int, int]:
    if not isinstance(raw, dict):
        raise FlowError(src, "'digits' must be a mapping with 'min' and 'max'", nid)
    _check_keys(src, nid, raw, {"min", "max"}, what="digits")
    lo, hi = raw.get("min", 1), raw.get("max", 16)
    if not (isinstance(lo, int) and isinstance(hi, int)) or isinstance(lo, bool) or isinstance(hi, bool):
        raise FlowError(src, "digits 'min' and 'max' must be whole numbers", nid)
    if lo < 1 or hi < lo:
        raise FlowError(src, f"digits need 1 <= min <= max (got min {lo}, max {hi})", nid)
    return lo, hi


def _timeout(src: Path, nid: str, raw: dict[str, Any], defaults: dict[str, Any]) -> float:
    value = raw.get("timeout_s", defaults.get("timeout_s", DEFAULT_TIMEOUT_S))
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise FlowError(src, f"timeout_s must be a positive number of seconds (got {value!r})", nid)
    return float(value)


def _retries(src: Path, nid: str, raw: dict[str, Any], defaults: dict[str, Any]) -> int:
    value = raw.get("retries", defaults.get("retries", DEFAULT_RETRIES))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FlowError(src, f"retries must be a whole number >= 0 (got {value!r})", nid)
    return value


def _bool(src: Path, nid: str, raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise FlowError(src, f"'{key}' must be true or false (got {value!r})", nid)
    return value


def _opt_str(src: Path, nid: str, raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FlowError(src, f"'{key}' must be a non-empty string", nid)
    return value


def _req_str(src: Path, nid: str, raw: dict[str, Any], key: str) -> str:
    value = _opt_str(src, nid, raw, key)
    if value is None:
        raise FlowError(src, f"missing '{key}'", nid)
    return value


def _subst(src: Path, nid: str, text: str, params: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(1) not in params:
            raise FlowError(src, f"unknown parameter ${{{m.group(1)}}} (define it under 'params')", nid)
        return params[m.group(1)]

    return _PARAM.sub(repl, text)


def _str_map(src: Path, raw: Any, what: str) -> dict[str, str]:
    if not isinstance(raw, dict) or (what == "prompts" and not raw):
        raise FlowError(src, f"'{what}' must be a non-empty mapping of name to text")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise FlowError(src, f"{what} entry {k!r} must be a string")
        out[str(k)] = str(v)
    return out


def _check_keys(src: Path, nid: str | None, raw: dict[str, Any], allowed: set[str], what: str = "") -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        where = f"{what}: " if what else ""
        raise FlowError(src, f"{where}unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})", nid)


def _prompt_refs(node: Node) -> Iterator[str]:
    for attr in ("prompt", "reprompt", "no_match"):
        name = getattr(node, attr, None)
        if name:
            yield name


_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalize_text(text: str) -> str:
    """Lower case, punctuation to spaces, ``[unk]`` dropped, whitespace collapsed."""
    text = text.lower().replace("[unk]", " ").replace("<unk>", " ")
    return " ".join(_NON_WORD.sub(" ", text).split())
