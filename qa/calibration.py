"""Calibration: how often reviewers agree with the automatic answers, per question.

Input rows come from the store (``CrmStore.calibration_rows``: per reviewed call and question,
the automatic answer and the reviewers' latest); the output is the calibration view's table and
CSV. A question whose agreement is low needs its phrases or thresholds tuned.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from qa.scorecard import ANSWERS


def calibrate(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"questions": [{form_id, question_id, reviewed, agreed, agreement, confusion, overridden}],
    "reviewed_calls", "agreement"}``; ``confusion[automatic][final]`` counts, ``agreement`` in %."""
    by_q: dict[tuple[str, str], dict[str, Any]] = {}
    calls: set[str] = set()
    for r in rows:
        key = (str(r["form_id"]), str(r["question_id"]))
        q = by_q.setdefault(key, {"form_id": key[0], "question_id": key[1], "reviewed": 0, "agreed": 0,
                                  "confusion": {a: dict.fromkeys(ANSWERS, 0) for a in ANSWERS}, "overridden": []})
        calls.add(str(r["call_id"]))
        auto, final = str(r["automatic"]), str(r["final"])
        q["reviewed"] += 1
        q["agreed"] += auto == final
        if auto in ANSWERS and final in ANSWERS:
            q["confusion"][auto][final] += 1
        if r.get("overridden") and auto != final:
            q["overridden"].append({"call_id": r["call_id"], "automatic": auto, "final": final,
                                    "reviewer": r.get("reviewer", ""), "reason": r.get("reason", "")})
    questions = sorted(by_q.values(), key=lambda q: (q["form_id"], q["question_id"]))
    for q in questions:
        q["agreement"] = round(100.0 * q["agreed"] / q["reviewed"], 1) if q["reviewed"] else None
    total = sum(q["reviewed"] for q in questions)
    agreed = sum(q["agreed"] for q in questions)
    return {"questions": questions, "reviewed_calls": len(calls),
            "agreement": round(100.0 * agreed / total, 1) if total else None}


def calibration_csv(table: Mapping[str, Any]) -> str:
    """One line per question: agreement and the confusion counts (``auto_yes_final_no``...)."""
    out = io.StringIO()
    pairs = [(a, f) for a in ANSWERS for f in ANSWERS]
    w = csv.writer(out)
    w.writerow(["form_id", "question_id", "reviewed", "agreed", "agreement", "overridden_calls",
                *(f"auto_{a}_final_{f}" for a, f in pairs)])
    for q in table["questions"]:
        w.writerow([q["form_id"], q["question_id"], q["reviewed"], q["agreed"], q["agreement"],
                    " ".join(sorted({str(o["call_id"]) for o in q["overridden"]})),
                    *(q["confusion"][a][f] for a, f in pairs)])
    return out.getvalue()
