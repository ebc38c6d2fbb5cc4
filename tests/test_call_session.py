"""CallSession glue without SIP: a scripted leg on a virtual call clock, the real pipeline, the
real IVR with the shipped flow and prompts, the real after-call chain into a SQLite CRM store.

The leg pushes 20 ms silence frames as fast as the loop takes them; prompts "play" for their WAV
duration of call time, so IVR timeouts run exactly as on a live call, only faster.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from callcenter.aftercall import AfterCall
from callcenter.call_session import CallSession
from callcenter.settings import load_settings
from ivr.flow import load_flow
from speech.events import DtmfDigit, Event, SummaryReady
from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party
from summaries.store import CrmStore
from telephony.items import LegEnded

FRAME_S = FRAME_MS / 1000
SILENCE = bytes(PIPELINE_RATE * FRAME_MS // 1000 * 2)


class ScriptedLeg:
    """The ``CallLeg`` surface a session uses, driven by (call time, action) entries."""

    def __init__(self, script: list[tuple[float, str, str]], *, max_s: float = 120.0) -> None:
        self.call_id = "sess-test-1"
        self.remote_uri = "<sip:caller@127.0.0.1>"
        self.local_uri = "<sip:ivr@127.0.0.1>"
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.frames_received = 0
        self.frames_dropped = 0
        self.recording_path: Path | None = None
        self.ended: LegEnded | None = None
        self.played: list[str] = []
        self.script = sorted(script)
        self.max_s = max_s
        self._clock = asyncio.Condition()
        self._stop_play = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def now(self) -> float:
        return self.frames_received * FRAME_S

    def start(self) -> None:
        self._task = asyncio.create_task(self._feed())

    async def _feed(self) -> None:
        script = list(self.script)
        while self.ended is None and self.now < self.max_s:
            while script and script[0][0] <= self.now:
                _, action, arg = script.pop(0)
                if action == "dtmf":
                    for digit in arg:
                        self.inbox.put_nowait(DtmfDigit(call_id=self.call_id, t=self.now, party=Party.CALLER,
                                                        digit=digit, source="rfc4733"))
                elif action == "hangup":
                    self._end("Normal call clearing", 200)
                    return
            self.inbox.put_nowait(AudioFrame(SILENCE, PIPELINE_RATE, self.now, Party.CALLER))
            self.frames_received += 1
            async with self._clock:
                self._clock.notify_all()
            await asyncio.sleep(0)
        self._end("script over", 200)

    def _end(self, reason: str, status: int) -> None:
        if self.ended is None:
            self.ended = LegEnded(reason=reason, status=status, t=self.now)
            self.inbox.put_nowait(self.ended)
            self._stop_play.set()

    async def play(self, wav: Path) -> bool:
        if self.ended is not None:
            return False
        self.played.append(Path(wav).stem)
        until = self.now + sf.info(str(wav)).duration
        self._stop_play.clear()
        async with self._clock:
            while self.now < until and not self._stop_play.is_set():
                await self._clock.wait()
        return not self._stop_play.is_set()

    def stop_playback(self) -> None:
        self._stop_play.set()

    async def hangup(self) -> None:
        self._end("hung up by ivr", 200)

    async def transfer(self, uri: str) -> None:
        raise RuntimeError("no transfer target in this test")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(overrides={"data_dir": str(tmp_path), "asr.engine": "none", "mqtt.enabled": False},
                         environ={})


async def run_session(settings, script, *, after_call: Any = "real", max_s: float = 60.0):
    flow = load_flow(None)
    leg = ScriptedLeg(script, max_s=max_s)
    seen: list[Event] = []
    after = AfterCall(settings) if after_call == "real" else after_call
    if after is not None and hasattr(after, "start"):
        await after.start()
    try:
        session = CallSession(leg, settings, None, flow=flow, prompts_dir=flow.prompts_dir,
                              sinks=[seen.append], after_call=after)
        leg.start()
        outcome = await asyncio.wait_for(session.run(), 60)
    finally:
        await leg.aclose()
        if after is not None and hasattr(after, "stop"):
            await after.stop()
    return outcome, leg, seen


def stored(settings, call_id: str):
    store = CrmStore(settings.store_url)
    store.start()
    try:
        return store.get_call(call_id)
    finally:
        store.stop()


async def test_keys_reach_billing_and_the_call_is_stored(settings) -> None:
    script = [(1.0, "dtmf", "1"), (2.0, "dtmf", "123456#"), (15.0, "hangup", "")]
    outcome, leg, seen = await run_session(settings, script)
    assert outcome.ivr.outcome == "queue" and outcome.ivr.queue == "billing"
    assert outcome.ivr.path == ["welcome", "main_menu", "billing_account", "billing_queue"]
    assert leg.played[:1] == ["welcome"] and "billing_queue" in leg.played
    assert outcome.end_reason == "hangup"
    assert outcome.frames_dropped == 0 and outcome.frames_received >= 14 / FRAME_S
    assert outcome.summary is not None and outcome.summary["ivr_outcome"]["queue"] == "billing"
    # the summary event goes out to the live sinks after the call
    assert isinstance(seen[-1], SummaryReady) and seen[-1].call_id == leg.call_id
    detail = stored(settings, leg.call_id)
    assert detail is not None and detail.summary is not None
    assert detail.summary.ivr_path[:3] == ("welcome", "main_menu", "billing_account")
    assert detail.summary.end_reason == "hangup"


async def test_silence_times_out_reprompts_and_falls_back_to_agents(settings) -> None:
    outcome, leg, _ = await run_session(settings, [(90.0, "hangup", "")], max_s=100)
    assert outcome.ivr.outcome == "queue" and outcome.ivr.queue == "agents"
    assert leg.played.count("main_menu_reprompt") == 2  # the shipped flow: 2 retries
    steps = [e for e in outcome.events if e.type.value == "ivr.step" and e.node == "main_menu"]
    assert [s.action for s in steps].count("timeout") == 3


async def test_caller_hanging_up_mid_prompt_is_recorded(settings) -> None:
    outcome, leg, _ = await run_session(settings, [(2.0, "hangup", "")])
    assert outcome.ivr.outcome == "caller_hangup" and outcome.ivr.path == ["welcome"]
    detail = stored(settings, leg.call_id)
    assert detail is not None and 1.9 <= detail.call.duration <= 2.5


class FailingAfterCall:
    def redacting(self, sink):
        return sink

    async def complete_with_scorecards(self, call_id: str, events, **extra):
        raise RuntimeError("database on fire")


async def test_a_failing_after_call_does_not_break_the_session(settings) -> None:
    outcome, leg, seen = await run_session(settings, [(1.0, "hangup", "")], after_call=FailingAfterCall())
    assert outcome.summary is None
    assert outcome.ivr.outcome == "caller_hangup"
    assert outcome.events[-1].type.value == "call.ended"
    assert not any(isinstance(e, SummaryReady) for e in seen)
