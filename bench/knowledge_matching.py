"""How well intake's knowledge base suggests the right article, on the labelled set
tests/data/knowledge_questions.jsonl.

    .venv/bin/python bench/knowledge_matching.py [--kb FILE] [--errors]

The set: 84 questions as citizens ask them (3 per article, written before the keywords were tuned, and 6
with no article in the base). Split by id: even ids are the development half (keywords were tuned looking
at its misses), odd ids are held out (never looked at while tuning); both halves are reported.

* top-1: the first suggestion is the labelled article; top-3: it is among the (at most 3) suggestions;
* none right: for questions with no article, the share that got no suggestion at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))
sys.path.insert(0, str(ROOT / "contracts" / "src"))

from intake.classifier import Classifier  # noqa: E402
from intake.knowledge import DEFAULT_KNOWLEDGE_BASE, KnowledgeBase  # noqa: E402

DATA = ROOT / "tests" / "data" / "knowledge_questions.jsonl"


def load() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(kb: KnowledgeBase, rows: list[dict]) -> dict:
    top1 = top3 = labelled = none_ok = unlabelled = 0
    errors = []
    for r in rows:
        ids = [s.article.id for s in kb.suggest(r["text"])]
        if r["article"] is None:
            unlabelled += 1
            none_ok += not ids
            if ids:
                errors.append((r["id"], r["text"], None, ids))
            continue
        labelled += 1
        top1 += bool(ids) and ids[0] == r["article"]
        top3 += r["article"] in ids
        if not ids or ids[0] != r["article"]:
            errors.append((r["id"], r["text"], r["article"], ids))
    return {"questions": labelled, "top1": top1 / labelled, "top3": top3 / labelled,
            "without_article": unlabelled, "none_right": none_ok / unlabelled if unlabelled else None,
            "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", type=Path, default=DEFAULT_KNOWLEDGE_BASE)
    ap.add_argument("--errors", action="store_true")
    args = ap.parse_args()
    kb = KnowledgeBase.load(args.kb, Classifier())
    rows = load()
    for name, part in (("development (even ids)", [r for r in rows if r["id"] % 2 == 0]),
                       ("held out (odd ids)", [r for r in rows if r["id"] % 2 == 1]),
                       ("all", rows)):
        m = evaluate(kb, part)
        print(f"{name:24} questions {m['questions']:3}  top-1 {m['top1']:.1%}  top-3 {m['top3']:.1%}  "
              f"no-article questions {m['without_article']} with no suggestion {m['none_right']:.0%}")
        if args.errors and name == "all":
            for e in m["errors"]:
                print("  ", e)


if __name__ == "__main__":
    main()
