"""QA replay: recorded calls through the live pipeline on a virtual clock, checked against
expectations.

Frames are fed as fast as the pipeline takes them (call time comes from the audio, not the wall
clock), so a replay produces the same events a live call would, only faster than real time.
A bad file is reported on one line and the batch goes on.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from callcenter.aftercall import AfterCall, finish_call, live_sinks
from callcenter.render import EventPrinter
from callcenter.settings import Settings
from callcenter.wiring import build_pipeline
from qa import Expectation, ExpectationError, Mismatch, compare, expectation_for, load_expectation
from speech.asr.base import AsrEngine
from speech.audio_io import AUDIO_SUFFIXES, AudioFileError, open_recording
from speech.events import CallStarted, Event
from telephony.recording_crypto import SUFFIX as ENCRYPTED_SUFFIX
from telephony.recording_crypto import RecordingDecryptError, decrypt_recording, is_encrypted


@dataclass
class ReplayResult:
    path: Path
    call_id: str | None = None
    error: str | None = None
    events: list[Event] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    checked: bool = False
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.mismatches


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders expand to the audio files inside them, sorted."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES
                              or f.name.lower().endswith(".wav" + ENCRYPTED_SUFFIX)))
        else:
            out.append(p)
    return out


async def replay_file(
    path: Path,
    settings: Settings,
    engine: AsrEngine | None,
    *,
    sinks: Sequence[Callable[[Event], None]] = (),
    after_call: AfterCall | None = None,
    expectation: Expectation | None = None,
) -> ReplayResult:
    """Replay one recording through a fresh pipeline; summarize, store and check it.

    A recording encrypted at rest (``telephony.recording_crypto``) is decrypted with the key of
    ``settings.sip.recording`` into a private temporary WAV that lives only for the replay."""
    if not await asyncio.to_thread(is_encrypted, path):
        return await _replay_audio(path, path, settings, engine, sinks=sinks, after_call=after_call,
                                   expectation=expectation)
    try:
        key = settings.sip.recording.key()
    except ValueError as exc:
        return ReplayResult(path=path, error=str(exc))
    if key is None:
        return ReplayResult(path=path, error=(
            f"{path}: the recording is encrypted; set sip.recording.encryption_key or "
            "sip.recording.encryption_key_file (CALLCENTER_SIP__RECORDING__ENCRYPTION_KEY_FILE) to replay it"))
    try:
        plain = await asyncio.to_thread(decrypt_recording, path, key)
    except (OSError, RecordingDecryptError) as exc:
        return ReplayResult(path=path, error=str(exc))
    with tempfile.TemporaryDirectory(prefix="callcenter-replay-") as tmp:  # 0700
        wav = Path(tmp) / path.name.removesuffix(ENCRYPTED_SUFFIX)
        await asyncio.to_thread(wav.write_bytes, plain.wav_bytes())
        return await _replay_audio(path, wav, settings, engine, sinks=sinks, after_call=after_call,
                                   expectation=expectation)


async def _replay_audio(
    path: Path,
    audio: Path,
    settings: Settings,
    engine: AsrEngine | None,
    *,
    sinks: Sequence[Callable[[Event], None]],
    after_call: AfterCall | None,
    expectation: Expectation | None,
) -> ReplayResult:
    """Replay ``audio`` (``path`` itself, or its decrypted copy) and report it as ``path``."""
    result = ResultTimer(path)
    try:
        recording = await asyncio.to_thread(open_recording, audio)  # streamed: memory stays flat
    except AudioFileError as exc:
        return result.fail(str(exc).replace(str(audio), str(path)))
    call_id = f"replay-{uuid.uuid4().hex[:12]}"
    pipeline = build_pipeline(call_id, settings, engine)
    for sink in live_sinks(sinks, after_call):
        pipeline.add_sink(sink)
    started = CallStarted(
        t=0.0,
        source="replay",
        caller=Path(path.name.removesuffix(ENCRYPTED_SUFFIX)).stem,
        callee="replay",
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        parties=tuple(p.value for p in recording.parties),
    )
    await pipeline.start(started)
    for frame in recording.frames():
        await pipeline.feed(frame)
    events = await pipeline.end("end_of_recording", duration=recording.duration)
    res = result.done(call_id, events, recording.duration)
    if after_call is not None:
        res.summary = await finish_call(after_call, call_id, events, sinks, t=recording.duration,
                                        source_file=str(path), recording=str(await asyncio.to_thread(path.resolve)))
    if expectation is not None:
        res.mismatches = compare(expectation, events)
        res.checked = True
    return res


class ResultTimer:
    """Wall and CPU time of one replay, for the speed report."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def fail(self, error: str) -> ReplayResult:
        return ReplayResult(path=self.path, error=error)

    def done(self, call_id: str, events: list[Event], audio_seconds: float) -> ReplayResult:
        return ReplayResult(
            path=self.path,
            call_id=call_id,
            events=events,
            audio_seconds=audio_seconds,
            wall_seconds=time.perf_counter() - self.wall,
            cpu_seconds=time.process_time() - self.cpu,
        )


