"""A live call's spool survives its worker: what ``serve`` reads back after a ``kill -9``."""

from __future__ import annotations

from pathlib import Path

from callcenter.call_spool import WORKER_LOST, CallSpool, lost_calls
from speech.events import CallEnded, CallStarted, PlaybackStarted
from telephony.kamailio import _parse_dialogs


def test_unfinished_call_is_read_back_and_ended_as_worker_lost(tmp_path: Path) -> None:
    spool = CallSpool(tmp_path, 1)
    spool.open("c1", recording="/rec/c1.wav")
    spool.append(CallStarted(call_id="c1", t=0.0, source="sip", caller="sip:a@b", parties=("caller",)))
    spool.append(PlaybackStarted(call_id="c1", t=0.5, kind="prompt", name="welcome"))
    spool.append(PlaybackStarted(call_id="other", t=0.5, kind="prompt", name="x"))  # not opened: ignored
    spool.open("c2")
    spool.finish("c2")  # finished calls leave nothing behind
    # the worker dies mid-write: a torn last line, and no close()
    with open(spool.dir / "c1.jsonl", "a") as fh:
        fh.write('{"schema": 1, "type": "playback.en')

    [lost] = lost_calls(tmp_path, 1)
    assert lost.call_id == "c1" and lost.meta["recording"] == "/rec/c1.wav" and lost.meta["worker"] == 1
    assert [e.type.value for e in lost.events] == ["call.started", "playback.started"]
    ended = lost.ended_events()
    assert isinstance(ended[-1], CallEnded) and ended[-1].reason == WORKER_LOST and ended[-1].t == 0.5
    assert lost_calls(tmp_path, 0) == []


def test_a_call_that_had_ended_keeps_its_own_end(tmp_path: Path) -> None:
    spool = CallSpool(tmp_path, 0)
    spool.open("c1")
    spool.append(CallEnded(call_id="c1", t=3.0, reason="hangup", duration=3.0))
    [lost] = lost_calls(tmp_path, 0)
    assert [e.reason for e in lost.ended_events() if isinstance(e, CallEnded)] == ["hangup"]


KAMCMD_PROFILE_LIST = """{
\th_entry: 69
\th_id: 421
\tref: 1
\tcall-id: 104-15531@127.0.0.1
\tfrom_uri: sip:sipp@127.0.0.1:16000
\tstate: 4
\tcaller: {
\t\ttag: 15531SIPpTag00104
\t}
}
{
\th_entry: 70
\th_id: 9
\tref: 1
\tcall-id: gone@127.0.0.1
\tstate: 5
}
"""


def test_front_dialogs_are_parsed_from_kamcmd_output() -> None:
    dialogs = _parse_dialogs(KAMCMD_PROFILE_LIST)
    assert [(d.h_entry, d.h_id, d.call_id, d.state) for d in dialogs] == [
        (69, 421, "104-15531@127.0.0.1", 4), (70, 9, "gone@127.0.0.1", 5)]
