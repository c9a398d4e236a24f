"""ServiceRuntime.every: the background loops of notifier (scanner) and gis_sync (push, pull, reconcile).

No broker or database is contacted: the loops are driven through the runtime's start and stop steps
with a round function that records its calls."""

from __future__ import annotations

import asyncio

import structlog
import structlog.testing

from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.settings import RuntimeSettings


def runtime() -> ServiceRuntime:
    return ServiceRuntime(RuntimeSettings(service_name="looptest", mongo_uri="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100"))


async def test_a_full_round_runs_again_at_once_and_a_partial_one_waits_for_the_interval():
    rt = runtime()
    results = iter([5, 5, 2, 5])  # full, full, partial (then waits), ...
    calls: list[float] = []

    async def round_() -> int:
        calls.append(asyncio.get_running_loop().time())
        return next(results, 0)

    rt.every("scan", 0.5, round_, again=lambda n: n >= 5, lease=False)
    await rt._started()
    try:
        await asyncio.sleep(0.25)
        assert len(calls) == 3  # two full rounds went straight on; the partial third one sleeps
        await asyncio.sleep(0.5)
        # after the interval: the fourth round is full again, so the fifth (empty) follows at once
        assert len(calls) == 5
        assert calls[3] - calls[2] >= 0.45 and calls[4] - calls[3] < 0.1
    finally:
        await rt._stop()


async def test_a_failed_round_is_logged_and_the_loop_goes_on():
    rt = runtime()
    calls = 0

    async def round_() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return 0

    rt.every("push", 0.05, round_, again=bool, lease=False)
    with structlog.testing.capture_logs() as logs:
        await rt._started()
        try:
            await asyncio.sleep(0.3)
        finally:
            await rt._stop()
    assert calls >= 3
    failed = [e for e in logs if e["event"] == "loop_failed"]
    assert [(e["loop"], e["error_type"]) for e in failed] == [("push", "RuntimeError")]


async def test_stop_cancels_the_loops_before_the_shutdown_hooks_run():
    rt = runtime()
    order: list[str] = []
    running = asyncio.Event()

    async def round_() -> None:
        running.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            order.append("loop cancelled")
            raise

    async def hook() -> None:
        order.append("shutdown hook")

    rt.every("pull", 1.0, round_, lease=False)
    rt.on_shutdown(hook)
    await rt._started()
    await asyncio.wait_for(running.wait(), 2)
    await rt._stop()
    assert order == ["loop cancelled", "shutdown hook"]


async def test_a_failed_first_join_is_tried_again_with_a_new_consumer():
    from aiokafka.errors import KafkaError

    from zhkh_runtime.consumer import ConsumerLoop

    made: list[object] = []

    class FlakyConsumer:
        def __init__(self) -> None:
            self.stopped = False
            made.append(self)

        def subscribe(self, *args: object, **kw: object) -> None:
            return None

        async def start(self) -> None:
            if len(made) == 1:
                raise KafkaError("Unexpected error during coordination")

        async def stop(self) -> None:
            self.stopped = True

    loop = ConsumerLoop(RuntimeSettings(service_name="jointest"), engine=None, topics=("t",))  # type: ignore[arg-type]
    loop.make_consumer = FlakyConsumer  # type: ignore[method-assign]
    loop._run = lambda: asyncio.sleep(0)  # type: ignore[method-assign]
    await loop.start()
    assert len(made) == 2 and made[0].stopped and loop.consumer is made[1] and loop.running  # type: ignore[attr-defined]


async def test_a_commit_refused_by_a_rebalance_leaves_the_batch_to_the_next_owner():
    """Retrying such a commit would never succeed: the rejoin waits for the batch in hand."""
    from aiokafka import TopicPartition
    from aiokafka.errors import CommitFailedError

    from zhkh_runtime.consumer import ConsumerLoop

    processed: list[int] = []
    tp = TopicPartition("t", 0)

    class Engine:
        async def process(self, records: list[object]) -> None:
            processed.append(len(records))

        def topic_label(self, topic: str) -> str:
            return topic

    class Consumer:
        commits = 0

        def assignment(self) -> set[TopicPartition]:
            return {tp}

        async def commit(self, offsets: object) -> None:
            Consumer.commits += 1
            raise CommitFailedError("the group rebalanced")

    class Rec:
        offset = 41

    loop = ConsumerLoop(RuntimeSettings(service_name="committest"), engine=Engine(), topics=("t",))  # type: ignore[arg-type]
    await asyncio.wait_for(loop._batch(Consumer(), tp, [Rec()]), 5)  # type: ignore[arg-type]
    assert processed == [1] and Consumer.commits == 1
