"""Calls' recordings for the console's review page (``live.console.review.CallRecordings``).

Finds a stored call's recording (``calls.recording``: the caller leg's stereo WAV of a live call,
the replayed file of a replay), decrypts it when it is encrypted at rest (the key of
``sip.recording``; never written to disk decrypted), picks one party's channel and silences
every redacted span on all channels.

Time: transcripts, words and events run on the call clock, which counts 20 ms frames from the
call's first media frame; the recorder writes one sample frame per tick from that same frame,
so call-clock second ``t`` is recording second ``t`` (a replay's clock is the file's). Measured
on a live bridged call (``tests/test_bridged_calls.py``'s set-up): the caller leg's recording is
exactly as long as ``call.ended``'s ``t`` (28.0 s), the agent's stored words fall on channel 1's
speech within one 20 ms frame, the caller's on channel 2's within 0.16 s (word timing). Channel
1 of a stereo recording is the agent side (what the caller heard: prompts and the agent),
channel 2 the caller; a mono file is the caller.

Redaction: the store keeps transcripts with PII replaced by tags (``[CARD]``, ``[PHONE]``...,
``summaries.redact``) and each tag as one word spanning the words it replaced. Those words'
spans, widened by ``REDACTION_PAD_S`` for recognizer timing slack, are zeroed; an utterance whose
text holds a tag but whose words do not (an engine without word timings) is zeroed whole. Keys of
a card number typed outside a secure IVR node (masked ``X`` in the store) are zeroed from their
onset for their tone's length (at least ``KEY_TONE_S``): in-band tones would give the digits away.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import wave
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from callcenter.settings import Settings
from live.console.review import PartyChoice, RecordingUnavailable
from summaries.store import CrmStore, StoredRecording
from telephony.recording_crypto import RecordingDecryptError, decrypt_recording, is_encrypted

log = logging.getLogger(__name__)

REDACTION_PAD_S = 0.25
"""Silence kept around a redacted word: recognizers place word edges up to ~0.16 s off (measured
on a live bridged call: whisper's caller words 0.06-0.16 s after the voice in the recording)."""
KEY_TONE_S = 0.3
"""A masked key's tone length when its event has none (RFC 4733 and SIP INFO keys)."""
REDACTION_TAG = re.compile(r"\[[A-Z][A-Z_]*\]")
CACHE_BYTES = 128 * 1024 * 1024
"""Rendered WAVs kept in memory (a browser seeks with many range requests on one file): about
an hour of 8 kHz stereo; the oldest go first."""
CHANNEL = {"agent": 0, "caller": 1}


@dataclass(frozen=True, slots=True)
class Audio:
    """Decoded audio: int16 samples shaped (frames, channels)."""

    samples: np.ndarray
    rate: int


def redacted_spans(rec: StoredRecording) -> list[tuple[float, float]]:
    """Call-clock (start, end) seconds to silence, padded, sorted."""
    spans: list[tuple[float, float]] = []
    for u in rec.utterances:
        tagged = [(s, e) for w, s, e in u.words if REDACTION_TAG.fullmatch(w)]
        if tagged:
            spans += tagged
        elif REDACTION_TAG.search(u.text):
            spans.append((u.t_start, u.t_end))
    spans += [(t, t + max(duration, KEY_TONE_S)) for t, duration in rec.masked_keys]
    return sorted((max(0.0, s - REDACTION_PAD_S), e + REDACTION_PAD_S) for s, e in spans)


def silence(audio: Audio, spans: list[tuple[float, float]]) -> Audio:
    """A copy of ``audio`` with every span zeroed on all channels."""
    out = audio.samples.copy()
    for start, end in spans:
        out[int(start * audio.rate): int(np.ceil(end * audio.rate))] = 0
    return Audio(out, audio.rate)


def pick(audio: Audio, party: PartyChoice) -> Audio:
    """Both channels as recorded, or one party's as mono."""
    if party == "both":
        return audio
    channels = audio.samples.shape[1]
    if channels == 1:
        if party == "agent":
            raise RecordingUnavailable("the recording has the caller only (mono)")
        return audio
    return Audio(np.ascontiguousarray(audio.samples[:, CHANNEL[party]:CHANNEL[party] + 1]), audio.rate)


def wav_bytes(audio: Audio) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(audio.samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(audio.rate)
        w.writeframes(audio.samples.astype("<i2").tobytes())
    return buf.getvalue()


def load_audio(path: Path, key: bytes | None) -> Audio:
    """Decode a recording (plain audio of any format soundfile reads, or encrypted WAV)."""
    if not path.is_file():
        raise RecordingUnavailable("the recording is not on this host")
    if is_encrypted(path):
        if key is None:
            raise RecordingUnavailable("the recording is encrypted and no key is configured", 503)
        try:
            plain = decrypt_recording(path, key)
        except (OSError, RecordingDecryptError) as exc:
            raise RecordingUnavailable(f"cannot decrypt the recording ({type(exc).__name__})", 503) from exc
        samples = np.frombuffer(plain.pcm, dtype="<i2").reshape(-1, plain.channels)
        return Audio(samples, plain.sample_rate)
    try:
        samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise RecordingUnavailable(f"cannot read the recording ({type(exc).__name__})", 503) from exc
    return Audio(samples, int(rate))


class StoreRecordings:
    """A ``CallRecordings`` over the CRM store and this host's recordings."""

    def __init__(self, url: str, *, key: bytes | None = None, store: CrmStore | None = None) -> None:
        self.store = store or CrmStore(url)
        self.store.start()
        self.key = key
        self._cache: OrderedDict[tuple[str, str, str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def agent_of(self, call_id: str) -> str | None:
        rec = self.store.recording_of(call_id)
        return rec.agent_id if rec is not None else None

    def wav(self, call_id: str, party: PartyChoice) -> bytes:
        rec = self.store.recording_of(call_id)
        if rec is None or not rec.path:
            raise RecordingUnavailable("the call was not recorded")
        path = Path(rec.path)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            raise RecordingUnavailable("the recording is not on this host") from None
        cache_key = (call_id, party, str(path), stamp)
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
                return hit
        body = wav_bytes(pick(silence(load_audio(path, self.key), redacted_spans(rec)), party))
        with self._lock:
            self._cache[cache_key] = body
            while sum(map(len, self._cache.values())) > CACHE_BYTES:
                self._cache.popitem(last=False)
        return body

    def close(self) -> None:
        self.store.stop()


def console_recordings(settings: Settings, store: CrmStore) -> StoreRecordings:
    """The console's recordings over the store it already has open; an unreadable key file
    leaves encrypted recordings unplayable (503) rather than stopping the console."""
    try:
        key = settings.sip.recording.key()
    except ValueError as exc:
        log.warning("recordings encrypted at rest cannot be played back: %s", exc)
        key = None
    return StoreRecordings(settings.store_url, key=key, store=store)
