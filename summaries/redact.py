"""PII redaction of a call's events before anything is stored or sent.

Card numbers (Luhn-checked, written or spoken digit by digit), SSN-like and other national ids,
emails and phone numbers are replaced by a tag in transcripts and their words; DTMF digits keyed
while the IVR is collecting something secure are masked. The original is kept beside the event
(``RedactedCall.originals``) only when ``keep_original`` is set, so the default stores nothing
sensitive at all.

Which fields hold what comes from the event classes (``meta.pii``, one rule per ``Pii`` kind);
the redactor knows no event type's fields by name. Deny by default: a text-like field a class
does not declare is redacted as free text, never passed through.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from speech.event_base import Pii, redaction_plan
from speech.events import CallEnded, DtmfDigit, Event, IvrAction, IvrStep, Word
from summaries.spoken import digit_runs, luhn_ok

MASKED_DIGIT = "X"
"""What a secure DTMF digit becomes (not a DTMF key, so it cannot be mistaken for one)."""

CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19
SSN_DIGITS = 9
PHONE_MIN_DIGITS = 10
PHONE_MAX_DIGITS = 12
CARD_DTMF_MAX_GAP_S = 4.0
"""Longest pause between two keys of one typed number; a longer pause starts a new number."""

CARD_CONTEXT = re.compile(r"\b(card|credit|debit|visa|mastercard|amex|american express|discover)\b", re.I)
SSN_CONTEXT = re.compile(r"\b(social|ssn|security number|tax id|national id|id number)\b", re.I)
PHONE_CONTEXT = re.compile(r"\b(phone|cell|mobile|call me|reach me|callback number|telephone)\b", re.I)

_SSN = re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])")
_UK_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", re.I)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# Anchored at a token start and bounded (RFC 5321: local part <= 64), so a long unbroken token
# costs linear time, not quadratic (a CRM API client could otherwise burn CPU).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+")
_SPOKEN_EMAIL = re.compile(
    r"\b[\w.]+(?: dot [\w]+)* at [\w-]+(?: dot [\w-]+)*? dot (?:com|org|net|edu|gov|io|co|uk|de)\b",
    re.I,
)
_PHONE = re.compile(
    r"(?<![\d\w])(?<!\d[ .-])(?:\+?\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?![ .-]?\d)"
)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    tag: str


@dataclass
class RedactedCall:
    """Redacted events, and (only with ``keep_original``) the originals by index."""

    events: list[Event]
    originals: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Index in ``events`` → the original event's ``to_dict()``; empty unless kept."""
    redacted_count: int = 0


