"""Accuracy of intake's rule-based classifier on the labelled set tests/data/classifier_samples.jsonl.

    .venv/bin/python bench/classifier_accuracy.py [--rules FILE] [--errors]

The set (294 realistic Russian appeals, written independently of the rules) is split by id:
even ids are the development half (the rules were tuned looking at its errors), odd ids are held
out (never looked at while tuning). Both halves are reported; the held-out figures are the honest
ones. Prints category accuracy, emergency precision/recall, a per-category table, and the
accuracy of the confident predictions (what an operator can trust without review).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

from intake.classifier import DEFAULT_RULES, Classifier  # noqa: E402

DATA = ROOT / "tests" / "data" / "classifier_samples.jsonl"


def load() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(clf: Classifier, rows: list[dict], threshold: float) -> dict:
    ok = tp = fp = fn = confident = confident_ok = 0
    per: dict[str, Counter] = {}
    errors = []
    for r in rows:
        c = clf.classify(r["text"], month=r["month"])
        hit = c.category.value == r["category"]
        ok += hit
        per.setdefault(r["category"], Counter())["n"] += 1
        per[r["category"]]["ok"] += hit
        tp += c.emergency and r["emergency"]
        fp += c.emergency and not r["emergency"]
        fn += (not c.emergency) and r["emergency"]
        if c.confidence >= threshold:
            confident += 1
            confident_ok += hit
        if not hit or c.emergency != r["emergency"]:
            errors.append((r["id"], r["category"], c.category.value, r["emergency"], c.emergency_rule, c.confidence, r["text"]))
    n = len(rows)
    return {
        "n": n,
        "accuracy": ok / n,
        "emergency_precision": tp / (tp + fp) if tp + fp else float("nan"),
        "emergency_recall": tp / (tp + fn) if tp + fn else float("nan"),
        "confident_share": confident / n,
        "confident_accuracy": confident_ok / confident if confident else float("nan"),
        "per_category": {k: v["ok"] / v["n"] for k, v in sorted(per.items())},
        "errors": errors,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    ap.add_argument("--threshold", type=float, default=0.5, help="confidence counted as 'confident'")
    ap.add_argument("--errors", action="store_true", help="list the development half's errors")
    args = ap.parse_args()
    rows = load()
    dev = [r for r in rows if int(r["id"][1:]) % 2 == 0]
    held = [r for r in rows if int(r["id"][1:]) % 2 == 1]
    t0 = time.perf_counter()
    clf = Classifier(args.rules)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = {"development": evaluate(clf, dev, args.threshold), "held-out": evaluate(clf, held, args.threshold),
               "all": evaluate(clf, rows, args.threshold)}
    per_text_ms = (time.perf_counter() - t0) / (len(rows) * 2) * 1000
    print(f"labelled set: {len(rows)} appeals ({sum(r['emergency'] for r in rows)} emergencies); "
          f"rules: {args.rules.name}; load {load_s:.2f}s; {per_text_ms:.2f} ms per text")
    print(f"{'split':12s} {'n':>4s} {'category acc':>12s} {'emerg. prec':>11s} {'emerg. recall':>13s} "
          f"{'conf>=' + str(args.threshold):>10s} {'acc(conf)':>9s}")
    for name, r in results.items():
        print(f"{name:12s} {r['n']:4d} {r['accuracy']:12.1%} {r['emergency_precision']:11.1%} "
              f"{r['emergency_recall']:13.1%} {r['confident_share']:10.1%} {r['confident_accuracy']:9.1%}")
    print("per category (held-out):", ", ".join(f"{k} {v:.0%}" for k, v in results["held-out"]["per_category"].items()))
    if args.errors:
        for e in results["development"]["errors"]:
            print(" ", e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
