"""IVR flow files: YAML in, frozen and validated dataclasses out.

A flow is a graph of named nodes (menu, collect, play, queue, transfer, hangup) and a table of
named prompts. Everything that can be wrong with a file is found at load time and reported as one
``FlowError`` naming the file, the node and the path inside the file (``nodes.main_menu.
choices[2].goto: refers to unknown node 'x'``), so a typo never surfaces as a dead end mid-call.

Two passes: the pydantic models of :mod:`ivr.flow_schema` check shape and types; then this module
builds the :mod:`ivr.model` dataclasses and checks what needs the whole file (references,
parameters, duplicate keys and phrases, reachability).

``${name}`` in a transfer URI or queue name is replaced from the flow's ``params:`` section,
which the caller of :func:`load_flow` can override (e.g. the agent URI from settings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from ivr.flow_schema import (
    PROMPTED_KINDS,
    ChoiceSpec,
    CollectSpec,
    DefaultsSpec,
    FlowSpec,
    MenuSpec,
    NodeSpec,
    PlaySpec,
    QueueSpec,
    TransferSpec,
    problems_of,
)
from ivr.model import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    DIGIT_KEYS,
    DTMF_KEYS,
    Choice,
    CollectNode,
    Flow,
    FlowError,
    HangupNode,
    MenuNode,
    Node,
    PlayNode,
    Problem,
    QueueNode,
    TransferNode,
)
from speech.file_path import PathPart
from speech.text import normalize

__all__ = [
    "DEFAULT_RETRIES", "DEFAULT_TIMEOUT_S", "DIGIT_KEYS", "DTMF_KEYS", "SAMPLE_FLOW", "Choice",
    "CollectNode", "Flow", "FlowError", "HangupNode", "MenuNode", "Node", "PlayNode", "QueueNode",
    "TransferNode", "load_flow", "parse_flow",
]

SAMPLE_FLOW = Path(__file__).resolve().parent / "flows" / "contact_center.yaml"
"""The shipped contact-center flow; its prompts live in ``ivr/prompts``."""

_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_URI_SCHEMES = ("sip:", "sips:", "tel:")
T = TypeVar("T")


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
    src = Path(source)
    if not isinstance(data, dict):
        raise FlowError(src, "top level must be a mapping with 'start', 'prompts' and 'nodes'")
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as exc:
        raise FlowError.of(src, problems_of(exc)) from None
    problems: list[Problem] = []
    flow_params = {**spec.params, **{str(k): str(v) for k, v in (params or {}).items()}}
    for name, text in spec.prompts.items():
        if not _NAME.match(name):
            problems.append(Problem(("prompts", name), f"prompt name {name!r} must be letters, digits, '_', '-' or '.'"))
        elif not text.strip():
            problems.append(Problem(("prompts", name), f"prompt {name!r} has no text"))
    nodes = {nid: _build(nid, raw, spec.defaults, flow_params, problems) for nid, raw in spec.nodes.items()}
    if spec.start not in nodes:
        problems.append(Problem(("start",), f"'start' refers to unknown node {spec.start!r}"))
    for nid, node in nodes.items():
        for where, target in node.links():
            if target not in nodes:
                problems.append(Problem(("nodes", nid, *where), f"refers to unknown node {target!r}"))
        for where, name in node.prompt_links():
            if name not in spec.prompts:
                problems.append(Problem(("nodes", nid, *where), f"prompt {name!r} is not defined in 'prompts'"))
    if problems:
        raise FlowError.of(src, problems)

    base = src.parent if src.suffix else Path.cwd()
    flow = Flow(
        name=spec.name or src.stem,
        start=spec.start,
        nodes=MappingProxyType(nodes),
        prompts=MappingProxyType(dict(spec.prompts)),
        params=MappingProxyType(flow_params),
        source=src,
        prompts_dir=(base / (spec.prompts_dir or "prompts")).resolve(),
    )
    reachable = flow.reachable()
    unreachable = [Problem(("nodes", nid), f"cannot be reached from start {spec.start!r}") for nid in nodes if nid not in reachable]
    if unreachable:
        raise FlowError.of(src, unreachable)
    return flow


def _build(nid: str, raw: NodeSpec, defaults: DefaultsSpec, params: Mapping[str, str], problems: list[Problem]) -> Node:
    """The runtime node for one validated node spec; problems found on the way are appended."""

    def problem(where: tuple[PathPart, ...], message: str) -> None:
        problems.append(Problem(("nodes", nid, *where), message))

    def subst(key: str, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(1) in params:
                return params[m.group(1)]
            problem((key,), f"unknown parameter ${{{m.group(1)}}} (define it under 'params')")
            return m.group(0)

        return _PARAM.sub(repl, text)

    if raw.kind in PROMPTED_KINDS and not raw.prompt:
        problem(("prompt",), f"a {raw.kind} node needs a 'prompt'")
    if isinstance(raw, MenuSpec):
        return MenuNode(
            id=nid, prompt=raw.prompt, choices=_choices(raw.choices, problem), reprompt=raw.reprompt,
            no_match=raw.no_match, fallback=raw.fallback, **_waiting(raw, defaults),
        )
    if isinstance(raw, CollectSpec):
        return CollectNode(
            id=nid, prompt=raw.prompt, goto=raw.goto, min_digits=raw.digits.min, max_digits=raw.digits.max,
            terminator=raw.terminator, secure=raw.secure, store_as=raw.store_as or nid,
            reprompt=raw.reprompt, no_match=raw.no_match, fallback=raw.fallback, **_waiting(raw, defaults),
        )
    if isinstance(raw, PlaySpec):
        return PlayNode(id=nid, prompt=raw.prompt, goto=raw.goto, hold=raw.hold, barge_in=raw.barge_in)
    if isinstance(raw, QueueSpec):
        return QueueNode(id=nid, prompt=raw.prompt, queue=subst("queue", raw.queue),
                         max_wait_s=raw.max_wait_s,
                         overflow=subst("overflow", raw.overflow) if raw.overflow else None,
                         callback=raw.callback)
    if isinstance(raw, TransferSpec):
        uri = subst("uri", raw.uri)
        if "${" not in uri and not uri.startswith(_URI_SCHEMES):
            problem(("uri",), f"transfer uri {uri!r} must start with sip:, sips: or tel:")
        return TransferNode(id=nid, prompt=raw.prompt, uri=uri, fallback=raw.fallback)
    return HangupNode(id=nid, prompt=raw.prompt)


def _waiting(raw: MenuSpec | CollectSpec, defaults: DefaultsSpec) -> dict[str, Any]:
    """Timeout, retries and barge-in of a node that waits: its own, else ``defaults:``, else built in."""
    return {
        "timeout_s": _pick(raw.timeout_s, defaults.timeout_s, DEFAULT_TIMEOUT_S),
        "retries": _pick(raw.retries, defaults.retries, DEFAULT_RETRIES),
        "barge_in": _pick(raw.barge_in, defaults.barge_in, True),
    }


def _choices(raw: list[ChoiceSpec], problem: Callable[[tuple[PathPart, ...], str], None]) -> tuple[Choice, ...]:
    """Choices with their default names; a key or phrase used twice in one menu is a problem."""
    keys: dict[str, int] = {}
    phrases: dict[str, int] = {}
    out: list[Choice] = []
    for i, item in enumerate(raw):
        if item.dtmf is not None:
            if item.dtmf in keys:
                problem(("choices", i, "dtmf"), f"duplicate dtmf key {item.dtmf!r} (also in choices[{keys[item.dtmf]}])")
            keys.setdefault(item.dtmf, i)
        for j, phrase in enumerate(item.say):
            norm = normalize(phrase)  # the matcher's own normalizer: what it cannot tell apart
            if not norm:
                problem(("choices", i, "say", j), "empty phrase in 'say'")
            elif phrases.setdefault(norm, i) != i:
                problem(("choices", i, "say", j), f"duplicate phrase {phrase!r} (also in choices[{phrases[norm]}])")
        name = item.name or (item.say[0] if item.say else item.goto)
        out.append(Choice(goto=item.goto, dtmf=item.dtmf, say=item.say, name=name))
    return tuple(out)


def _pick(own: T | None, default: T | None, fallback: T) -> T:
    return own if own is not None else default if default is not None else fallback
