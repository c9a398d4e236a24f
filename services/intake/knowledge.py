"""The knowledge base of answers for consultations, and matching a question against it.

The base is a TOML file the organisation edits (``rules/knowledge.toml``, or the file named by
ZHKH_KNOWLEDGE_BASE). It is read and validated once, when intake starts: a file that does not parse,
an unknown category, a duplicate id, an empty answer or a keyword that has no Russian word in it
stops the start with :class:`KnowledgeBaseError` naming the article and the field.

Matching uses the classifier's lemmatisation (pymorphy3, ``classifier.Lemmatizer``): the question's
tokens keep every candidate lemma, keywords take their most likely lemma, and a keyword with several
words is a phrase (its lemmas in order, each within ``phrase_window`` tokens of the previous one),
exactly as the classifier's terms. An article's score is the sum of the weights of its keywords found
(each once), plus ``category_bonus`` when the classifier puts the question in the article's category.
Articles scoring at least ``min_score`` are suggested, best first (ties: file order), at most
``max_suggestions``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zhkh_contracts import Category
from zhkh_contracts.events import ARTICLE_ID_PATTERN

from .classifier import _TOKEN, Classifier, Term, _has_term, _positions, fold

DEFAULT_KNOWLEDGE_BASE = Path(__file__).with_name("rules") / "knowledge.toml"
MAX_ANSWER_CHARS = 4000


class KnowledgeBaseError(ValueError):
    """The knowledge-base file cannot be used: intake does not start."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phrase_window: int = Field(default=3, ge=1, le=10)
    min_score: float = Field(default=3.0, gt=0)
    category_bonus: float = Field(default=1.0, ge=0)
    max_suggestions: int = Field(default=3, ge=1, le=20)


class _Article(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ARTICLE_ID_PATTERN)
    category: Category
    title: str = Field(min_length=1, max_length=300)
    answer: str = Field(min_length=1, max_length=MAX_ANSWER_CHARS)
    keywords: dict[Annotated[str, Field(min_length=1, max_length=200)], Annotated[float, Field(gt=0, le=100)]] = Field(
        min_length=1)

    @field_validator("title", "answer")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("blank")
        return v.strip()


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    settings: _Settings = _Settings()
    article: list[_Article] = Field(min_length=1, max_length=2000)


@dataclass(frozen=True)
class Article:
    id: str
    category: Category
    title: str
    answer: str
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Suggestion:
    article: Article
    score: float


def _where(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """'article[3] (id 'x').keywords' from a pydantic error location."""
    parts: list[str] = []
    for i, p in enumerate(loc):
        if isinstance(p, int) and i > 0 and loc[i - 1] == "article":
            articles = raw.get("article") if isinstance(raw.get("article"), list) else []
            aid = articles[p].get("id") if p < len(articles) and isinstance(articles[p], dict) else None
            parts[-1] = f"article[{p}]" + (f" (id {aid!r})" if aid else "")
        else:
            parts.append(str(p))
    return ".".join(parts)


class KnowledgeBase:
    def __init__(self, articles: tuple[Article, ...], settings: _Settings, classifier: Classifier) -> None:
        self.articles = articles
        self.by_id = {a.id: a for a in articles}
        self.settings = settings
        self.classifier = classifier

    @classmethod
    def load(cls, path: Path, classifier: Classifier) -> KnowledgeBase:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KnowledgeBaseError(f"knowledge base {path}: no such file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise KnowledgeBaseError(f"knowledge base {path}: not TOML: {exc}") from None
        try:
            parsed = _File.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{_where(tuple(e['loc']), raw)}: {e['msg']}" for e in exc.errors()[:10])
            raise KnowledgeBaseError(f"knowledge base {path}: {problems}") from None
        seen: set[str] = set()
        articles = []
        lem = classifier.lemmatizer.lemma
        for a in parsed.article:
            if a.id in seen:
                raise KnowledgeBaseError(f"knowledge base {path}: article id {a.id!r} appears twice")
            seen.add(a.id)
            terms = []
            for words, weight in a.keywords.items():
                lemmas = tuple(lem(w) for w in _TOKEN.findall(fold(words)))
                if not lemmas:
                    raise KnowledgeBaseError(f"knowledge base {path}: article {a.id!r}: keyword {words!r} has no word")
                terms.append(Term(lemmas, weight))
            articles.append(Article(a.id, a.category, a.title, a.answer, tuple(terms)))
        return cls(tuple(articles), parsed.settings, classifier)

    def score(self, text: str, category: Category | None = None) -> list[tuple[Article, float]]:
        """Every article's score for ``text`` (0 included), in file order; ``category``: the classifier's for
        the text, when the caller has it already."""
        s = self.settings
        pos = _positions(self.classifier.lemmatizer.tokens(text))
        if category is None:
            category = self.classifier.classify(text).category
        out = []
        for a in self.articles:
            score = sum(t.weight for t in a.terms if _has_term(t, pos, s.phrase_window))
            if score and a.category is category:
                score += s.category_bonus
            out.append((a, score))
        return out

    def suggest(self, text: str, limit: int | None = None, category: Category | None = None) -> list[Suggestion]:
        s = self.settings
        limit = min(limit or s.max_suggestions, s.max_suggestions)
        scored = [(a, sc) for a, sc in self.score(text, category) if sc >= s.min_score]
        scored.sort(key=lambda x: -x[1])  # stable: equal scores stay in file order
        return [Suggestion(a, sc) for a, sc in scored[:limit]]

    def unknown(self, ids: tuple[str, ...] | list[str]) -> list[str]:
        return [i for i in ids if i not in self.by_id]
