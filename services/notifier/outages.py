"""Citizen notices of the outage register (the router's ``AppealLinkedToOutage``): a new appeal about a
known outage is answered at once with the expected restore time, and residents who appealed are told
when an outage is registered at their house, when its restore time changes and when it is restored.

These are status notices: they need the citizen's consent to notifications, go by SMS or messenger only
with consent to optional uses, and wait out the quiet hours like the other notices (``NotifierService.on_outage``, ``_notify``). They
are not the appeal's answer: the appeal stays routed and timed as usual."""

from __future__ import annotations

from typing import Any

from zhkh_contracts import AppealLinkedToOutage

from .templates import OUTAGE_KIND_RU, OUTAGE_RESOURCE_RU, local_time


def outage_fields(e: AppealLinkedToOutage, tz: str) -> dict[str, Any]:
    """What the Russian template of the notice says, local times in ``tz`` (the appeal's zone)."""
    fields: dict[str, Any] = {
        "number": e.registration_number, "resource_ru": OUTAGE_RESOURCE_RU[e.resource.value],
        "kind_ru": OUTAGE_KIND_RU[e.outage_kind.value], "restore": local_time(e.expected_restore_at, tz),
        "start": local_time(e.starts_at, tz),
    }
    if e.restored_at is not None:
        fields["restored"] = local_time(e.restored_at, tz)
        fields["hours"] = f"{max(0.0, (e.restored_at - e.starts_at).total_seconds() / 3600):.1f}".replace(".", ",")
    return fields
