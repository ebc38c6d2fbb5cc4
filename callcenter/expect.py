"""QA expectations for recorded test calls: what a replay of a fixture must produce.

Each fixture ``audio_fixtures/<name>.wav`` has a sibling ``<name>.expect.json`` (schema in
audio_fixtures/README.md). :func:`compare` checks the events of one replayed call against it and
returns the differences as data, so ``callcenter replay`` and the tests can report every failed
check at once instead of stopping at the first. ASR on synthetic voices is error-prone, so words
are checked as keyword groups (any word of a group heard), and times with tolerances.

Mismatches never quote transcript text (a QA report may end up in logs; "none heard" is enough
to go and look at the transcript). They do show DTMF strings: checking those is their purpose,
so do not log mismatches of live calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speech.events import (
    CallEnded,
    DeadAirEnded,
    DeadAirStarted,
    DtmfDigit,
    Event,
    FinalTranscript,
    TalkOver,
    ToneAlert,
    ToneUpdate,
)
from speech.frames import Party

SCHEMA_VERSION = 1
TONE_LABELS = ("calm", "neutral", "tense", "angry")
"""Tone labels, least tense first: ``max_label`` compares by this order."""
DEFAULT_DEAD_AIR_TOLERANCE_S = 0.5
DEFAULT_TALK_OVER_TOLERANCE_S = 0.5
EXPECT_SUFFIX = ".expect.json"
G711_VARIANT = re.compile(r"^(?P<base>.+)_8k_(ulaw|alaw)$")
"""``<name>_8k_ulaw`` / ``<name>_8k_alaw``: telephone-rate copies that share ``<name>``'s file."""

_KEYS = {
    "schema", "keywords", "keywords_party", "dead_air", "dead_air_tolerance", "tone", "dtmf",
    "talk_over", "min_duration", "max_duration",
}
_INFO_KEYS = {"rendered", "comment"}
"""Accepted but not checked: how the fixture was rendered, and free text."""
_TONE_KEYS = {"final_label_in", "max_label", "alert"}
_WORD = re.compile(r"[\w']+")


class ExpectationError(ValueError):
    """An expectation file is unreadable or does not follow the schema; names the file."""


@dataclass(frozen=True)
class Interval:
    """A dead-air interval in call seconds."""

    start: float
    end: float


@dataclass(frozen=True)
class ExpectedTalkOver:
    started_by: Party
    start: float
    tolerance: float = DEFAULT_TALK_OVER_TOLERANCE_S


@dataclass(frozen=True)
class ExpectedTone:
    """Any subset: the last label is one of ``final_label_in``; no label above ``max_label``;
    a tone alert was (``True``) or was not (``False``) raised."""

    final_label_in: tuple[str, ...] | None = None
    max_label: str | None = None
    alert: bool | None = None


@dataclass(frozen=True)
class Expectation:
    """What one recorded call must produce. ``None`` means "not checked"."""

    source: Path | None = None
    keywords: tuple[tuple[str, ...], ...] | None = None
    keywords_party: Party | None = None
    dead_air: tuple[Interval, ...] | None = None
    dead_air_tolerance: float = DEFAULT_DEAD_AIR_TOLERANCE_S
    tone: ExpectedTone | None = None
    dtmf: str | None = None
    talk_over: tuple[ExpectedTalkOver, ...] | None = None
    min_duration: float | None = None
    max_duration: float | None = None


@dataclass(frozen=True)
class Mismatch:
    """One failed check: ``check`` names it (``keywords``, ``dead_air``, ``tone.alert``...)."""

    check: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.check}: expected {self.expected}, got {self.got}"


def expectation_for(audio_path: str | Path) -> Path | None:
    """The expectation file of a recording: sibling ``<stem>.expect.json``, else the one of the
    call it is a G.711 copy of (``x_8k_ulaw.wav`` → ``x.expect.json``); ``None`` if neither."""
    p = Path(audio_path)
    own = p.with_name(p.stem + EXPECT_SUFFIX)
    if own.is_file():
        return own
    m = G711_VARIANT.match(p.stem)
    if m:
        base = p.with_name(m["base"] + EXPECT_SUFFIX)
        if base.is_file():
            return base
    return None


