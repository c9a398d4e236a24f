"""exportAppeal criteria the emulator now applies: AppealTheme, NotSent, AnswerGUID and the answer dates
(StartCreateDate/EndCreateDate, StartPostDate/EndPostDate), over the wire with zeep as gis_sync sends them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from devtools.gis_emulator import EmulatorServer, EmulatorState
from devtools.gis_emulator.state import TOPICS
from tests.unit.test_gis_emulator import PARTY_MAP, Gis, answer, performer, tg


class Clock:
    def __init__(self, day: date) -> None:
        self.day = day

    def __call__(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(date(2026, 6, 1))


@pytest.fixture
async def gis(clock: Clock) -> Any:
    state = EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.0, polls_to_complete=1, random_seed=3,
                                         now=clock)
    async with EmulatorServer(state) as url:
        g = Gis(url)
        g.state_ = state
        try:
            yield g
        finally:
            await g.close()


async def exported(gis: Gis, **criteria: Any) -> list[str] | str:
    """AppealGUIDs exported, in order, or the ErrorMessage code."""
    ack = await gis.export(**criteria)
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    if st["ErrorMessage"] is not None:
        return st["ErrorMessage"]["ErrorCode"]
    return [a["AppealGUID"] for a in st["ExportAppealResult"]]


def theme(code: str) -> dict[str, str]:
    t = TOPICS[code]
    return {"Code": t.code, "GUID": t.guid, "Name": t.name}


async def test_appeal_theme_and_not_sent(gis: Gis):
    heat, water, other = gis.state_.create_appeals([
        {"topic_code": "1.1", "create_date": "2026-05-10"}, {"topic_code": "1.2", "create_date": "2026-05-11"},
        {"another_topic": "Шум от соседей", "create_date": "2026-05-12"}])
    heat2, = gis.state_.create_appeals([{"topic_code": "1.1", "create_date": "2026-05-20"}])
    assert await exported(gis, StartDate=date(2026, 5, 1), AppealTheme=theme("1.1")) == [heat.guid, heat2.guid]
    assert await exported(gis, AppealTheme=theme("1.2")) == [water.guid]  # no dates: the whole window
    assert await exported(gis, EndDate=date(2026, 5, 15), AppealTheme=theme("1.1")) == [heat.guid]
    assert await exported(gis, AppealTheme=theme("2.3")) == "INT002012"
    wrong_guid = {**theme("1.1"), "GUID": TOPICS["1.2"].guid}  # the code and the GUID must name the same topic
    assert await exported(gis, AppealTheme=wrong_guid) == "INT002012"
    assert other.guid in await exported(gis, StartDate=date(2026, 5, 1))
    # "Не отправлено": ГИС never exports such appeals (published schema), so the flag alone selects nothing
    assert await exported(gis, StartDate=date(2026, 5, 1), StatusOfAppeal={"NotSent": True}) == "INT002012"
    assert await exported(gis, StartDate=date(2026, 5, 1), StatusOfAppeal={"NotSent": True, "Sent": True}) == [
        heat.guid, water.guid, other.guid, heat2.guid]


async def test_export_by_answer_guid_and_answer_dates(gis: Gis, clock: Clock):
    a, b, c = gis.state_.create_appeals([{"create_date": "2026-05-01"}, {"create_date": "2026-05-02"},
                                         {"create_date": "2026-05-03"}])
    for x in (a, b, c):
        assert set(v[1] for v in (await gis.run_import(appeal=[performer(x.guid, tg())])).values()) == {None}
    clock.day = date(2026, 6, 3)  # a: loaded and sent on 3 June
    await gis.run_import(answer=[answer(a.guid, tg(), tg())])
    clock.day = date(2026, 6, 5)  # b: loaded on 5 June, sent on 7 June; c: loaded on 5 June, never sent
    await gis.run_import(answer=[answer(b.guid, tg(), tg(), send=False)])
    await gis.run_import(answer=[answer(c.guid, tg(), tg(), send=False)])
    clock.day = date(2026, 6, 7)
    (b_answer,) = gis.state_.appeal(b.guid).answers
    await gis.run_import(answer=[{"TransportGUID": tg(), "AppealGUID": b.guid, "Answer": [
        {"TransportGUID": tg(), "AnswererGUID": b_answer.answerer_guid, "AnswerGUID": b_answer.guid,
         "SendAnswer": True}]}])
    (a_answer,), (c_answer,) = gis.state_.appeal(a.guid).answers, gis.state_.appeal(c.guid).answers
    assert (a_answer.create_date, a_answer.send_date) == (date(2026, 6, 3), date(2026, 6, 3))
    assert (b_answer.create_date, b_answer.send_date) == (date(2026, 6, 5), date(2026, 6, 7))

    # by answer GUID: in the order given, unknown ones skipped
    assert await exported(gis, AnswerGUID=[c_answer.guid, "00000000-0000-4000-8000-000000000000", a_answer.guid]) == [
        c.guid, a.guid]
    assert await exported(gis, AnswerGUID=["00000000-0000-4000-8000-000000000000"]) == "INT002012"
    # by the answer's creation date (sent or not)
    assert await exported(gis, StartCreateDate=date(2026, 6, 4)) == [b.guid, c.guid]
    assert await exported(gis, EndCreateDate=date(2026, 6, 4)) == [a.guid]
    # by the date the answer was sent: only sent answers have one
    assert await exported(gis, StartPostDate=date(2026, 6, 1)) == [a.guid, b.guid]
    assert await exported(gis, StartPostDate=date(2026, 6, 6), EndPostDate=date(2026, 6, 30)) == [b.guid]
    # both on the same answer
    assert await exported(gis, StartCreateDate=date(2026, 6, 5), EndPostDate=date(2026, 6, 6)) == "INT002012"
    assert await exported(gis, StartCreateDate=date(2026, 6, 5), StartPostDate=date(2026, 6, 6)) == [b.guid]
