"""Drive a chain of stages with frames the way the pipeline does, for stage tests.

Events a stage returns go, in order, to the ``process_event`` of every later stage (and what
those return goes further down); ``finish`` is called on each stage in chain order at the end of
the frames, and its events flow down the same way. Scripted events (IVR playback marks, RFC 4733
digits) can be injected at their call time, before the first frame that starts at or after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from speech.events import Event
from speech.frames import FRAME_MS, PIPELINE_RATE, AudioFrame, Party
from speech.stage import Stage


def run_stages(
    stages: Sequence[Stage],
    frames: Iterable[AudioFrame],
    inject: Iterable[Event] = (),
    end: float | None = None,
) -> list[Event]:
    """Feed ``frames`` through ``stages``; return every event emitted, in emission order.

    ``inject``: events entering the chain at the top (seen by every stage's ``process_event``)
    once the call clock reaches their ``t``. ``end``: call time passed to ``finish`` (default:
    end of the last frame).
    """
    out: list[Event] = []
    pending = sorted(inject, key=lambda e: e.t)

    def deliver(event: Event, after: int) -> None:
        out.append(event)
        for j in range(after + 1, len(stages)):
            for new in stages[j].process_event(event):
                deliver(new, j)

    last_end = 0.0
    for frame in frames:
        while pending and pending[0].t <= frame.timestamp + 1e-9:
            deliver(pending.pop(0), -1)
        for i, stage in enumerate(stages):
            for event in stage.process_frame(frame):
                deliver(event, i)
        last_end = max(last_end, frame.end)
    for event in pending:
        deliver(event, -1)
    t_end = last_end if end is None else end
    for i, stage in enumerate(stages):
        for event in stage.finish(t_end):
            deliver(event, i)
    return out


def frames_from_tracks(tracks: dict[Party, np.ndarray], frame_ms: int = FRAME_MS) -> list[AudioFrame]:
    """Frames from int16 tracks at the pipeline rate, parties interleaved per slot."""
    step = PIPELINE_RATE * frame_ms // 1000
    total = max(len(t) for t in tracks.values())
    frames: list[AudioFrame] = []
    for start in range(0, total - total % step, step):
        for party, track in tracks.items():
            chunk = track[start : start + step]
            if len(chunk) < step:
                chunk = np.pad(chunk, (0, step - len(chunk)))
            frames.append(AudioFrame(chunk.astype("<i2").tobytes(), PIPELINE_RATE, start / PIPELINE_RATE, party))
    return frames


def of_type(events: Iterable[Event], cls: type[Event]) -> list:
    """The events of one class, in order."""
    return [e for e in events if isinstance(e, cls)]
