"""Vosk (Kaldi): the accurate engine when a model for the call's language is available.

One ``vosk.Model`` per engine (hundreds of MB, seconds to load), one ``KaldiRecognizer`` per
session (~12 MB). ``AcceptWaveform`` releases the GIL, so several sessions decode in parallel
threads, but a single chunk can stall for seconds: never call a session on the event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import vosk

from speech.asr.base import AsrEngine, AsrError, Hypothesis, RecognizerSession
from speech.events import Word
from speech.settings import AsrSettings
from speech.text import match_phrase, normalize

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
UNKNOWN = "[unk]"
"""Vosk's out-of-grammar token: lets a grammar recognizer say "none of these"."""


def check_model_dir(path: Path) -> None:
    """Raise ``AsrError`` naming ``path`` unless it looks like a vosk model directory.

    A vosk model has an acoustic model (``am/final.mdl``, or ``final.mdl`` in old layouts),
    feature settings (``conf/mfcc.conf``) and a decoding graph (``graph/HCLG.fst`` or the
    lookahead pair ``HCLr.fst`` + ``Gr.fst``).
    """
    if not path.exists():
        raise AsrError(f"{path}: vosk model not found (no such directory)")
    if not path.is_dir():
        raise AsrError(f"{path}: vosk model must be a directory, this is a file")
    if not any((path / p).is_file() for p in ("am/final.mdl", "final.mdl")):
        raise AsrError(f"{path}: not a vosk model (no am/final.mdl acoustic model)")
    if not any((path / p).is_file() for p in ("conf/mfcc.conf", "mfcc.conf")):
        raise AsrError(f"{path}: not a vosk model (no conf/mfcc.conf)")
    graphs = ("graph/HCLG.fst", "HCLG.fst", "graph/HCLr.fst", "HCLr.fst")
    if not any((path / p).is_file() for p in graphs):
        raise AsrError(f"{path}: not a vosk model (no decoding graph HCLG.fst or HCLr.fst)")