class Redactor:
    """Masks PII in events. Holds per-call IVR state, so feed each call's events in order."""

    def __init__(self, keep_original: bool = False, secure_ivr_nodes: Iterable[str] = frozenset()) -> None:
        self.keep_original = keep_original
        self.secure_ivr_nodes = frozenset(secure_ivr_nodes)
        self._secure_node: dict[str, str] = {}
        """call_id → the secure IVR node now collecting input."""
        self._rules: dict[Pii, Callable[[Any, bool], Any]] = {
            Pii.TEXT: self._redact_any,
            Pii.WORDS: lambda words, secure: self._redact_words(words, secure=secure),
            Pii.DIGITS: lambda digit, secure: MASKED_DIGIT if secure else digit,
            Pii.DETAIL: _redact_detail,
            Pii.ADDRESS: lambda address, _secure: address,  # kept by design (see Pii.ADDRESS)
        }
        """One rule per kind of personal data (a test checks every kind has one)."""

    # -- text ---------------------------------------------------------------------------------

    def find_spans(self, text: str, *, secure: bool = False) -> list[Span]:
        """Character spans of PII in ``text``; ``secure`` masks every digit run (secure IVR input)."""
        spans: list[Span] = []
        for m in _EMAIL.finditer(text):
            spans.append(Span(m.start(), m.end(), "[EMAIL]"))
        for m in _SPOKEN_EMAIL.finditer(text):
            spans.append(Span(m.start(), m.end(), "[EMAIL]"))
        for m in _SSN.finditer(text):
            spans.append(Span(m.start(), m.end(), "[SSN]"))
        for m in _UK_NINO.finditer(text):
            spans.append(Span(m.start(), m.end(), "[NATIONAL_ID]"))
        for m in _IBAN.finditer(text):
            if sum(c.isdigit() for c in m.group(0)) >= 8:
                spans.append(Span(m.start(), m.end(), "[IBAN]"))
        for run in digit_runs(text):
            tag = self._classify_run(text, run.digits, run.spoken, secure)
            if tag:
                spans.append(Span(run.start, run.end, tag))
        for m in _PHONE.finditer(text):
            spans.append(Span(m.start(), m.end(), "[PHONE]"))
        return _merge(spans)

    def _classify_run(self, text: str, digits: str, spoken: bool, secure: bool) -> str | None:
        n = len(digits)
        if CARD_MIN_DIGITS <= n <= CARD_MAX_DIGITS and (
            luhn_ok(digits) or (spoken and CARD_CONTEXT.search(text))
        ):
            # Written numerals that fail Luhn are order or tracking numbers: they stay.
            return "[CARD]"
        if n == SSN_DIGITS and SSN_CONTEXT.search(text):
            return "[SSN]"
        if spoken and PHONE_MIN_DIGITS <= n <= PHONE_MAX_DIGITS and PHONE_CONTEXT.search(text):
            return "[PHONE]"
        if secure and n >= 1:
            return "[REDACTED]"
        return None

    def redact_text(self, text: str, *, secure: bool = False) -> str:
        spans = self.find_spans(text, secure=secure)
        return _apply(text, spans)

    def _redact_words(self, words: Sequence[Word], *, secure: bool) -> tuple[Word, ...]:
        """Redact on the joined words, then merge the words each span touches into one tag."""
        if not words:
            return tuple(words)
        offsets: list[tuple[int, int]] = []
        pos = 0
        for w in words:
            offsets.append((pos, pos + len(w.word)))
            pos += len(w.word) + 1
        joined = " ".join(w.word for w in words)
        spans = self.find_spans(joined, secure=secure)
        if not spans:
            return tuple(words)
        out: list[Word] = []
        i = 0
        for span in spans:
            while i < len(words) and offsets[i][1] <= span.start:
                out.append(words[i])
                i += 1
            hit = []
            while i < len(words) and offsets[i][0] < span.end:
                hit.append(words[i])
                i += 1
            if hit:
                out.append(Word(span.tag, hit[0].start, hit[-1].end, min(w.conf for w in hit)))
        out.extend(words[i:])
        return tuple(out)

    # -- events -------------------------------------------------------------------------------

    def redact_event(self, event: Event) -> Event:
        """The event with PII masked (``dataclasses.replace``); unchanged events are returned as is.

        Which fields to look at comes from the class's declarations (``meta.pii``); a text-like
        field it does not declare is redacted as free text (deny by default). How strictly
        depends on the call's IVR state: inside a secure node every digit is input.
        """
        secure = self._secure_context(event)
        changes: dict[str, Any] = {}
        for name, kind in redaction_plan(type(event)):
            value = getattr(event, name)
            new = self._rules[kind](value, secure)
            if new != value:
                changes[name] = new
        return dataclasses.replace(event, **changes) if changes else event

    def _redact_any(self, value: Any, secure: bool) -> Any:
        """Free text in whatever shape it comes: a string, words, a tuple, list or dict of them."""
        if isinstance(value, str):
            return self.redact_text(value, secure=secure)
        if isinstance(value, tuple | list) and value and all(isinstance(v, Word) for v in value):
            return self._redact_words(value, secure=secure)
        if isinstance(value, tuple | list):
            return type(value)(self._redact_any(v, secure) for v in value)
        if isinstance(value, dict):
            return {k: self._redact_any(_mask_card_value(v), secure) for k, v in value.items()}
        return _mask_card_value(value)

    def _secure_context(self, event: Event) -> bool:
        """Follow the call's IVR state; True when ``event`` belongs to secure input."""
        call = event.call_id
        if isinstance(event, IvrStep):
            return self._ivr_step(event)
        if isinstance(event, CallEnded):
            self._secure_node.pop(call, None)
            return False
        return call in self._secure_node

    def _ivr_step(self, step: IvrStep) -> bool:
        """Enter a secure node, or leave it once its input is collected or the call moves on."""
        call = step.call_id
        is_secure_node = step.node in self.secure_ivr_nodes or bool(step.detail.get("secure"))
        action = step.action
        if action == IvrAction.ENTER:
            if is_secure_node:
                self._secure_node[call] = step.node
            else:
                self._secure_node.pop(call, None)
            return False
        secure = is_secure_node or self._secure_node.get(call) == step.node
        if action in _LEAVES or (secure and action in _LEAVES_SECURE):
            self._secure_node.pop(call, None)
        return secure

    def redact_events(self, events: Iterable[Event]) -> list[Event]:
        return self.redact_call(events).events

    def redact_call(self, events: Iterable[Event]) -> RedactedCall:
        """Redact a whole call; originals of changed events are kept only with ``keep_original``.

        Seeing the whole call also catches what one event at a time cannot: a card number typed
        on the keypad outside any secure IVR node (``dtmf_card_indices``).
        """
        evs = list(events)
        typed_card = dtmf_card_indices(evs)
        out = RedactedCall(events=[])
        for i, ev in enumerate(evs):
            red = self.redact_event(ev)
            if i in typed_card and isinstance(red, DtmfDigit) and red.digit != MASKED_DIGIT:
                red = dataclasses.replace(red, digit=MASKED_DIGIT)
            out.events.append(red)
            if red is not ev:
                out.redacted_count += 1
                if self.keep_original:
                    out.originals[i] = ev.to_dict()
        return out


