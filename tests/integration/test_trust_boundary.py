"""Forged records on the real broker and database (issue 13): the engine dead-letters a type on a
topic it does not belong to (``type_not_allowed``) and an event from a source that does not own its
type (``forged_source``); the router refuses an action whose actor may not take it (``forbidden``)
and records applied and refused actions in the appeal's history."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_router import register, system
from tests.support.engine import owned
from tests.support.kafka import TopicReader, produce, running
from tests.support.services import service_settings
from zhkh_contracts import (
    AppealAnswered,
    AppealRegistered,
    AppealStatus,
    AppealTransitionRejected,
    PartyAnswered,
    Topics,
    to_kafka,
)

pytestmark = pytest.mark.integration


async def send(infra, topic: str, env) -> None:  # noqa: ANN001
    key, value, headers = to_kafka(env)
    await produce(infra.bootstrap, topic, value, key, [(k, v.encode()) for k, v in headers.items()])


async def test_forged_types_sources_and_actors_are_refused_and_the_history_records_who_did_what(infra, prefix, mongo_db):
    from router.repository import RouterRepository

    from notifier.main import create_app as notifier_app
    from notifier.settings import NotifierSettings

    topics = Topics(prefix)
    notifier = notifier_app(service_settings(NotifierSettings, infra, prefix))
    async with system(infra, prefix) as (base, f), running(notifier):
        aid = await register(infra, prefix, f)
        assigned = await f.assigned(aid)
        u = uuid.UUID(aid)
        registered = next(e for e in f.events(aid) if isinstance(e.data, AppealRegistered))

        async with TopicReader(infra.bootstrap, topics.dlq("router")) as dlq:
            # 1. an AppealRegistered on the actions topic (as if from intake): not an action, not created
            copy = registered.data.appeal.model_copy(update={"appeal_id": uuid.uuid4(), "registration_number": "ZH-2026-9999999"})
            forged_reg = owned(AppealRegistered(appeal=copy), appeal_id=str(copy.appeal_id))
            await send(infra, topics.actions, forged_reg)
            # 2. an AppealAnswered on the lifecycle topic from someone other than the router
            forged_answer = owned(AppealAnswered(appeal_id=u, registration_number=assigned.registration_number,
                                                 party_id=assigned.party_id, text="Всё сделано (подделка)",
                                                 answered_at=registered.occurred_at),
                                  source="/zhkh-appeals/party", appeal_id=aid)
            await send(infra, topics.lifecycle, forged_answer)
            forged_answer_value = to_kafka(forged_answer)[1]
            # 3. an action on the actions topic from outside the router's API (a self-declared actor)
            outside = owned(PartyAnswered(appeal_id=u, actor=f"party:{assigned.party_id}", text="подделка"),
                            source="/parties/uk-zarechye", appeal_id=aid)
            await send(infra, topics.actions, outside)

            await dlq.wait_for(lambda r: len(r) >= 3)
            await dlq.settle(1.0)
            reasons = {dict(r.headers)["ce_id"].decode(): dict(r.headers)["x-dlq-reason"] for r in dlq.records}
            assert reasons == {str(forged_reg.id): b"type_not_allowed", str(forged_answer.id): b"forged_source",
                               str(outside.id): b"forged_source"}
            for r in dlq.records:  # the original bytes, where they were
                h = dict(r.headers)
                assert h["x-dlq-service"] == b"router" and h["x-dlq-original-topic"] in (
                    topics.actions.encode(), topics.lifecycle.encode())
        # every consumer of the lifecycle topic refuses the forged answer: the notifier tells no citizen about it
        async with TopicReader(infra.bootstrap, topics.dlq("notifier")) as ndlq:
            (dead,) = await ndlq.wait_for(lambda r: len(r) >= 1)
            assert dict(dead.headers)["x-dlq-reason"] == b"forged_source" and dead.value == forged_answer_value

        # 4. through the router's source, but the actor is another party: refused forbidden
        other = owned(PartyAnswered(appeal_id=u, actor="party:vodokanal", actor_subject="kc:intruder", text="не мы"),
                      appeal_id=aid)
        await send(infra, topics.actions, other)
        await f.until(lambda f: f.of(AppealTransitionRejected, aid))
        (refused,) = f.of(AppealTransitionRejected, aid)
        assert (refused.code, refused.action, refused.cause_event_id) == ("forbidden", "answer", other.id)

        # 5. the assigned party, through the router's API: applied
        legit = owned(PartyAnswered(appeal_id=u, actor=f"party:{assigned.party_id}", actor_subject="kc:7f1e",
                                    text="Подача горячей воды восстановлена."), appeal_id=aid)
        await send(infra, topics.actions, legit)
        await f.until(lambda f: f.statuses(aid)[-1][1] is AppealStatus.ANSWERED)
        # the forged answer is on the topic (anyone could write it) but no consumer takes it: only the router's counts
        answers = [(e.source, e.data.text) for e in f.events(aid) if isinstance(e.data, AppealAnswered)]
        assert answers == [("/zhkh-appeals/party", "Всё сделано (подделка)"),
                           ("/zhkh-appeals/router", "Подача горячей воды восстановлена.")]

    repo = RouterRepository(mongo_db)
    assert await repo.appeals.find_one({"_id": str(copy.appeal_id)}) is None
    history = await repo.history(aid)
    assert [(h.action, h.outcome, h.code, h.actor) for h in history] == [
        ("assign", "applied", None, "service:router"),
        ("answer", "refused", "forbidden", "party:vodokanal"),
        ("answer", "applied", None, f"party:{assigned.party_id}"),
    ]
    assert [h.via for h in history] == ["/zhkh-appeals/intake", "/zhkh-appeals/router", "/zhkh-appeals/router"]
    assert [h.cause_event_id for h in history[1:]] == [other.id, legit.id]
    assert (history[1].actor_subject, history[2].actor_subject) == ("kc:intruder", "kc:7f1e")
    assert [(h.status, h.version) for h in history] == [("assigned", 1), ("assigned", 1), ("answered", 2)]
    assert "Подача" not in repr([h.as_dict() for h in history])  # no texts in the history
    indexes = await repo.history_col.index_information()
    assert any(ix["key"] == [("appeal_id", 1), ("at", 1)] for ix in indexes.values())
