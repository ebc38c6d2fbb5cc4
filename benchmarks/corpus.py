"""Audio for recognizer measurements: real read speech, telephone copies, non-speech, WER.

- Real read speech: the LibriVox clips of Debian's ``pocketsphinx-testdata`` (five sentences of
  *Sense and Sensibility*, 24.7 s, with references). Fetched once with ``apt-get download`` and
  unpacked with ``dpkg -x`` into a cache folder (``$CALLCENTER_CORPUS_DIR``, default
  ``~/.cache/callcenter/corpus``); never committed.
- Telephone copies: an 8 kHz G.711 round trip through sox, as a phone line delivers it.
- Non-speech ("no invented words"): silence, noise at several levels, line hum, hold music,
  DTMF, comfort noise and our own IVR prompts as line echo, synthesized with numpy at run time.
- WER: jiwer on normalized words (case, punctuation, "Mr." / "mister", numerals as words), so a
  recognizer that writes "$25" is not charged for the reference's "twenty five dollars".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from qa.wer import WerResult, normalize, number_words, wer

RATE = 16000
ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "ivr" / "prompts"
DEB_PACKAGE = "pocketsphinx-testdata"
LIBRIVOX_SUBDIR = Path("usr/share/pocketsphinx/test/data/librivox")


class CorpusUnavailable(RuntimeError):
    """The speech corpus cannot be fetched here (no apt-get/dpkg, or no package registry)."""


@dataclass(frozen=True)
class Clip:
    """One reference utterance: a 16 kHz mono WAV and what was said."""

    name: str
    path: Path
    reference: str

    def audio(self) -> np.ndarray:
        x, rate = sf.read(str(self.path), dtype="float32")
        return resample(x, rate) if rate != RATE else x


def cache_dir() -> Path:
    return Path(os.environ.get("CALLCENTER_CORPUS_DIR", Path.home() / ".cache" / "callcenter" / "corpus"))


def librivox_dir(cache: Path | None = None) -> Path:
    """The unpacked LibriVox folder, downloading the Debian package on first use."""
    system = Path("/") / LIBRIVOX_SUBDIR
    if (system / "transcription").exists():
        return system
    cache = cache or cache_dir()
    target = cache / "pocketsphinx-testdata" / LIBRIVOX_SUBDIR
    if (target / "transcription").exists():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise CorpusUnavailable("apt-get and dpkg are needed to fetch pocketsphinx-testdata")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        res = subprocess.run(["apt-get", "download", DEB_PACKAGE], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{DEB_PACKAGE}_*.deb"))
        if res.returncode != 0 or not debs:
            raise CorpusUnavailable(f"apt-get download {DEB_PACKAGE} failed: {res.stderr.strip()[:200]}")
        subprocess.run(["dpkg", "-x", str(debs[0]), str(cache / "pocketsphinx-testdata")], check=True)
    if not (target / "transcription").exists():
        raise CorpusUnavailable(f"{DEB_PACKAGE} has no {LIBRIVOX_SUBDIR}/transcription")
    return target


_TRANSCRIPT_LINE = re.compile(r"^<s>\s*(?P<text>.*?)\s*</s>\s*\((?P<name>[^)]+)\)\s*$")


def librivox_clips(cache: Path | None = None) -> list[Clip]:
    """The LibriVox clips with their references (``transcription`` lines), sorted by name."""
    folder = librivox_dir(cache)
    clips = []
    for line in (folder / "transcription").read_text().splitlines():
        m = _TRANSCRIPT_LINE.match(line.strip())
        if m and (folder / f"{m['name']}.wav").exists():
            clips.append(Clip(m["name"], folder / f"{m['name']}.wav", m["text"]))
    if not clips:
        raise CorpusUnavailable(f"no clips with references in {folder}")
    return sorted(clips, key=lambda c: c.name)


# -- telephone copies -----------------------------------------------------------------------


def g711_file(src: Path, out_dir: Path, law: str = "ulaw") -> Path:
    """``src`` as an 8 kHz G.711 WAV (sox, no dither): what a phone line delivers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{src.stem}_8k_{law}.wav"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        encoding = "u-law" if law == "ulaw" else "a-law"
        subprocess.run(["sox", "-R", "-D", str(src), "-r", "8000", "-c", "1", "-e", encoding, "-b", "8", str(out)],
                       check=True, capture_output=True)
    return out


