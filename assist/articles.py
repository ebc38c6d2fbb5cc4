"""Knowledge base articles: Markdown files with YAML front matter (title, tags, queues).

The article id is the file name without ``.md`` (stable across edits, readable in a summary's
"article X used"). Front matter is validated by pydantic; errors name the file and the field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ARTICLE_SUFFIX = ".md"


class FrontMatter(BaseModel):
    """What the block between the two ``---`` lines of an article must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1)
    tags: tuple[str, ...] = ()
    """Words and phrases callers use for the topic (also the misheard ones): weighted above the body."""
    queues: tuple[str, ...] = ()
    """IVR queues whose calls this article is most likely for (a boost, not a filter)."""


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    title: str
    body: str
    tags: tuple[str, ...]
    queues: tuple[str, ...]
    path: Path
    sha256: str


class ArticleError(ValueError):
    """An article file cannot be read; the message names the file and the problem."""


def parse_article(path: Path, text: str) -> Article:
    """One article from its file's text."""
    if not text.startswith("---"):
        raise ArticleError(f"{path}: no front matter (the file must start with a '---' line)")
    parts = text.split("\n---", 2)
    if len(parts) < 2:
        raise ArticleError(f"{path}: front matter is not closed by a '---' line")
    head = parts[0][3:]
    body = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
    try:
        raw = yaml.safe_load(head) or {}
    except yaml.YAMLError as exc:
        raise ArticleError(f"{path}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ArticleError(f"{path}: front matter must be a mapping")
    try:
        meta = FrontMatter(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ArticleError(f"{path}: {problems}") from exc
    return Article(
        id=path.stem, title=meta.title, body=body.strip(), tags=meta.tags, queues=meta.queues,
        path=path, sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def read_article(path: Path) -> Article:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArticleError(f"{path}: cannot read: {exc}") from exc
    return parse_article(path, text)


def article_files(kb_dir: Path) -> list[Path]:
    """The folder's articles (recursively), sorted; ``README.md`` is not an article."""
    if not kb_dir.is_dir():
        raise ArticleError(f"{kb_dir}: knowledge base folder not found")
    return sorted(p for p in kb_dir.rglob(f"*{ARTICLE_SUFFIX}") if p.is_file() and p.name.lower() != "readme.md")
