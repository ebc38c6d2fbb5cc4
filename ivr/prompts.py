"""Render a flow's prompts to WAV with espeak-ng and sox (offline, no cloud TTS).

Each prompt becomes ``<name>.wav``: mono 16-bit PCM at 16 kHz (pipeline rate) or 8 kHz
(telephone rate). A ``manifest.yaml`` beside them records the text, voice and rate each file was
rendered from, so a changed prompt text is re-rendered and a stale file can be detected.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr.flow import Flow, FlowError, load_flow

PROMPT_RATES = (8000, 16000)
DEFAULT_RATE = 16000
DEFAULT_VOICE = "en-us"
DEFAULT_SPEED_WPM = 160
"""espeak-ng words per minute: a little slower than its default reads better on a phone line."""
PAD_S = (0.1, 0.2)
"""Silence before/after each prompt, seconds, so the codec and the ear settle."""
MANIFEST = "manifest.yaml"


class PromptRenderError(RuntimeError):
    """espeak-ng or sox is missing or failed; the message names the prompt."""


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    name: str
    path: Path
    rendered: bool
    """False when an up-to-date file was kept."""


def render_prompts(
    flow: Flow,
    out_dir: str | Path | None = None,
    *,
    voice: str = DEFAULT_VOICE,
    rate: int = DEFAULT_RATE,
    speed: int = DEFAULT_SPEED_WPM,
    force: bool = False,
) -> list[RenderedPrompt]:
    """Render every prompt of ``flow`` into ``out_dir`` (default: the flow's prompts dir)."""
    if rate not in PROMPT_RATES:
        raise ValueError(f"rate must be one of {PROMPT_RATES}, got {rate}")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise PromptRenderError(f"{tool} not found (apt-get install espeak-ng sox)")
    out = Path(out_dir) if out_dir is not None else flow.prompts_dir
    if out is None:
        raise FlowError(flow.source or flow.name, "no output directory and no prompts_dir in the flow")
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out)
    results: list[RenderedPrompt] = []
    with tempfile.TemporaryDirectory(prefix="ivr-prompts-") as tmp:
        for name, text in flow.prompts.items():
            target = out / f"{name}.wav"
            entry = {"text": text, "voice": voice, "rate": rate, "speed": speed}
            if not force and target.is_file() and manifest.get(name) == entry:
                results.append(RenderedPrompt(name, target, rendered=False))
                continue
            _render_one(name, text, target, Path(tmp), voice=voice, rate=rate, speed=speed)
            manifest[name] = entry
            results.append(RenderedPrompt(name, target, rendered=True))
    (out / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=True, allow_unicode=True), encoding="utf-8")
    return results


def read_manifest(prompts_dir: Path) -> dict[str, dict[str, Any]]:
    """What each WAV in ``prompts_dir`` was rendered from ({} if no manifest)."""
    path = Path(prompts_dir) / MANIFEST
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def stale_prompts(flow: Flow, prompts_dir: Path | None = None) -> list[str]:
    """Prompt names whose WAV is missing or was rendered from other text."""
    base = Path(prompts_dir) if prompts_dir is not None else flow.prompts_dir
    if base is None:
        return list(flow.prompts)
    manifest = read_manifest(base)
    return [
        name for name, text in flow.prompts.items()
        if not (base / f"{name}.wav").is_file() or (manifest.get(name) or {}).get("text") != text
    ]


def render_text(text: str, target: Path, *, voice: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE,
                speed: int = DEFAULT_SPEED_WPM) -> Path:
    """Render one sentence to ``target`` (kept when it exists: the file name says what it is)."""
    target = Path(target)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # staged beside the target and renamed over it: workers rendering the same sentence at the
    # same time each write whole files, and a reader never sees half of one
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        _render_one(target.stem, text, target, Path(tmp), voice=voice, rate=rate, speed=speed)
    return target


def _render_one(name: str, text: str, target: Path, tmp: Path, *, voice: str, rate: int, speed: int) -> None:
    key = hashlib.sha1(name.encode()).hexdigest()[:12]
    raw = tmp / f"{key}.raw.wav"
    staged = tmp / f"{key}.wav"
    steps = [
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
        ["sox", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(staged),
         "norm", "-3", "pad", str(PAD_S[0]), str(PAD_S[1])],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise PromptRenderError(f"prompt {name!r}: {cmd[0]} failed: {msg[-1] if msg else proc.returncode}")
    shutil.move(str(staged), target)  # whole files only: a crash never leaves half a prompt


def main(argv: Sequence[str] | None = None) -> int:
    """``callcenter ivr render-prompts [FLOW] [--out DIR] [--voice V] [--rate 8000|16000]``."""
    p = argparse.ArgumentParser(prog="callcenter ivr render-prompts", description=main.__doc__)
    p.add_argument("flow", nargs="?", type=Path, help="flow YAML (default: the sample contact-center flow)")
    p.add_argument("--out", type=Path, help="output directory (default: the flow's prompts_dir)")
    p.add_argument("--voice", default=DEFAULT_VOICE)
    p.add_argument("--rate", type=int, choices=PROMPT_RATES, default=DEFAULT_RATE)
    p.add_argument("--speed", type=int, default=DEFAULT_SPEED_WPM, help="words per minute")
    p.add_argument("--force", action="store_true", help="re-render prompts that are up to date")
    args = p.parse_args(argv)
    try:
        flow = load_flow(args.flow)
        results = render_prompts(flow, args.out, voice=args.voice, rate=args.rate, speed=args.speed, force=args.force)
    except (FlowError, PromptRenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = sum(r.rendered for r in results)
    where = args.out or flow.prompts_dir
    print(f"{done} prompt(s) rendered, {len(results) - done} up to date, in {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
