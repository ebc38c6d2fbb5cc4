"""The IVR session: walks one caller through a flow.

The session owns no audio and no SIP. It talks to the call through :class:`IvrMedia` (play a
prompt, stop it, set the ASR grammar, route, transfer, hang up, emit events), hears the caller
through ``on_event`` (DTMF, caller VAD and final transcripts) and tells time only through
``on_time``, the call clock the audio frames advance. Timeouts therefore run on call time: a
replayed call and a live call time out at the same moment, and tests drive a virtual clock.

Everything runs on one event loop: ``on_event``/``on_time``/``cancel`` are plain callbacks from
the pipeline's sinks, ``run`` is the coroutine that awaits the media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ivr.inputs import Key, Playback, Said
from ivr.matching import match_speech
from ivr.media import IvrMedia, IvrResult, TransferFailed
from ivr.model import (
    DIGIT_KEYS,
    Choice,
    CollectNode,
    Flow,
    HangupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    TransferNode,
)
from speech.events import (
    DtmfDigit,
    Event,
    FinalTranscript,
    IvrAction,
    IvrStep,
    PlaybackEnded,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
)
from speech.frames import Party

__all__ = ["IvrMedia", "IvrResult", "IvrSession", "TransferFailed"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class _CallerHungUp(Exception):
    """Internal: unwinds ``run`` once ``cancel`` was called."""


class IvrSession:
    """One caller's way through a flow. Create per call; ``run`` once."""

    def __init__(self, flow: Flow, media: IvrMedia, *, prompts_dir: Path | None = None, call_id: str = "") -> None:
        self._flow = flow
        self._media = media
        self._call_id = call_id
        self._prompts_dir = flow.checked_prompts_dir(prompts_dir)
        self._now = 0.0
        self._keys: deque[Key] = deque()
        self._said: deque[Said] = deque()
        self._listen_speech = False
        self._speaking = False
        self._timer_from = 0.0
        self._playing: Playback | None = None
        self._barged = False
        self._grammar_set = False
        self._wake = asyncio.Event()
        self._hung_up = asyncio.Event()
        self._cancelled = False
        self._started = False
        self._node_id = ""
        self._path: list[str] = []
        self._collected: dict[str, str] = {}
        self._secure: set[str] = set()

    # -- callbacks from the pipeline (same loop) ---------------------------------------------

    @property
    def now(self) -> float:
        """The call time the session last heard of."""
        return self._now

    def on_time(self, t: float) -> None:
        """The call clock reached ``t`` (from audio frames); drives timeouts."""
        if t > self._now:
            self._now = t
            self._wake.set()

    def on_event(self, event: Event) -> None:
        """Caller input: DtmfDigit, and caller SpeechStarted/SpeechEnded/FinalTranscript."""
        if self._cancelled:
            return
        if isinstance(event, DtmfDigit):
            if not event.digit:
                return
            self._keys.append(Key(event.digit, event.t))
            if self._playing is not None and self._playing.barge_in:
                self._barge()
        elif event.party is not Party.CALLER or not self._listen_speech:
            return
        elif isinstance(event, SpeechStarted):
            self._speaking = True
            if self._playing is not None and self._playing.barge_in and self._playing.speech:
                self._barge()
        elif isinstance(event, SpeechEnded):
            self._speaking = False
            self._timer_from = max(self._timer_from, self._now)
        elif isinstance(event, FinalTranscript):
            self._speaking = False
            self._timer_from = max(self._timer_from, self._now)
            self._said.append(Said(event.text, event.t))
            if self._playing is not None and self._playing.barge_in and self._playing.speech:
                self._barge()  # a final without a SpeechStarted first (VAD missed the onset)
        else:
            return
        self._wake.set()

    def cancel(self) -> None:
        """The caller hung up: stop playing and make ``run`` return. Idempotent."""
        if self._cancelled:
            return
        self._cancelled = True
        self._hung_up.set()
        self._wake.set()
        if self._playing is not None:
            self._media.stop_playback()

    # -- the walk ------------------------------------------------------------------------------

    async def run(self) -> IvrResult:
        """Walk the flow from ``start`` until an end node or the caller hangs up."""
        if self._started:
            raise RuntimeError("IvrSession.run() can only be called once")
        self._started = True
        node_id = self._flow.start
        try:
            while True:
                self._check_hangup()
                node = self._flow.nodes[node_id]
                self._node_id = node_id
                self._path.append(node_id)
                # "secure" on entry: redactors mask the keys that follow, before the node reports.
                enter: dict[str, Any] = {"kind": node.kind}
                if isinstance(node, CollectNode) and node.secure:
                    enter["secure"] = True
                self._step(IvrAction.ENTER, enter)
                nxt = await self._visit(node)
                if isinstance(nxt, IvrResult):
                    return nxt
                node_id = nxt
        except _CallerHungUp:
            self._step(IvrAction.HANGUP, {"by": "caller"})
            return self._result("caller_hangup")
        finally:
            self._leave_speech()

    async def _visit(self, node: Node) -> str | IvrResult:
        if isinstance(node, MenuNode):
            return await self._menu(node)
        if isinstance(node, CollectNode):
            return await self._collect(node)
        if isinstance(node, PlayNode):
            await self._prompt(node.prompt, kind="hold" if node.hold else "prompt", barge_in=node.barge_in)
            return node.goto
        if isinstance(node, QueueNode):
            return await self._queue(node)
        if isinstance(node, TransferNode):
            return await self._transfer(node)
        if isinstance(node, HangupNode):
            return await self._hangup(node.prompt)
        raise TypeError(f"unsupported node kind {node.kind!r}")

    async def _menu(self, node: MenuNode) -> str | IvrResult:
        speech = bool(node.phrases)
        if speech:
            self._media.set_grammar(node.phrases)
            self._grammar_set = True
            self._listen_speech = True
        try:
            attempt, prompt, preface = 0, node.prompt, None
            while True:
                if preface:
                    await self._prompt(preface, barge_in=node.barge_in, speech=speech)
                await self._prompt(prompt, barge_in=node.barge_in, speech=speech)
                got = await self._wait_input(node.timeout_s, speech=speech)
                if got is None:
                    reason = "timeout"
                    self._step(IvrAction.TIMEOUT, {"attempt": attempt + 1, "timeout_s": node.timeout_s})
                    preface = None
                else:
                    choice, detail = self._match_menu(node, got)
                    if choice is not None:
                        self._step(IvrAction.CHOICE, detail)
                        return choice.goto
                    reason = "no_match"
                    self._step(IvrAction.NO_MATCH, {**detail, "attempt": attempt + 1})
                    preface = node.no_match
                    self._flush_input()
                attempt += 1
                if attempt > node.retries:
                    return await self._fallback(node.fallback, reason)
                self._step(IvrAction.RETRY, {"attempt": attempt, "of": node.retries})
                prompt = node.reprompt or node.prompt
        finally:
            self._leave_speech()

    def _match_menu(
        self, node: MenuNode, got: Key | Said
    ) -> tuple[Choice | None, dict[str, Any]]:
        if isinstance(got, Key):
            for choice in node.choices:
                if choice.dtmf == got.digit:
                    return choice, {"by": "dtmf", "choice": choice.name, "goto": choice.goto}
            return None, {"by": "dtmf"}
        match = match_speech(got.text, node.choices)
        if match is None:
            return None, {"by": "speech"}
        return match.choice, {
            "by": "speech", "choice": match.choice.name, "goto": match.choice.goto,
            "phrase": match.phrase, "exact": match.score > 1.0,
        }

    async def _collect(self, node: CollectNode) -> str | IvrResult:
        if not node.secure:
            return await self._collect_digits(node)
        self._media.secure_input(True)  # from the prompt on: a caller may key ahead of it
        try:
            return await self._collect_digits(node)
        finally:
            self._media.secure_input(False)

    async def _collect_digits(self, node: CollectNode) -> str | IvrResult:
        attempt, prompt, preface = 0, node.prompt, None
        while True:
            if preface:
                await self._prompt(preface, barge_in=node.barge_in)
            await self._prompt(prompt, barge_in=node.barge_in)
            digits, failure = await self._read_digits(node)
            if failure is None:
                self._collected[node.store_as] = digits
                detail: dict[str, Any] = {"store_as": node.store_as, "length": len(digits), "secure": node.secure}
                if node.secure:
                    self._secure.add(node.store_as)
                else:
                    detail["digits"] = digits
                self._step(IvrAction.COLLECT, detail)
                return node.goto
            if failure == "timeout":
                self._step(IvrAction.TIMEOUT, {"attempt": attempt + 1, "timeout_s": node.timeout_s, "length": len(digits)})
                preface = None
            else:
                self._step(IvrAction.NO_MATCH, {"by": "dtmf", "reason": failure, "length": len(digits), "attempt": attempt + 1})
                preface = node.no_match
                self._flush_input()
            attempt += 1
            if attempt > node.retries:
                return await self._fallback(node.fallback, failure)
            self._step(IvrAction.RETRY, {"attempt": attempt, "of": node.retries})
            prompt = node.reprompt or node.prompt

    async def _read_digits(self, node: CollectNode) -> tuple[str, str | None]:
        """Digits until the terminator, ``max_digits`` or a timeout; failure reason or None."""
        digits = ""
        while True:
            got = await self._wait_input(node.timeout_s, speech=False)
            if got is None:
                return digits, (None if len(digits) >= node.min_digits else "timeout")
            assert isinstance(got, Key)
            if node.terminator is not None and got.digit == node.terminator:
                return digits, (None if len(digits) >= node.min_digits else "too_short")
            if got.digit in DIGIT_KEYS:
                digits += got.digit
                if len(digits) >= node.max_digits:
                    return digits, None

    async def _queue(self, node: QueueNode) -> IvrResult:
        if node.prompt:
            await self._prompt(node.prompt, barge_in=False)
        self._step(IvrAction.ROUTE, {"queue": node.queue})
        await self._media_call(self._media.route(node.queue))
        return self._result("queue", queue=node.queue)

    async def _transfer(self, node: TransferNode) -> str | IvrResult:
        if node.prompt:
            await self._prompt(node.prompt, barge_in=False)
        self._step(IvrAction.TRANSFER, {"uri": node.uri})
        try:
            await self._media_call(self._media.transfer(node.uri))
        except TransferFailed:
            log.warning("ivr transfer failed at node %s", node.id)
            if node.fallback:
                return await self._fallback(node.fallback, "transfer_failed")
            return self._result("failed", transfer_uri=node.uri)
        return self._result("transfer", transfer_uri=node.uri)

    async def _fallback(self, target: str | None, reason: str | None) -> str | IvrResult:
        self._step(IvrAction.FALLBACK, {"reason": reason, "goto": target})
        if target:
            return target
        return await self._hangup(None)

    async def _hangup(self, prompt: str | None) -> IvrResult:
        if prompt:
            await self._prompt(prompt, barge_in=False)
        self._step(IvrAction.HANGUP, {"by": "ivr"})
        await self._media_call(self._media.hangup())
        return self._result("hangup")

    # -- waiting, playing, emitting ------------------------------------------------------------

    async def _prompt(self, name: str | None, *, kind: str = "prompt", barge_in: bool, speech: bool = False) -> bool:
        """Play a named prompt with PlaybackStarted/Ended around it; False if barged or skipped."""
        if not name:
            return True
        self._check_hangup()
        if barge_in and self._has_input(speech):
            return False  # type-ahead: the caller already answered
        self._playing = Playback(barge_in=barge_in, speech=speech)
        self._barged = False
        self._emit(PlaybackStarted(kind=kind, name=name, party=Party.AGENT))
        try:
            return await self._media_call(self._media.play(self._flow.prompt_path(name, self._prompts_dir), name=name))
        finally:
            self._playing = None
            self._emit(PlaybackEnded(kind=kind, name=name, barged_in=self._barged, party=Party.AGENT))

    async def _wait_input(self, timeout_s: float, *, speech: bool) -> Key | Said | None:
        """Next key (or phrase, when ``speech``); None after ``timeout_s`` of call time."""
        self._timer_from = self._now
        while True:
            self._check_hangup()
            if self._keys:
                return self._keys.popleft()
            if speech and self._said:
                return self._said.popleft()
            if not self._speaking and self._now >= self._timer_from + timeout_s:
                return None
            self._wake.clear()
            await self._wake.wait()

    async def _media_call(self, aw: Awaitable[T]) -> T:
        """Await a media operation, abandoning it if the caller hangs up meanwhile."""
        task = asyncio.ensure_future(aw)
        hung_up = asyncio.ensure_future(self._hung_up.wait())
        try:
            await asyncio.wait({task, hung_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hung_up.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._cancelled:
            raise _CallerHungUp
        return task.result()

    def _barge(self) -> None:
        if not self._barged:
            self._barged = True
            self._media.stop_playback()

    def _has_input(self, speech: bool) -> bool:
        return bool(self._keys) or (speech and (bool(self._said) or self._speaking))

    def _flush_input(self) -> None:
        """After a wrong answer, drop type-ahead typed on the wrong assumption."""
        self._keys.clear()
        self._said.clear()

    def _leave_speech(self) -> None:
        self._listen_speech = False
        self._speaking = False
        self._said.clear()
        if self._grammar_set:
            self._grammar_set = False
            self._media.set_grammar(None)

    def _check_hangup(self) -> None:
        if self._cancelled:
            raise _CallerHungUp

    def _step(self, action: IvrAction, detail: dict[str, Any]) -> None:
        log.debug("ivr node=%s action=%s", self._node_id, action.value)
        self._emit(IvrStep(node=self._node_id, action=action, detail=detail))

    def _emit(self, event: Event) -> None:
        self._media.emit(replace(event, call_id=self._call_id, t=self._now))

    def _result(self, outcome: str, **kw: Any) -> IvrResult:
        return IvrResult.masked(outcome, self._path, self._collected, self._secure, **kw)