def dtmf_card_indices(events: Sequence[Event]) -> set[int]:
    """Indices of DTMF digit events that together type a card number.

    A run is the digit keys of one call with no other key (``*``, ``#``, A-D), no IVR node
    change and no pause over ``CARD_DTMF_MAX_GAP_S`` between them; a Luhn-valid run of
    ``CARD_MIN_DIGITS``-``CARD_MAX_DIGITS`` digits is a card number.
    """
    found: set[int] = set()
    runs: dict[str, list[tuple[int, str, float]]] = {}

    def close(call: str) -> None:
        run = runs.pop(call, [])
        digits = "".join(d for _, d, _ in run)
        if CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS and luhn_ok(digits):
            found.update(i for i, _, _ in run)

    for i, ev in enumerate(events):
        call = ev.call_id
        if isinstance(ev, DtmfDigit):
            run = runs.get(call)
            if len(ev.digit) == 1 and ev.digit.isdigit():
                if run and ev.t - run[-1][2] > CARD_DTMF_MAX_GAP_S:
                    close(call)
                runs.setdefault(call, []).append((i, ev.digit, float(ev.t)))
            else:
                close(call)
        elif isinstance(ev, CallEnded) or (isinstance(ev, IvrStep) and ev.action == IvrAction.ENTER):
            close(call)
    for call in list(runs):
        close(call)
    return found


def _mask_card_value(value: Any) -> Any:
    """A Luhn-valid 13-19 digit string (spaces and dashes allowed) → masked digits."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return value
    digits = re.sub(r"[ -]", "", str(value))
    if digits.isdigit() and CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS and luhn_ok(digits):
        return re.sub(r"\d", MASKED_DIGIT, str(value))
    return value


_MASK_KEYS = ("digits", "value", "input", "entered", "text", "number")
_LEAVES = (IvrAction.ROUTE, IvrAction.TRANSFER)
"""Steps that end any secure input of the call."""
_LEAVES_SECURE = (IvrAction.COLLECT, IvrAction.FALLBACK)
"""Steps of a secure node that end its input."""


def _redact_detail(detail: dict[str, Any], secure: bool) -> dict[str, Any]:
    """IVR step detail: in secure input every input value is masked, elsewhere card numbers."""
    if secure:
        return {k: _mask_value(k, v) for k, v in detail.items()}
    # A card number collected by a node nobody marked secure is still a card number.
    return {k: _mask_card_value(v) for k, v in detail.items()}


def _mask_value(key: str, value: Any) -> Any:
    if key == "secure":
        return value
    if isinstance(value, str) and (key in _MASK_KEYS or any(c.isdigit() for c in value)):
        return re.sub(r"[0-9*#A-D]", MASKED_DIGIT, value) if key in _MASK_KEYS else re.sub(r"\d", MASKED_DIGIT, value)
    if isinstance(value, int | float) and not isinstance(value, bool) and key in _MASK_KEYS:
        return MASKED_DIGIT * len(str(value))
    return value


def _merge(spans: list[Span]) -> list[Span]:
    """Sort and merge overlapping spans; the earliest-found (most specific) tag wins."""
    spans = sorted(spans, key=lambda s: (s.start, -(s.end - s.start)))
    out: list[Span] = []
    for s in spans:
        if out and s.start < out[-1].end:
            last = out[-1]
            out[-1] = Span(last.start, max(last.end, s.end), last.tag)
        else:
            out.append(s)
    return out


def _apply(text: str, spans: list[Span]) -> str:
    if not spans:
        return text
    parts, pos = [], 0
    for s in spans:
        parts.append(text[pos : s.start])
        parts.append(s.tag)
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)