def g711_roundtrip(x: np.ndarray, law: str = "ulaw") -> np.ndarray:
    """16 kHz float audio → 8 kHz G.711 → back to 16 kHz float (sox both ways)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.wav"
        sf.write(str(src), np.clip(x, -1.0, 32767 / 32768), RATE, subtype="PCM_16")
        coded = g711_file(src, Path(tmp), law)
        y, rate = sf.read(str(coded), dtype="float32")
    return resample(y, rate)


def resample(x: np.ndarray, from_rate: int, to_rate: int = RATE) -> np.ndarray:
    from speech.audio_io import resample as _resample

    return _resample(x, from_rate, to_rate)


def write_wav(path: Path, x: np.ndarray, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 32767 / 32768), rate, subtype="PCM_16")
    return path


# -- word error rate ---------------------------------------------------------------------------
# One implementation for the QA check and the benchmarks: qa.wer (jiwer on normalized words).

__all__ = ["WerResult", "normalize", "number_words", "wer"]


# -- non-speech ---------------------------------------------------------------------------------

DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336),
    "6": (770, 1477), "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209),
    "0": (941, 1336), "#": (941, 1477),
}


@dataclass(frozen=True)
class NonSpeech:
    """A non-speech signal (16 kHz float) and whether it goes through G.711 like a phone line."""

    name: str
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE


def _n(seconds: float) -> int:
    """Samples in ``seconds``: every generator rounds the same way, so their sums line up."""
    return int(round(seconds * RATE))


def _db(level_db: float) -> float:
    return float(10 ** (level_db / 20))


def white(seconds: float, level_db: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(_n(seconds)) * _db(level_db)).astype(np.float32)


def pink(seconds: float, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by spectral shaping, scaled to ``level_db`` RMS."""
    n = _n(seconds)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12) * _db(level_db)).astype(np.float32)


def hum(seconds: float, level_db: float, mains: float = 50.0) -> np.ndarray:
    """Mains hum with odd harmonics (a ground loop on an analogue line)."""
    t = np.arange(_n(seconds)) / RATE
    x = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 3, 5, 7))
    return (x / np.sqrt(np.mean(x**2)) * _db(level_db)).astype(np.float32)