def undithered(path: Path, cache: Path | None = None) -> Path:
    """``path``, or an overlay of it whose ``conf/mfcc.conf`` adds ``--dither=0``.

    Kaldi adds random noise to every frame's features unless told not to (``--dither``, default
    1.0), and most vosk models leave it on: the same audio decoded twice gave different words (a
    Korean grammar answer wrong in 4 of 40 decodes, right in 25 of 25 without dither). QA replays
    and tests need the same words every time. The overlay (in ``cache``, default
    ``~/.cache/callcenter/vosk``) links to the model's files and copies only its feature settings;
    the model itself is never written to. Falls back to ``path`` when no overlay can be made."""
    conf = path / "conf" / "mfcc.conf"
    try:
        text = conf.read_text()
    except OSError:
        return path  # an old layout (mfcc.conf at the top): loaded as it is
    if "--dither" in text:
        return path
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "callcenter" / "vosk"
    key = hashlib.sha256(f"{path.resolve()}\n{text}".encode()).hexdigest()[:16]
    out = cache / f"{path.name}-{key}"
    if (out / "conf" / "mfcc.conf").is_file():
        return out
    tmp = cache / f".{out.name}.{os.getpid()}"
    try:
        (tmp / "conf").mkdir(parents=True)
        for entry in path.resolve().iterdir():
            if entry.name != "conf":
                (tmp / entry.name).symlink_to(entry)
        for entry in (path / "conf").resolve().iterdir():
            if entry.name != "mfcc.conf":
                (tmp / "conf" / entry.name).symlink_to(entry)
        (tmp / "conf" / "mfcc.conf").write_text(text.rstrip("\n") + "\n--dither=0\n")
        tmp.rename(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if (out / "conf" / "mfcc.conf").is_file():
            return out  # another process made it first
        log.warning("vosk: could not turn feature dither off for %s (%s); decodes may vary run to run", path, exc)
        return path
    return out


class VoskEngine(AsrEngine):
    """A loaded vosk model; create one per process and share it across calls."""

    name = "vosk"
    sample_rate = SAMPLE_RATE
    concurrency = 2  # AcceptWaveform releases the GIL: one decode per core

    def __init__(
        self, model_path: Path | None = None, *, language: str | None = None, download: bool = False
    ) -> None:
        vosk.SetLogLevel(-1)
        self.language = language
        t0 = time.perf_counter()
        if model_path is not None:
            path = Path(model_path).expanduser()
            check_model_dir(path)
            self.model_path: Path | None = path
            try:
                self._model: vosk.Model | None = vosk.Model(str(undithered(path)))
            except Exception as exc:  # vosk raises a bare Exception
                raise AsrError(f"{path}: vosk could not load the model ({exc})") from exc
        elif download and language:
            self.model_path = None
            try:
                self._model = vosk.Model(lang=language)
            except (Exception, SystemExit) as exc:  # vosk calls sys.exit() for unknown languages
                raise AsrError(
                    f"vosk could not download or load a model for language {language!r} ({exc!r})"
                ) from exc
        else:
            raise AsrError(
                "no vosk model: set asr.vosk_model_path (or VOSK_MODEL_PATH), "
                "or allow asr.vosk_download with a language"
            )
        self.load_seconds = time.perf_counter() - t0
        """Time it took to load the model."""

    @property
    def description(self) -> str:
        model = str(self.model_path) if self.model_path else f"downloaded ({self.language})"
        return f"vosk, model {model}, loaded in {self.load_seconds:.1f} s"

    def open_session(self, grammar: Sequence[str] | None = None) -> VoskSession:
        if self._model is None:
            raise AsrError("vosk engine is closed")
        return VoskSession(self._model, grammar)

    def close(self) -> None:
        """Drop the model (freed once every session is closed too). Idempotent."""
        self._model = None
        super().close()


class VoskSession(RecognizerSession):
    """One ``KaldiRecognizer`` at 16 kHz with word timings; not thread-safe."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model: vosk.Model, grammar: Sequence[str] | None) -> None:
        self._grammar = tuple(grammar) if grammar else None
        args: list[object] = [model, float(SAMPLE_RATE)]
        if self._grammar:
            self._spoken = {normalize(p): p for p in self._grammar if normalize(p)}
            if not self._spoken:
                raise AsrError("grammar has no phrases")
            for phrase in self._spoken:
                if all(model.vosk_model_find_word(w) < 0 for w in phrase.split()):
                    raise AsrError(f"grammar phrase {phrase!r} has no word in the vosk model's vocabulary")
            phrases = list(self._spoken)
            if model.vosk_model_find_word(UNKNOWN) >= 0:
                phrases.append(UNKNOWN)
            args.append(json.dumps(phrases, ensure_ascii=False))
        else:
            self._spoken = {}
        try:
            self._rec: vosk.KaldiRecognizer | None = vosk.KaldiRecognizer(*args)
        except Exception as exc:
            raise AsrError(f"vosk could not create a recognizer ({exc})") from exc
        self._rec.SetWords(True)
        if hasattr(self._rec, "SetPartialWords"):
            self._rec.SetPartialWords(False)  # partial word timings are not used; saves work
        self._samples = 0  # fed since the recognizer was created
        self._utt_start = 0  # sample index where the current utterance began
        self._segments: list[dict[str, Any]] = []  # results vosk endpointed inside this utterance
        self._last_partial = ""

    def accept(self, pcm: bytes) -> Hypothesis | None:
        rec = self._require()
        if not pcm:
            return None
        self._samples += len(pcm) // 2
        try:
            endpoint = rec.AcceptWaveform(pcm)
        except Exception as exc:
            raise AsrError(f"vosk failed to decode ({exc})") from exc
        if endpoint:
            # Vosk's own endpointer closed a segment; keep it, the utterance is the VAD's call.
            self._segments.append(json.loads(rec.Result()))
            text = self._joined_text("")
        elif not self.partials:
            return None
        else:
            text = self._joined_text(json.loads(rec.PartialResult()).get("partial", ""))
        if not text or text == self._last_partial:
            return None
        self._last_partial = text
        return Hypothesis(text=self._display(text), final=False)

    def finish(self) -> Hypothesis:
        """End the utterance; times are seconds into it, confidence the mean word confidence."""
        rec = self._require()
        results = [*self._segments, json.loads(rec.FinalResult())]
        offset = self._utt_start / SAMPLE_RATE
        words = tuple(
            Word(
                word=w["word"],
                start=round(max(float(w["start"]) - offset, 0.0), 3),
                end=round(max(float(w["end"]) - offset, 0.0), 3),
                conf=float(min(max(w.get("conf", 1.0), 0.0), 1.0)),
            )
            for r in results
            for w in r.get("result", ())
            if w.get("word") and w["word"] != UNKNOWN
        )
        text = " ".join(t for t in (r.get("text", "").strip() for r in results) if t)
        text = " ".join(w for w in text.split() if w != UNKNOWN)
        self._utt_start = self._samples
        self._segments = []
        self._last_partial = ""
        confidence = sum(w.conf for w in words) / len(words) if words else 0.0
        return Hypothesis(text=self._display(text), words=words, confidence=confidence, final=True)

    def close(self) -> None:
        """Free the recognizer. Idempotent."""
        self._rec = None

    def _require(self) -> vosk.KaldiRecognizer:
        if self._rec is None:
            raise AsrError("vosk session is closed")
        return self._rec

    def _joined_text(self, partial: str) -> str:
        parts = [r.get("text", "").strip() for r in self._segments] + [partial.strip()]
        return " ".join(w for w in " ".join(parts).split() if w != UNKNOWN)

    def _display(self, text: str) -> str:
        """In grammar mode, give back the phrase as the caller of ``open_session`` spelled it
        (chosen by the shared matcher, ``speech.text``); free text stays as heard."""
        if not self._spoken or not text:
            return text
        match = match_phrase(text, [(phrase, spoken) for spoken, phrase in self._spoken.items()])
        return match.key if match is not None else text


def build(settings: AsrSettings) -> VoskEngine:
    """Registry factory (``speech.asr.registry``): the configured model, or vosk's download."""
    path = Path(settings.vosk_model_path).expanduser() if settings.vosk_model_path else None
    if path is None and not settings.vosk_download:
        raise AsrError(
            "asr.engine is vosk but no model is configured: set asr.vosk_model_path "
            "(or VOSK_MODEL_PATH), or allow asr.vosk_download"
        )
    if path is not None:
        check_model_dir(path)
    engine = VoskEngine(path, language=settings.vosk_language, download=settings.vosk_download)
    engine.workers = settings.workers
    return engine