def load_expectation(path: str | Path) -> Expectation:
    """Parse and validate an expectation file; every problem is an ``ExpectationError``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExpectationError(f"{p}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpectationError(f"{p}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ExpectationError(f"{p}: malformed JSON at line {exc.lineno}: {exc.msg}") from exc
    try:
        return parse_expectation(data, source=p)
    except ExpectationError as exc:
        raise ExpectationError(f"{p}: {exc}") from None


def parse_expectation(data: Any, *, source: Path | None = None) -> Expectation:
    """Validate an already-decoded expectation object (messages without the file name)."""
    if not isinstance(data, dict):
        raise ExpectationError("top level must be a JSON object")
    if data.get("schema") != SCHEMA_VERSION:
        raise ExpectationError(f"unsupported schema {data.get('schema')!r} (need {SCHEMA_VERSION})")
    unknown = set(data) - _KEYS - _INFO_KEYS
    if unknown:
        raise ExpectationError(f"unknown key(s): {', '.join(sorted(unknown))}")
    return Expectation(
        source=source,
        keywords=_keywords(data["keywords"]) if "keywords" in data else None,
        keywords_party=_party(data["keywords_party"], "keywords_party") if "keywords_party" in data else None,
        dead_air=_intervals(data["dead_air"]) if "dead_air" in data else None,
        dead_air_tolerance=_seconds(data.get("dead_air_tolerance", DEFAULT_DEAD_AIR_TOLERANCE_S), "dead_air_tolerance"),
        tone=_tone(data["tone"]) if "tone" in data else None,
        dtmf=_dtmf(data["dtmf"]) if "dtmf" in data else None,
        talk_over=_talk_overs(data["talk_over"]) if "talk_over" in data else None,
        min_duration=_seconds(data["min_duration"], "min_duration") if "min_duration" in data else None,
        max_duration=_seconds(data["max_duration"], "max_duration") if "max_duration" in data else None,
    )


def compare(exp: Expectation, events: Sequence[Event]) -> list[Mismatch]:
    """Every way ``events`` (one call, in emission order) differ from ``exp``; ``[]`` = pass."""
    out: list[Mismatch] = []
    call_end = next((e for e in reversed(events) if isinstance(e, CallEnded)), None)
    if exp.keywords is not None:
        out += _check_keywords(exp, events)
    if exp.dead_air is not None:
        out += _check_dead_air(exp, _dead_air_intervals(events, call_end))
    if exp.tone is not None:
        out += _check_tone(exp.tone, events)
    if exp.dtmf is not None:
        got = "".join(e.digit for e in events if isinstance(e, DtmfDigit))
        if got != exp.dtmf:
            out.append(Mismatch("dtmf", repr(exp.dtmf), repr(got)))
    if exp.talk_over is not None:
        out += _check_talk_over(exp.talk_over, [e for e in events if isinstance(e, TalkOver)])
    if exp.min_duration is not None or exp.max_duration is not None:
        out += _check_duration(exp, call_end)
    return out


# -- checks ---------------------------------------------------------------------------------


def _check_keywords(exp: Expectation, events: Sequence[Event]) -> list[Mismatch]:
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    if exp.keywords_party is not None:
        finals = [e for e in finals if e.party == exp.keywords_party]
    words = [_WORD.findall(e.text.lower()) for e in finals]
    heard = {w for ws in words for w in ws}
    texts = [" " + " ".join(ws) + " " for ws in words]
    who = f" of the {exp.keywords_party.value}" if exp.keywords_party else ""
    out = []
    for group in exp.keywords or ():
        if not any(_heard(k, heard, texts) for k in group):
            out.append(Mismatch("keywords", "one of " + "|".join(group),
                                f"none in {len(finals)} final transcript(s){who}"))
    return out


def _heard(keyword: str, heard: set[str], texts: list[str]) -> bool:
    """Whole-word match; a keyword with spaces is a phrase matched within one transcript."""
    k = " ".join(_WORD.findall(keyword.lower()))
    if " " in k:
        return any(f" {k} " in t for t in texts)
    return k in heard


def _dead_air_intervals(events: Sequence[Event], call_end: CallEnded | None) -> list[Interval]:
    """Closed intervals from DeadAirEnded; one still open at the end closes at CallEnded.t."""
    out: list[Interval] = []
    open_start: float | None = None
    for e in events:
        if isinstance(e, DeadAirStarted):
            open_start = e.start
        elif isinstance(e, DeadAirEnded):
            out.append(Interval(e.start, e.end))
            open_start = None
    if open_start is not None:
        end = call_end.t if call_end is not None else max((e.t for e in events), default=open_start)
        out.append(Interval(open_start, end))
    return out


def _check_dead_air(exp: Expectation, got: list[Interval]) -> list[Mismatch]:
    tol = exp.dead_air_tolerance
    unmatched = list(got)
    out = []
    for want in exp.dead_air or ():
        hit = next((g for g in unmatched
                    if abs(g.start - want.start) <= tol and abs(g.end - want.end) <= tol), None)
        if hit is not None:
            unmatched.remove(hit)
            continue
        # What came instead: the reported intervals overlapping this one (each reported once).
        near = [g for g in unmatched if _overlaps(g, want)]
        out.append(Mismatch("dead_air", f"{_span(want)} (±{tol:g} s)",
                            ", ".join(_span(g) for g in near) or "no dead air"))
        unmatched = [g for g in unmatched if g not in near]
    for g in unmatched:
        out.append(Mismatch("dead_air", "no dead air here", f"unexpected {_span(g)}"))
    return out


def _check_tone(tone: ExpectedTone, events: Sequence[Event]) -> list[Mismatch]:
    labels = [e.label for e in events if isinstance(e, ToneUpdate)]
    out = []
    if tone.final_label_in is not None:
        final = labels[-1] if labels else None
        if final not in tone.final_label_in:
            out.append(Mismatch("tone.final_label_in", "one of " + "|".join(tone.final_label_in),
                                final or "no tone update"))
    if tone.max_label is not None:
        limit = TONE_LABELS.index(tone.max_label)
        over = [lab for lab in labels if lab not in TONE_LABELS or TONE_LABELS.index(lab) > limit]
        if over:
            worst = max(over, key=lambda lab: TONE_LABELS.index(lab) if lab in TONE_LABELS else 99)
            out.append(Mismatch("tone.max_label", f"at most {tone.max_label}", worst))
    if tone.alert is not None:
        alerts = sum(isinstance(e, ToneAlert) for e in events)
        if bool(alerts) != tone.alert:
            out.append(Mismatch("tone.alert", "an alert" if tone.alert else "no alert",
                                f"{alerts} alert(s)"))
    return out


def _check_talk_over(expected: Sequence[ExpectedTalkOver], got: list[TalkOver]) -> list[Mismatch]:
    unmatched = list(got)
    out = []
    for want in expected:
        hit = next((g for g in unmatched if Party(g.started_by) == want.started_by
                    and abs(g.start - want.start) <= want.tolerance), None)
        if hit is not None:
            unmatched.remove(hit)
            continue
        # Report the nearest leftover as what came instead, so it is not also "unexpected".
        near = min(unmatched, key=lambda g: abs(g.start - want.start), default=None)
        if near is not None:
            unmatched.remove(near)
        out.append(Mismatch("talk_over", f"started by {want.started_by.value} at {want.start:.2f} s "
                                         f"(±{want.tolerance:g} s)",
                            _talk(near) if near is not None else "no talk-over"))
    for g in unmatched:
        out.append(Mismatch("talk_over", "no talk-over here", f"unexpected {_talk(g)}"))
    return out


def _check_duration(exp: Expectation, call_end: CallEnded | None) -> list[Mismatch]:
    lo = f"{exp.min_duration:g}" if exp.min_duration is not None else "0"
    hi = f"{exp.max_duration:g}" if exp.max_duration is not None else "∞"
    want = f"{lo}-{hi} s"
    if call_end is None:
        return [Mismatch("duration", want, "no call.ended event")]
    d = call_end.duration
    if (exp.min_duration is not None and d < exp.min_duration) or (
        exp.max_duration is not None and d > exp.max_duration
    ):
        return [Mismatch("duration", want, f"{d:.2f} s")]
    return []


def _span(i: Interval) -> str:
    return f"{i.start:.2f}-{i.end:.2f} s"


def _talk(t: TalkOver) -> str:
    return f"started by {Party(t.started_by).value} at {t.start:.2f} s"


def _overlaps(a: Interval, b: Interval) -> bool:
    return a.start < b.end and b.start < a.end


# -- parsing --------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpectationError(f"{what} must be a number, not {value!r}")
    return float(value)


def _seconds(value: Any, what: str) -> float:
    v = _number(value, what)
    if v < 0:
        raise ExpectationError(f"{what} must be >= 0, not {v:g}")
    return v


def _party(value: Any, what: str) -> Party:
    try:
        return Party(value)
    except ValueError:
        raise ExpectationError(f"{what} must be one of {[p.value for p in Party]}, not {value!r}") from None


def _keywords(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise ExpectationError("keywords must be a list of word groups")
    groups = []
    for i, group in enumerate(value):
        if not isinstance(group, list) or not group or not all(isinstance(w, str) and w.strip() for w in group):
            raise ExpectationError(f"keywords[{i}] must be a non-empty list of words")
        groups.append(tuple(group))
    return tuple(groups)


def _intervals(value: Any) -> tuple[Interval, ...]:
    if not isinstance(value, list):
        raise ExpectationError("dead_air must be a list of {start, end}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"start", "end"}:
            raise ExpectationError(f"dead_air[{i}] must be an object with start and end")
        start, end = _seconds(item["start"], f"dead_air[{i}].start"), _seconds(item["end"], f"dead_air[{i}].end")
        if end <= start:
            raise ExpectationError(f"dead_air[{i}] ends before it starts")
        out.append(Interval(start, end))
    return tuple(out)


def _tone(value: Any) -> ExpectedTone:
    if not isinstance(value, dict):
        raise ExpectationError("tone must be an object")
    unknown = set(value) - _TONE_KEYS
    if unknown:
        raise ExpectationError(f"unknown tone key(s): {', '.join(sorted(unknown))}")
    final = value.get("final_label_in")
    if final is not None:
        if not isinstance(final, list) or not final or any(lab not in TONE_LABELS for lab in final):
            raise ExpectationError(f"tone.final_label_in must be a non-empty list from {TONE_LABELS}")
        final = tuple(final)
    max_label = value.get("max_label")
    if max_label is not None and max_label not in TONE_LABELS:
        raise ExpectationError(f"tone.max_label must be one of {TONE_LABELS}, not {max_label!r}")
    alert = value.get("alert")
    if alert is not None and not isinstance(alert, bool):
        raise ExpectationError(f"tone.alert must be true or false, not {alert!r}")
    return ExpectedTone(final_label_in=final, max_label=max_label, alert=alert)


def _dtmf(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-D*#]*", value):
        raise ExpectationError("dtmf must be a string of 0-9, A-D, * and #")
    return value


def _talk_overs(value: Any) -> tuple[ExpectedTalkOver, ...]:
    if not isinstance(value, list):
        raise ExpectationError("talk_over must be a list of {started_by, start, tolerance}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not {"started_by", "start"} <= set(item) or set(item) - {"started_by", "start", "tolerance"}:
            raise ExpectationError(f"talk_over[{i}] must be an object with started_by, start and optional tolerance")
        out.append(ExpectedTalkOver(
            started_by=_party(item["started_by"], f"talk_over[{i}].started_by"),
            start=_seconds(item["start"], f"talk_over[{i}].start"),
            tolerance=_seconds(item.get("tolerance", DEFAULT_TALK_OVER_TOLERANCE_S), f"talk_over[{i}].tolerance"),
        ))
    return tuple(out)
