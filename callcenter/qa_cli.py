"""``callcenter qa score FORM FILES...``: score recorded calls on an evaluation form.

Recordings (or folders of them) go through the same replay pipeline as ``callcenter replay``
(nothing is stored); ``.jsonl`` event logs (``replay --json``, the MQTT ``events`` stream) are
scored directly. The scoring is ``qa.scorecard.score_call`` with the call's summary, exactly
as at a live call's wrap-up. Output: a table (file × question answers, score, pass), or CSV,
or one JSON scorecard per line. Exit 0; 2 for a bad form file or a file that could not be scored.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from callcenter.call_inputs import events_of
from callcenter.replay import expand_inputs
from callcenter.settings import Settings
from qa.forms import Form, FormError, load_form
from qa.scorecard import score_call
from summaries.summarizer import summarize

SHORT = {"yes": "Y", "no": "N", "na": "-"}


async def score_files(form: Form, files: list[Path], settings: Settings, *,
                      jobs: int = 1) -> list[tuple[Path, dict[str, Any] | str]]:
    """(file, scorecard) per file in input order, or (file, error message). Recordings replay
    in this process, or on ``jobs`` worker processes (the ``replay --jobs`` pool)."""
    events = await events_of(files, settings, jobs=jobs)
    out: list[tuple[Path, dict[str, Any] | str]] = []
    for path in files:
        got = events[path]
        out.append((path, got if isinstance(got, str) else score_call(form, got, summarize(got), final=True)))
    return out


def write_table(form: Form, results: list[tuple[Path, dict[str, Any] | str]], out: TextIO) -> None:
    ids = [q.id for _, q in form.questions()]
    name_w = max([len(p.name) for p, _ in results] + [4])
    widths = [max(len(i), 3) for i in ids]
    out.write(f"form {form.id} v{form.version}: {form.title} (pass {form.pass_score:g})\n")
    out.write("file".ljust(name_w) + "  " + "  ".join(i.ljust(w) for i, w in zip(ids, widths, strict=True))
              + "  score  pass\n")
    for path, card in results:
        if isinstance(card, str):
            out.write(path.name.ljust(name_w) + f"  error: {card}\n")
            continue
        answers = {a["question_id"]: a["answer"] for a in card["answers"]}
        score = "n/a" if card["score"] is None else f"{card['score']:.0f}"
        passed = "-" if card["passed"] is None else ("yes" if card["passed"] else "no")
        out.write(path.name.ljust(name_w) + "  " + "  ".join(
            SHORT[answers[i]].ljust(w) for i, w in zip(ids, widths, strict=True)) + f"  {score:>5}  {passed}\n")
    out.write("Y yes, N no, - not applicable\n")


def write_csv(form: Form, results: list[tuple[Path, dict[str, Any] | str]], out: TextIO) -> None:
    ids = [q.id for _, q in form.questions()]
    w = csv.writer(out)
    w.writerow(["file", *ids, "score", "passed", "error"])
    for path, card in results:
        if isinstance(card, str):
            w.writerow([str(path), *([""] * len(ids)), "", "", card])
            continue
        answers = {a["question_id"]: a["answer"] for a in card["answers"]}
        w.writerow([str(path), *(answers[i] for i in ids), card["score"], card["passed"], ""])


async def run_qa_score(form_name: str, files: list[str], settings: Settings, out: TextIO, err: TextIO, *,
                       fmt: str = "table", jobs: int = 1) -> int:
    try:
        form = load_form(form_name)
    except FormError as exc:
        err.write(f"error: {exc}\n")
        return 2
    paths = expand_inputs(files)
    if not paths:
        err.write("error: no recordings or event logs given\n")
        return 2
    results = await score_files(form, paths, settings, jobs=jobs)
    if fmt == "json":
        for path, card in results:
            out.write(json.dumps({"file": str(path), "error": card} if isinstance(card, str)
                                 else {"file": str(path), **card}) + "\n")
    elif fmt == "csv":
        write_csv(form, results, out)
    else:
        write_table(form, results, out)
    for path, card in results:
        if isinstance(card, str) and fmt != "table":
            err.write(f"error: {path}: {card}\n")
    return 2 if any(isinstance(c, str) for _, c in results) else 0