async def replay_batch(
    paths: Sequence[Path],
    settings: Settings,
    engine: AsrEngine | None,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    as_json: bool = False,
    expect: Path | None = None,
    check: bool = False,
    after_call: AfterCall | None = None,
    progress: bool = True,
    extra_sinks: Sequence[Callable[[Event], None]] = (),
) -> list[ReplayResult]:
    """Replay every file in this process; print events as they happen, then each summary and
    verdict (``callcenter.replay_parallel`` is the same on a pool of workers)."""
    from callcenter.replay_progress import BatchProgress

    results: list[ReplayResult] = []
    with BatchProgress(len(paths), err, enabled=progress) as bar:
        shown, shown_err = bar.stdout(out), bar.stdout(err)
        for path in paths:
            exp: Expectation | None = None
            try:
                exp_path = expect if expect is not None else (expectation_for(path) if check else None)
                if check and exp_path is None:
                    raise ExpectationError(f"{path}: no expectation file ({path.stem}.expect.json)")
                exp = load_expectation(exp_path) if exp_path is not None else None
            except ExpectationError as exc:
                results.append(ReplayResult(path=path, error=str(exc)))
                shown_err.write(f"error: {exc}\n")
                bar.advance(0.0, ok=False)
                continue
            if not as_json:
                shown.write(f"== {path}\n")
            printer = EventPrinter(shown, as_json=as_json, label=str(path))
            res = await replay_file(path, settings, engine, sinks=[printer, *extra_sinks], after_call=after_call,
                                    expectation=exp)
            results.append(res)
            report_file(res, shown, shown_err, as_json=as_json)
            bar.advance(res.audio_seconds, ok=res.ok)
    return results


def report_file(res: ReplayResult, out: TextIO, err: TextIO, *, as_json: bool) -> None:
    """After a file's events: its error line, or its summary and QA verdict."""
    if res.error:
        err.write(f"error: {res.error}\n")
    elif not as_json:
        _print_verdict(res, out)
    elif res.checked:
        import json

        out.write(json.dumps({"type": "qa.verdict", "file": str(res.path), "ok": res.ok,
                              "mismatches": [m.__dict__ for m in res.mismatches]}) + "\n")


def _print_verdict(res: ReplayResult, out: TextIO) -> None:
    if res.summary is not None:
        from callcenter.aftercall import format_summary

        out.write(format_summary(res.summary))
    speed = res.audio_seconds / res.wall_seconds if res.wall_seconds else 0.0
    out.write(f"   {res.audio_seconds:.1f} s of audio in {res.wall_seconds:.1f} s ({speed:.1f}x real time)\n")
    if res.checked:
        if res.ok:
            out.write("   QA: PASS\n")
        else:
            out.write(f"   QA: FAIL ({len(res.mismatches)} mismatch{'es' if len(res.mismatches) > 1 else ''})\n")
            for m in res.mismatches:
                out.write(f"     - {m.check}: expected {m.expected}, got {m.got}\n")


def exit_code(results: Sequence[ReplayResult]) -> int:
    """0 all good; 1 an expectation failed; 2 a file could not be replayed."""
    if any(r.error for r in results):
        return 2
    if any(r.mismatches for r in results):
        return 1
    return 0
