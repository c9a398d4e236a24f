"""The rule-based classifier on hand-picked cases (accuracy on the labelled set: bench/classifier_accuracy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.classifier import Classifier
from zhkh_contracts import Category


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


@pytest.mark.parametrize(
    ("text", "month", "category", "rule"),
    [
        ("Сильно пахнет газом на лестничной клетке", 5, Category.GAS, "gas_smell"),
        ("ИСКРИТ РОЗЕТКА!!!", 3, Category.ELECTRICITY, "sparking_wiring"),
        ("Нет отопления, батареи холодные", 12, Category.HEATING, "no_heating_in_cold_season"),
        ("Батареи холодные", 7, Category.HEATING, None),  # not an emergency in July
        ("Застряли в лифте с ребёнком", 2, Category.LIFTS, "person_stuck_in_lift"),
        ("Лифт не работает неделю", 2, Category.LIFTS, None),
        ("Прошу сделать перерасчёт за отопление", 1, Category.BILLING, None),
        ("Затопило подвал канализацией, нечистоты по колено", 6, Category.SEWERAGE, "sewer_flooding"),
        ("Над подъездом огромные сосульки", 1, Category.COMMON_PROPERTY, "icicles"),
        ("Мусор не вывозят с понедельника, контейнеры переполнены", 6, Category.WASTE, None),
        ("Соседи шумят по ночам", 4, Category.OTHER, None),
    ],
)
def test_cases(clf, text, month, category, rule):
    c = clf.classify(text, month)
    assert (c.category, c.emergency_rule) == (category, rule)
    assert c.emergency == (rule is not None)


def test_confidence_grows_with_evidence(clf):
    weak = clf.classify("тепло", 5)
    strong = clf.classify("Не работает отопление, батареи и радиаторы ледяные, теплоснабжение отключено", 5)
    assert 0 < weak.confidence < strong.confidence <= 1


def test_rules_are_a_file_you_can_change(tmp_path: Path):
    rules = tmp_path / "r.toml"
    rules.write_text('[categories.lifts.terms]\n"подъемник" = 3\n[[emergency]]\nname = "x"\nall = ["подъемник"]\nany = ["застрять"]\n')
    c = Classifier(rules).classify("Застрял подъемник", 1)
    assert (c.category, c.emergency_rule) == (Category.LIFTS, "x")


def test_phrases_in_any_are_refused(tmp_path: Path):
    rules = tmp_path / "r.toml"
    rules.write_text('[[emergency]]\nname = "bad"\nall = ["газ"]\nany = ["запах гари"]\n')
    with pytest.raises(ValueError, match="single words"):
        Classifier(rules)


def test_labelled_set_accuracy_floor(clf):
    """A regression floor on the held-out half (ids with odd numbers); figures: bench/classifier_accuracy.py."""
    import json

    path = Path(__file__).resolve().parents[1] / "data" / "classifier_samples.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    held = [r for r in rows if int(r["id"][1:]) % 2 == 1]
    assert len(rows) >= 200
    hits = sum(clf.classify(r["text"], r["month"]).category.value == r["category"] for r in held)
    emergencies = [r for r in held if r["emergency"]]
    caught = sum(clf.classify(r["text"], r["month"]).emergency for r in emergencies)
    assert hits / len(held) >= 0.85
    assert caught / len(emergencies) >= 0.85
