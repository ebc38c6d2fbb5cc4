"""The recognizer's place in the stage chain: VAD-gated audio in, transcripts out later.

Only speech reaches the engine (the VAD opens and closes utterances, with pre-roll so the first
phoneme is not lost), which is what makes the pipeline cheaper than running the engine over the
whole call. Results arrive asynchronously on worker threads and re-enter the chain right after
this stage through the emit the pipeline bound it to (``self.ctx.emit``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from speech.asr.base import AsrEngine
from speech.asr.stream import UtteranceStream, open_stream
from speech.events import Event, PlaybackEnded, PlaybackStarted, SpeechEnded, SpeechStarted
from speech.frames import FRAME_MS, AudioFrame, Party
from speech.load import ProcessLoad
from speech.settings import AsrSettings
from speech.stage import Control, SetGrammar, Stage


class AsrStage(Stage):
    name = "asr"

    def __init__(
        self,
        engine: AsrEngine,
        *,
        preroll_ms: int = 300,
        partials: bool = True,
        max_utterance_s: float = 20.0,
        parties: Sequence[Party] = (Party.CALLER, Party.AGENT),
        settings: AsrSettings | None = None,
        load: ProcessLoad | None = None,
    ) -> None:
        """``settings`` carries partial cadence and guards; without it, defaults plus the two
        keyword arguments (which ``settings``, when given, overrides). ``load``: the process's
        load state (live partials pause while it sheds them)."""
        self.engine = engine
        self.load = load
        self.settings = settings or AsrSettings(partials=partials, max_utterance_s=max_utterance_s)
        preroll_frames = max(1, preroll_ms // FRAME_MS)
        self._preroll_s = preroll_frames * FRAME_MS / 1000
        self._preroll: dict[Party, deque[AudioFrame]] = {
            p: deque(maxlen=preroll_frames) for p in parties
        }
        self._streams: dict[Party, UtteranceStream] = {}
        self._grammar: dict[Party, tuple[str, ...] | None] = {}
        self.audio_seconds_sent = 0.0

    def stream(self, party: Party) -> UtteranceStream:
        s = self._streams.get(party)
        if s is None:
            s = open_stream(self.engine, party, self.ctx.emit, self.settings, self.load)
            s.set_grammar(self._grammar.get(party))
            self._streams[party] = s
        return s

    @property
    def pending(self) -> int:
        """Finals owed for utterances already ended (replay waits for them)."""
        return sum(s.finals_pending for s in self._streams.values())

    def process_control(self, control: Control) -> None:
        if isinstance(control, SetGrammar):
            self.set_grammar(control.party, control.phrases)

    def set_grammar(self, party: Party, phrases: Sequence[str] | None) -> None:
        self._grammar[party] = tuple(phrases) if phrases else None
        if party in self._streams:
            self._streams[party].set_grammar(phrases)

    def process_frame(self, frame: AudioFrame) -> list[Event]:
        stream = self._streams.get(frame.party)
        if stream is not None and stream.in_utterance:
            stream.push(frame)
            self.audio_seconds_sent += frame.duration
        else:
            ring = self._preroll.get(frame.party)
            if ring is not None:
                ring.append(frame)
        return []

    def process_event(self, event: Event) -> list[Event]:
        party = event.party
        if isinstance(event, SpeechStarted) and party in self._preroll:
            ring = self._preroll[party]
            pre = [f for f in ring if f.end > event.t - self._preroll_s]
            ring.clear()
            self.stream(party).begin(event.t, pre)
            self.audio_seconds_sent += sum(f.duration for f in pre)
        elif isinstance(event, SpeechEnded) and party in self._streams:
            self._streams[party].end(event.t)
        elif isinstance(event, PlaybackStarted | PlaybackEnded):
            pass  # their echo on the caller channel is held back by the VAD's echo gate
        return []

    def finish(self, t: float) -> list[Event]:
        for s in self._streams.values():
            s.end(t)
        return []

    async def drain(self) -> None:
        for s in list(self._streams.values()):
            await s.drain()

    async def aclose(self) -> None:
        for s in list(self._streams.values()):
            await s.aclose()
