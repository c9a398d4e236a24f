"""Routing rules and escalation on the sample directory (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.directory import parse
from router.rules import Context, RoutingRules, escalate, route
from zhkh_contracts import AssignmentCause, Category, PartyKind

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "sample_directory"
LENINA = "fias:5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b"  # УК Заречье, electricity+gas on direct contracts
URALSKAYA = "fias:9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c"  # ЖСК, heating+hot water on direct contracts
SADOVAYA = "fias:c3d4e5f6-0a1b-4c2d-8e3f-405162738495"  # no managing organisation


@pytest.fixture(scope="module")
def d():  # noqa: ANN201
    return parse(sorted(SAMPLE.glob("*.csv")))


@pytest.fixture(scope="module")
def rules() -> RoutingRules:
    return RoutingRules.load()


def ctx(d, key):  # noqa: ANN001, ANN201
    h = d.houses.get(key)
    return Context(h, d.districts.get(h.district_id) if h else None, d.parties)


@pytest.mark.parametrize(
    ("house", "category", "party", "reason"),
    [
        (LENINA, Category.HEATING, "uk-zarechye", "house_services_to_managing_org"),
        (LENINA, Category.ELECTRICITY, "energosbyt", "direct_contract_to_supplier"),
        (URALSKAYA, Category.HOT_WATER, "tgk-teplo", "direct_contract_to_supplier"),
        (URALSKAYA, Category.COLD_WATER, "zhsk-uralets", "house_services_to_managing_org"),
        (SADOVAYA, Category.HEATING, "tgk-teplo", "house_services_to_supplier"),
        (LENINA, Category.WASTE, "regop-tko", "waste_to_regional_operator"),
        (LENINA, Category.LAND, "adm-leninsky", "land_to_district"),
        (LENINA, Category.MANAGEMENT, "gzhi", "managing_org_complaints_to_inspection"),
    ],
)
def test_rules_pick_the_party(d, rules, house, category, party, reason):
    dec = route(rules, ctx(d, house), category)
    assert (dec.party.party_id, dec.reason, dec.cause) == (party, reason, AssignmentCause.RULE)


def test_fallbacks_say_why(d, rules):
    assert route(rules, ctx(d, "addr:nowhere"), Category.HEATING).reason == "unknown_house"
    no_mo = route(rules, ctx(d, SADOVAYA), Category.LIFTS)  # lifts need a managing organisation
    assert (no_mo.party, no_mo.reason, no_mo.cause) == (None, "party_not_in_directory", AssignmentCause.FALLBACK)
    empty = RoutingRules(rules=(), chain=rules.chain)
    assert route(empty, ctx(d, LENINA), Category.HEATING).reason == "no_rule"


def test_excluding_a_bounced_party_moves_to_the_next_rule(d, rules):
    dec = route(rules, ctx(d, LENINA), Category.HOT_WATER, frozenset({"uk-zarechye"}))
    assert (dec.party.party_id, dec.reason) == ("tgk-teplo", "house_services_to_supplier")
    none_left = route(rules, ctx(d, LENINA), Category.LIFTS, frozenset({"uk-zarechye"}))
    assert (none_left.party, none_left.reason) == (None, "no_other_party")


def test_escalation_climbs_the_chain_and_stops_at_the_top(d, rules):
    c = ctx(d, LENINA)
    steps, kind = [], PartyKind.MANAGING_ORGANISATION
    while (dec := escalate(rules, c, Category.HEATING, kind, "deadline_expired")) is not None:
        steps.append((dec.party.party_id, dec.level))
        kind = dec.party.kind
    assert steps == [("adm-leninsky", 1), ("city-zhkh", 2), ("gzhi", 3)]
    # a supplier or the fallback queue counts as the first level
    assert escalate(rules, c, Category.HEATING, PartyKind.RESOURCE_SUPPLIER, "x").party.party_id == "adm-leninsky"
    assert escalate(rules, c, Category.HEATING, PartyKind.FALLBACK_QUEUE, "x").party.party_id == "adm-leninsky"
    # unknown house: no district, so the city department is next
    assert escalate(rules, ctx(d, "addr:x"), Category.HEATING, None, "x").party.party_id == "city-zhkh"