def hold_music(seconds: float, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """Chords plus a melody with soft attacks and decays: the spectral shape of on-hold music."""
    t_note = 0.4
    notes = [60, 64, 67, 72, 71, 67, 64, 62, 65, 69, 72, 69, 67, 64, 60, 55]
    chords = [(48, 55, 64), (53, 57, 60), (55, 59, 62), (48, 52, 55)]
    n = _n(seconds)
    out = np.zeros(n, dtype=np.float64)
    t = np.arange(int(t_note * RATE)) / RATE
    env = np.minimum(1.0, t / 0.02) * np.exp(-t * 3.0)

    def tone(midi: int, length: int) -> np.ndarray:
        f = 440.0 * 2 ** ((midi - 69) / 12)
        tt = np.arange(length) / RATE
        return np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(4 * np.pi * f * tt) + 0.1 * np.sin(6 * np.pi * f * tt)

    step = len(t)
    for i, start in enumerate(range(0, n, step)):
        seg = min(step, n - start)
        out[start : start + seg] += (tone(notes[i % len(notes)], step) * env)[:seg]
        chord = chords[(i // 4) % len(chords)]
        out[start : start + seg] += 0.4 * sum(tone(m, step)[:seg] for m in chord) * np.exp(-t[:seg] * 0.8)
    out += rng.standard_normal(n) * 1e-3
    return (out / np.sqrt(np.mean(out**2)) * _db(level_db)).astype(np.float32)


def dtmf_keys(digits: str, level_db: float = -10.0, tone_s: float = 0.1, gap_s: float = 0.1) -> np.ndarray:
    t = np.arange(int(tone_s * RATE)) / RATE
    parts = []
    for d in digits:
        lo, hi = DTMF_FREQS[d]
        parts.append(_db(level_db) * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)))
        parts.append(np.zeros(int(gap_s * RATE)))
    return np.concatenate(parts).astype(np.float32)


def comfort_noise(seconds: float, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise whose level steps every 20 ms frame (CN packets, RFC 3389)."""
    x = pink(seconds, 0.0, rng)
    frames = len(x) // 320
    levels = np.repeat(_db(level_db) * 10 ** (rng.uniform(-3, 3, frames) / 20), 320)
    x = x[: frames * 320] * levels
    return x.astype(np.float32)


def prompt_echo(level_db: float = -25.0, delay_s: float = 0.12) -> np.ndarray:
    """Our IVR prompts as the line echo a caller's channel carries: delayed, attenuated,
    over a −60 dBFS floor (``level_db`` relative to the prompt's own level)."""
    pieces = []
    for wav in sorted(PROMPTS.glob("*.wav")):
        x, rate = sf.read(str(wav), dtype="float32")
        x = resample(x, rate) if rate != RATE else x
        pieces.append(np.concatenate([np.zeros(int(delay_s * RATE), np.float32), x * _db(level_db),
                                      np.zeros(int(0.8 * RATE), np.float32)]))
    return np.concatenate(pieces) if pieces else np.zeros(RATE, np.float32)


def prompts_full() -> np.ndarray:
    """Our IVR prompts at full level (a recording of the IVR leg itself)."""
    pieces = []
    for wav in sorted(PROMPTS.glob("*.wav")):
        x, rate = sf.read(str(wav), dtype="float32")
        pieces.append(resample(x, rate) if rate != RATE else x)
        pieces.append(np.zeros(int(0.8 * RATE), np.float32))
    return np.concatenate(pieces) if pieces else np.zeros(RATE, np.float32)


def prompt_echo_call(level_db: float = -25.0, delay_s: float = 0.12, g711: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A call leg while our prompts play, as a live call (and its 2-channel recording) has it:
    ``(played, heard)``, the prompts we send and the caller's channel carrying them back as line
    echo (delayed, ``level_db`` relative to the prompt, over a −60 dBFS floor); both through a
    µ-law round trip if ``g711``. Write it with :func:`write_stereo` to replay it."""
    played = np.concatenate([prompts_full(), np.zeros(int(delay_s * RATE), np.float32)])
    shift = int(delay_s * RATE)
    echo = np.concatenate([np.zeros(shift, np.float32), played[: len(played) - shift]]) * _db(level_db)
    heard = _with_floor(echo, np.random.default_rng(12))
    if g711:
        played, heard = g711_roundtrip(played), g711_roundtrip(heard)
    return played.astype(np.float32), heard.astype(np.float32)


def write_stereo(path: Path, played: np.ndarray, heard: np.ndarray, rate: int = RATE) -> Path:
    """A 2-channel call recording as ``telephony.recorder`` writes it: channel 1 what we played
    (replayed as the agent party), channel 2 the caller."""
    n = max(len(played), len(heard))
    data = np.stack([np.pad(played, (0, n - len(played))), np.pad(heard, (0, n - len(heard)))], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(data, -1.0, 32767 / 32768), rate, subtype="PCM_16")
    return path


def nonspeech_corpus(seconds: float = 30.0, seed: int = 2026, g711: bool = True) -> list[NonSpeech]:
    """Every non-speech case, each ``seconds`` long (prompt echo: the prompts' own length),
    with a −60 dBFS floor under the synthetic ones; through a µ-law round trip if ``g711``."""
    rng = np.random.default_rng(seed)
    s = seconds
    floor = white(s, -60.0, rng)
    cases = [
        NonSpeech("digital_silence", np.zeros(_n(s), np.float32)),
        NonSpeech("floor_-60dB", floor),
        *(NonSpeech(f"white_{lv}dB", white(s, lv, rng)) for lv in (-45, -35, -25, -15)),
        *(NonSpeech(f"pink_{lv}dB", pink(s, lv, rng)) for lv in (-45, -35, -25)),
        NonSpeech("hum_50Hz_-30dB", hum(s, -30.0, 50.0) + floor),
        NonSpeech("hum_60Hz_-20dB", hum(s, -20.0, 60.0) + floor),
        NonSpeech("hold_music_-20dB", hold_music(s, -20.0, rng)),
        NonSpeech("hold_music_-30dB_noisy", hold_music(s, -30.0, rng) + white(s, -45.0, rng)),
        NonSpeech("dtmf_keys", _fit(np.concatenate([dtmf_keys("1234567890*#"), np.zeros(RATE // 2, np.float32)]), s)
                  + floor),
        NonSpeech("comfort_noise_-50dB", comfort_noise(s, -50.0, rng)),
        NonSpeech("prompt_echo_-25dB", _with_floor(prompt_echo(-25.0), rng)),
    ]
    if g711:
        cases = [NonSpeech(c.name + "_g711", g711_roundtrip(c.audio)) for c in cases]
    return cases


def _with_floor(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (x + rng.standard_normal(len(x)) * _db(-60.0)).astype(np.float32)


def _fit(x: np.ndarray, seconds: float) -> np.ndarray:
    """Tile or cut ``x`` to ``seconds``."""
    n = _n(seconds)
    if len(x) >= n:
        return x[:n]
    return np.tile(x, n // len(x) + 1)[:n]
