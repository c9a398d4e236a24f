"""The router APIs' one access policy: who reads which records, how a listing is narrowed, which
actor a write carries."""

from __future__ import annotations

import pytest

from router import access
from zhkh_runtime.auth import Principal
from zhkh_runtime.http import Problem


def principal(*roles: str, parties: tuple[str, ...] = ()) -> Principal:
    return Principal(subject="u-1", roles=frozenset(roles), party_ids=parties)


@pytest.mark.parametrize("roles", [("operator",), ("inspector",), ("admin",)])
def test_staff_read_any_record_and_list_by_any_party(roles):
    p = principal(*roles)
    assert access.may_read(p, "uk-1") and access.may_read(p, None)
    query: dict = {}
    access.scope(p, query, None)
    assert query == {}
    access.scope(p, query, "uk-2")
    assert query == {"party_id": "uk-2"}


def test_a_party_reads_and_lists_only_its_own():
    p = principal("party", parties=("uk-2", "uk-1"))
    assert access.may_read(p, "uk-1")
    assert not access.may_read(p, "uk-3") and not access.may_read(p, None)
    query: dict = {}
    access.scope(p, query, None)
    assert query == {"party_id": {"$in": ["uk-1", "uk-2"]}}
    access.scope(p, query, "uk-2")
    assert query == {"party_id": "uk-2"}
    with pytest.raises(Problem) as exc:
        access.scope(p, {}, "uk-3")
    assert exc.value.status == 403


def test_roles_without_party_ids_read_nothing():
    for p in (principal("analyst"), principal("citizen"), principal("service")):
        assert not access.may_read(p, "uk-1")
        with pytest.raises(Problem):
            access.own_parties(p, {}, "uk-1")


def test_the_actor_is_the_first_allowed_staff_role_else_the_records_party():
    assert access.actor(principal("admin", "operator"), ("operator", "admin")) == "operator:u-1"
    assert access.actor(principal("admin"), ("operator", "admin")) == "admin:u-1"
    assert access.actor(principal("inspector")) == "inspector:u-1"
    assert access.actor(principal("party", parties=("uk-1",)), ("operator",), "uk-1") == "party:uk-1"
    for p, roles, party in [(principal("party", parties=("uk-1",)), ("operator",), "uk-2"),
                            (principal("inspector"), ("operator", "admin"), "uk-1"),
                            (principal("analyst"), access.STAFF, None)]:
        with pytest.raises(Problem) as exc:
            access.actor(p, roles, party)
        assert exc.value.status == 403
