"""Routing rules and the escalation chain (no I/O here). See rules/routing.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from zhkh_contracts import AssignmentCause, Category, PartyKind

from .directory import RESOURCE_OF, District, House, Party

DEFAULT_RULES = Path(__file__).with_name("rules") / "routing.toml"


@dataclass(frozen=True)
class Rule:
    name: str
    categories: frozenset[Category]
    party: PartyKind
    direct_contract: bool | None = None


@dataclass(frozen=True)
class RoutingRules:
    rules: tuple[Rule, ...]
    chain: tuple[PartyKind, ...]

    @classmethod
    def load(cls, path: Path = DEFAULT_RULES) -> RoutingRules:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        rules = tuple(
            Rule(
                name=r["name"],
                categories=frozenset(Category(c) for c in r["categories"]),
                party=PartyKind(r["party"]),
                direct_contract=r.get("direct_contract"),
            )
            for r in raw.get("rule", [])
        )
        chain = tuple(PartyKind(k) for k in raw.get("escalation", {}).get("chain", []))
        return cls(rules, chain)


@dataclass(frozen=True)
class Context:
    """What routing needs to know about one appeal's house, loaded by the repository."""

    house: House | None
    district: District | None
    parties: dict[str, Party] = field(default_factory=dict)  # every party referenced, plus singletons

    def singleton(self, kind: PartyKind) -> Party | None:
        return next((p for p in self.parties.values() if p.kind is kind), None)

    def resolve(self, kind: PartyKind, category: Category) -> Party | None:
        h, d = self.house, self.district
        pid: str | None = None
        if kind is PartyKind.MANAGING_ORGANISATION:
            pid = h.managing_org_id if h else None
        elif kind is PartyKind.RESOURCE_SUPPLIER:
            res = RESOURCE_OF.get(category)
            if res is not None:
                pid = (h.suppliers.get(res) if h else None) or (d.suppliers.get(res) if d else None)
        elif kind is PartyKind.DISTRICT_ADMINISTRATION:
            pid = d.administration_id if d else None
        elif kind in (PartyKind.CITY_DEPARTMENT, PartyKind.HOUSING_INSPECTION):
            p = self.singleton(kind)
            return p
        party = self.parties.get(pid) if pid else None
        return party if party is not None and party.kind is kind else None


@dataclass(frozen=True)
class Decision:
    party: Party | None  # None: the fallback queue
    reason: str
    cause: AssignmentCause
    level: int = 0


def route(rules: RoutingRules, ctx: Context, category: Category, exclude: frozenset[str] = frozenset()) -> Decision:
    matched = False
    for rule in rules.rules:
        if category not in rule.categories:
            continue
        if rule.direct_contract is not None:
            res = RESOURCE_OF.get(category)
            on_direct = ctx.house is not None and res is not None and res in ctx.house.direct_contracts
            if on_direct != rule.direct_contract:
                continue
        matched = True
        party = ctx.resolve(rule.party, category)
        if party is not None and party.party_id not in exclude:
            return Decision(party, rule.name, AssignmentCause.RULE)
    if ctx.house is None:
        reason = "unknown_house"
    elif not matched:
        reason = "no_rule"
    elif exclude:
        reason = "no_other_party"
    else:
        reason = "party_not_in_directory"
    return Decision(None, reason, AssignmentCause.FALLBACK)


def level_of(rules: RoutingRules, kind: PartyKind | None) -> int:
    return rules.chain.index(kind) if kind in rules.chain else 0


def escalate(rules: RoutingRules, ctx: Context, category: Category, current: PartyKind | None, reason: str) -> Decision | None:
    """The next level above ``current`` that resolves for this house; None at the top of the chain."""
    for level in range(level_of(rules, current) + 1, len(rules.chain)):
        party = ctx.resolve(rules.chain[level], category)
        if party is not None:
            return Decision(party, reason, AssignmentCause.ESCALATION, level)
    return None
