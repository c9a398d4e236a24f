"""Category and emergency classification of Russian appeal text by a transparent rule set.

Text -> lowercase tokens -> lemmas (pymorphy3; ё folded to е) -> scores per category from the rules
file (``rules/classifier.toml``, or the file named by ZHKH_CLASSIFIER_RULES):

* ``[categories.<code>.terms]``: a lemma, or a phrase of lemmas in order within ``phrase_window``
  tokens, with a weight. A category's score is the sum of the weights of the terms found (each term
  counts once).
* ``[[emergency]]``: fires when every ``all`` entry (a lemma, or alternatives ``"a|b"``) and at
  least one ``any`` lemma occur within ``window`` tokens of each other (and the month is in
  ``months``, if given); rules are tried in file order, the first that fires names the emergency. A rule's ``category``
  gets ``emergency_bonus`` added to its score.

Confidence = share x strength, where share = top score / sum of all scores and strength =
min(1, top score / saturation): one weak word gives little confidence, a clear majority of strong
terms gives close to 1. Below ``min_score`` the category is ``other`` with confidence 0.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from pathlib import Path

import pymorphy3

from zhkh_contracts import Category

DEFAULT_RULES = Path(__file__).with_name("rules") / "classifier.toml"
_TOKEN = re.compile(r"[а-яёa-z0-9]+")


def fold(s: str) -> str:
    return s.lower().replace("ё", "е")


class Lemmatizer:
    """Rule words take their most likely lemma; text tokens keep every candidate lemma, so an
    ambiguous form ("холодные": холодный / холодное) matches whichever the rules use."""

    def __init__(self) -> None:
        self._morph = pymorphy3.MorphAnalyzer()
        self.lemma = lru_cache(maxsize=200_000)(self._lemma)
        self.candidates = lru_cache(maxsize=200_000)(self._candidates)

    def _lemma(self, token: str) -> str:
        return fold(self._morph.parse(token)[0].normal_form)

    def _candidates(self, token: str) -> frozenset[str]:
        return frozenset(fold(p.normal_form) for p in self._morph.parse(token)) | {token}

    def tokens(self, text: str) -> list[frozenset[str]]:
        return [self.candidates(t) for t in _TOKEN.findall(fold(text))]


@dataclass(frozen=True)
class Term:
    lemmas: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class EmergencyRule:
    name: str
    all: tuple[tuple[str, ...], ...]  # each entry: alternatives ("канализация|нечистоты")
    any: tuple[str, ...]
    window: int
    category: Category | None
    months: frozenset[int] | None


@dataclass(frozen=True)
class Rules:
    categories: dict[Category, tuple[Term, ...]]
    emergencies: tuple[EmergencyRule, ...]
    phrase_window: int = 3
    saturation: float = 4.0
    min_score: float = 1.0
    emergency_bonus: float = 3.0

    @classmethod
    def load(cls, path: Path, lemmatizer: Lemmatizer) -> Rules:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        s = raw.get("settings", {})

        def lem(words: str) -> tuple[str, ...]:
            # Rule words are lemmatized like the text, so a rule may say "батареи" or "батарея".
            return tuple(lemmatizer.lemma(w) for w in _TOKEN.findall(fold(words)))

        cats = {}
        for code, spec in raw.get("categories", {}).items():
            cats[Category(code)] = tuple(Term(lem(k), float(w)) for k, w in spec.get("terms", {}).items())
        for e in raw.get("emergency", []):
            for w in e.get("any", []):
                if len(lem(w)) != 1:
                    raise ValueError(f"emergency rule {e['name']!r}: 'any' takes single words, got {w!r}")
        emergencies = tuple(
            EmergencyRule(
                name=e["name"],
                all=tuple(tuple(x for alt in w.split("|") for x in lem(alt)) for w in e.get("all", [])),
                any=tuple(x for w in e.get("any", []) for x in lem(w)),
                window=int(e.get("window", s.get("emergency_window", 6))),
                category=Category(e["category"]) if e.get("category") else None,
                months=frozenset(e["months"]) if e.get("months") else None,
            )
            for e in raw.get("emergency", [])
        )
        return cls(
            categories=cats,
            emergencies=emergencies,
            phrase_window=int(s.get("phrase_window", 3)),
            saturation=float(s.get("saturation", 4.0)),
            min_score=float(s.get("min_score", 1.0)),
            emergency_bonus=float(s.get("emergency_bonus", 3.0)),
        )


@dataclass(frozen=True)
class Classification:
    category: Category
    confidence: float
    emergency: bool
    emergency_rule: str | None
    scores: dict[str, float] = field(default_factory=dict)


def _positions(tokens: list[frozenset[str]]) -> dict[str, list[int]]:
    pos: dict[str, list[int]] = {}
    for i, candidates in enumerate(tokens):
        for lemma in candidates:
            pos.setdefault(lemma, []).append(i)
    return pos


def _has_term(term: Term, pos: dict[str, list[int]], window: int) -> bool:
    if len(term.lemmas) == 1:
        return term.lemmas[0] in pos
    starts = pos.get(term.lemmas[0], [])
    for start in starts:
        prev, ok = start, True
        for lemma in term.lemmas[1:]:
            nxt = [p for p in pos.get(lemma, []) if prev < p <= prev + window]
            if not nxt:
                ok = False
                break
            prev = nxt[0]
        if ok:
            return True
    return False


def _fires(rule: EmergencyRule, pos: dict[str, list[int]], month: int | None) -> bool:
    if rule.months is not None and (month is None or month not in rule.months):
        return False
    groups = [[p for lemma in alts for p in pos.get(lemma, [])] for alts in rule.all]
    if any(not g for g in groups):
        return False
    anys: list[int | None] = [p for lemma in rule.any for p in pos.get(lemma, [])] if rule.any else [None]
    if not anys or (not groups and anys == [None]):
        return False
    for combo in product(*groups, anys):
        points = [p for p in combo if p is not None]
        if max(points) - min(points) <= rule.window:
            return True
    return False


class Classifier:
    def __init__(self, rules_path: Path = DEFAULT_RULES, lemmatizer: Lemmatizer | None = None) -> None:
        self.lemmatizer = lemmatizer or Lemmatizer()
        self.rules = Rules.load(rules_path, self.lemmatizer)

    def classify(self, text: str, month: int | None = None) -> Classification:
        r = self.rules
        pos = _positions(self.lemmatizer.tokens(text))
        scores: dict[Category, float] = {}
        for cat, terms in r.categories.items():
            score = sum(t.weight for t in terms if _has_term(t, pos, r.phrase_window))
            if score:
                scores[cat] = score
        rule = next((e for e in r.emergencies if _fires(e, pos, month)), None)
        if rule is not None and rule.category is not None:
            scores[rule.category] = scores.get(rule.category, 0.0) + r.emergency_bonus
        named = {c.value: s for c, s in sorted(scores.items(), key=lambda kv: -kv[1])}
        if not scores or max(scores.values()) < r.min_score:
            return Classification(Category.OTHER, 0.0, rule is not None, rule.name if rule else None, named)
        # Ties go to the category listed first in the rules file (its order is the priority).
        order = list(r.categories)
        top = max(scores, key=lambda c: (scores[c], -order.index(c) if c in order else -len(order)))
        share = scores[top] / sum(scores.values())
        strength = min(1.0, scores[top] / r.saturation)
        return Classification(top, round(share * strength, 3), rule is not None, rule.name if rule else None, named)
