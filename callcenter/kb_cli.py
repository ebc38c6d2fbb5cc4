"""``callcenter kb``: index the knowledge base, try a search, measure recall@k."""

from __future__ import annotations

import argparse
from typing import TextIO

from assist.articles import ArticleError
from assist.evaluate import SAMPLE_QUESTIONS, load_questions, recall_at_k
from assist.index import KnowledgeIndex
from assist.query import query_terms
from callcenter.settings import Settings


def run_kb(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    kb_dir = getattr(args, "dir", None) or settings.knowledge.kb_dir
    with KnowledgeIndex(settings.kb_index_path) as index:
        if args.kb_command == "index":
            try:
                report = index.sync(kb_dir)
            except ArticleError as exc:
                from callcenter.cli import CliError

                raise CliError(str(exc)) from exc
            print(f"{settings.kb_index_path}: {index.count()} articles from {kb_dir} "
                  f"({len(report.added)} added, {len(report.updated)} updated, "
                  f"{len(report.removed)} removed, {report.unchanged} unchanged)", file=out)
            for label, ids in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
                for art_id in ids:
                    print(f"  {label}: {art_id}", file=out)
            return 0
        if settings.knowledge.auto_index or index.count() == 0:
            index.sync(kb_dir)
        s = settings.knowledge
        if args.kb_command == "search":
            hits = index.search(query_terms([args.text]), queue=args.queue, limit=s.top_k, queue_boost=s.queue_boost)
            for hit in hits:
                print(f"{hit.score:7.2f}  {hit.id}  {hit.title}  [{', '.join(hit.matched)}]", file=out)
            return 0 if hits else 1
        questions = load_questions(args.questions or SAMPLE_QUESTIONS)
        result = recall_at_k(index, questions, k=args.k, settings=s)
        print(f"recall@{result.k}: {result.found}/{result.total} = {result.recall:.3f}", file=out)
        for q, got in result.misses:
            print(f"  missed: {q!r} -> {', '.join(got) or '(nothing)'}", file=out)
        return 0
