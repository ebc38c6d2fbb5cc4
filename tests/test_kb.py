"""The knowledge base: articles, the FTS5 index and its re-indexing, query building, recall@3 on
the labelled sample questions, and `callcenter kb` as an operator runs it. Real SQLite, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assist.articles import ArticleError, parse_article, read_article
from assist.evaluate import load_questions, recall_at_k
from assist.index import KnowledgeIndex
from assist.kb_settings import SAMPLE_KB
from assist.query import query_terms, terms_of

RECALL_AT_3_MIN = 0.93
"""Measured 71/73 = 0.973 on the sample (recall@1 0.959); the bound leaves room for two more
misses when articles or questions are edited."""

ARTICLE = """---
title: Charged twice
tags: [double charge, refund]
queues: [billing]
---
Refund the second payment from **Payments > Refund**.
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_an_article_is_front_matter_and_markdown(tmp_path: Path) -> None:
    art = read_article(write(tmp_path, "double.md", ARTICLE))
    assert (art.id, art.title, art.tags, art.queues) == ("double", "Charged twice", ("double charge", "refund"),
                                                         ("billing",))
    assert art.body.startswith("Refund the second payment")


@pytest.mark.parametrize(("text", "problem"), [
    ("no front matter\n", "no front matter"),
    ("---\ntitle: [unclosed\n---\nbody\n", "not valid YAML"),
    ("---\ntags: [a]\n---\nbody\n", "title: Field required"),
    ("---\ntitle: T\ncolour: red\n---\nbody\n", "colour: Extra inputs"),
])
def test_a_bad_article_names_its_file_and_problem(text: str, problem: str) -> None:
    with pytest.raises(ArticleError, match=problem) as info:
        parse_article(Path("kb/bad.md"), text)
    assert "kb/bad.md" in str(info.value)


def test_query_terms_drop_small_talk_and_digits() -> None:
    assert terms_of("Hello, yes, I am calling because I was charged twice on account 12345678. Thanks!") == [
        "charged", "twice", "account"]
    # Newest utterance first: it says what the caller wants now.
    assert query_terms(["my bill is wrong", "and my internet is down"]) == ["internet", "down", "bill", "wrong"]


def test_index_ranks_by_bm25_with_matched_words_and_queue_boost() -> None:
    with KnowledgeIndex(":memory:") as index:
        index.sync(SAMPLE_KB)
        hits = index.search(query_terms(["hi I was charged twice for my last order"]), limit=3)
        assert hits[0].id == "billing-double-charge"
        assert {"charged", "twice"} <= set(hits[0].matched)
        assert hits[0].score > hits[1].score > 0
        # The call's queue multiplies the scores of the articles listed for it, and only theirs.
        plain = {h.id: h.score for h in index.search(["router"], limit=10)}
        boosted = {h.id: h.score for h in index.search(["router"], queue="billing", limit=10, queue_boost=0.5)}
        assert boosted["refunds-device-return"] == pytest.approx(plain["refunds-device-return"] * 1.5, rel=1e-3)
        assert boosted["tech-no-internet"] == pytest.approx(plain["tech-no-internet"], rel=1e-3)
        assert index.search([]) == []
        assert index.search(['"quoted" OR NOT']) == []  # query syntax is never parsed


def test_recall_at_3_on_the_labelled_sample_questions() -> None:
    questions = load_questions()
    assert len(questions) >= 60
    with KnowledgeIndex(":memory:") as index:
        index.sync(SAMPLE_KB)
        ids = {p.stem for p in SAMPLE_KB.glob("*.md")}
        assert all(set(q.expect) <= ids for q in questions), "a question expects an unknown article"
        result = recall_at_k(index, questions, k=3)
    assert result.recall >= RECALL_AT_3_MIN, result.misses


def test_sync_indexes_only_what_changed(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb, "double.md", ARTICLE)
    write(kb, "router.md", "---\ntitle: Router lights\n---\nA red light means no line signal.\n")
    with KnowledgeIndex(tmp_path / "kb.sqlite") as index:
        first = index.sync(kb)
        assert (sorted(first.added), first.updated, first.removed) == (["double", "router"], [], [])
        again = index.sync(kb)
        assert (again.changed, again.unchanged) == (False, 2)

        touched = kb / "router.md"
        os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
        assert not index.sync(kb).changed  # same content: nothing re-indexed

        write(kb, "router.md", "---\ntitle: Router lights\n---\nA blinking orange light: firmware update.\n")
        os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 2 * 10**9))
        (kb / "double.md").unlink()
        write(kb, "voicemail.md", "---\ntitle: Voicemail PIN\n---\nReset it from the line page.\n")
        report = index.sync(kb)
        assert (report.added, report.updated, report.removed) == (["voicemail"], ["router"], ["double"])
        assert [h.id for h in index.search(["firmware"])] == ["router"]
        assert index.search(["signal"]) == []  # the old text is gone
        assert index.search(["refund"]) == []
        assert index.count() == 2


def test_a_bad_file_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb, "double.md", ARTICLE)
    with KnowledgeIndex(tmp_path / "kb.sqlite") as index:
        index.sync(kb)
        write(kb, "broken.md", "no front matter")
        with pytest.raises(ArticleError, match="broken.md"):
            index.sync(kb)
        assert index.count() == 1 and index.search(["refund"])[0].id == "double"


def kb_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    return subprocess.run([sys.executable, "-m", "callcenter", "--data-dir", str(data_dir), "kb", *args],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_kb_index_command_indexes_and_reindexes_a_folder(tmp_path: Path) -> None:
    kb, var = tmp_path / "kb", tmp_path / "var"
    write(kb, "double.md", ARTICLE)
    res = kb_cli("index", str(kb), data_dir=var)
    assert res.returncode == 0, res.stderr
    assert "1 articles" in res.stdout and "added: double" in res.stdout
    assert (var / "kb.sqlite").exists()
    write(kb, "router.md", "---\ntitle: Router lights\n---\nRed light: no line signal.\n")
    res = kb_cli("index", str(kb), data_dir=var)
    assert "(1 added, 0 updated, 0 removed, 1 unchanged)" in res.stdout, res.stdout
    write(kb, "broken.md", "---\ntitle: [\n---\n")
    res = kb_cli("index", str(kb), data_dir=var)
    assert res.returncode == 2 and "broken.md" in res.stderr and "not valid YAML" in res.stderr


@pytest.mark.slow
def test_kb_search_and_eval_commands_on_the_sample(tmp_path: Path) -> None:
    res = kb_cli("search", "my internet has been down for two days", "--queue", "tech_support",
                 data_dir=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "outage-check-area" in res.stdout and "internet" in res.stdout
    res = kb_cli("eval", data_dir=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("recall@3: ")
