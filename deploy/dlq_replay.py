"""List the dead letters of one DLQ and, with --apply, re-publish them to their original topics.

Runs with the Python of the service image (aiokafka, zhkh_runtime and the ZHKH_KAFKA_* settings are
there), fed on stdin, so nothing has to be installed or copied:

    kubectl -n zhkh-appeals exec -i deploy/router -- python - zhkh.router.dlq < deploy/dlq_replay.py
    kubectl -n zhkh-appeals exec -i deploy/router -- python - zhkh.router.dlq --reason retries_exhausted --apply < deploy/dlq_replay.py
    docker compose exec -T router python - zhkh.router.dlq < deploy/dlq_replay.py

Without --apply it only lists (partition:offset, x-dlq-reason, ce_id, ce_type, original topic,
x-dlq-error; never the value). With --apply every listed record that has x-dlq-original-topic
(and the given --reason, if any) goes back to that topic with its original key, value and headers
(the x-dlq-* headers removed). Consumers dedupe by ce_id, so a record that some consumer group had
already handled changes nothing there, and running this twice is harmless. Records without
x-dlq-original-topic (the notifier's undeliverable notifications) are listed, never re-published.
See docs/operations.md, "Dead letters and replay".

Kafka security: the ZHKH_KAFKA_SECURITY_PROTOCOL / ZHKH_KAFKA_SASL_* / ZHKH_KAFKA_SSL_* settings of
the environment (zhkh_runtime.kafka.client_kwargs). With ACLs, a service's own principal may neither
read its DLQ nor write every original topic: run it with the admin principal's credentials (see
docs/operations.md, "Transport security").
"""

from __future__ import annotations

import argparse
import asyncio
import os

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dlq_replay", description=__doc__.splitlines()[0])
    p.add_argument("dlq", help="the DLQ topic, e.g. zhkh.router.dlq")
    p.add_argument("--reason", help="only records with this x-dlq-reason")
    p.add_argument("--apply", action="store_true", help="re-publish (default: list only)")
    p.add_argument("--bootstrap", default=os.environ.get("ZHKH_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    return p.parse_args()


def client(bootstrap: str) -> dict[str, Any]:
    try:
        from zhkh_runtime.kafka import client_kwargs
        from zhkh_runtime.settings import RuntimeSettings
    except ImportError:  # outside the image, without the project: plaintext only
        return {"bootstrap_servers": bootstrap}
    return client_kwargs(RuntimeSettings(kafka_bootstrap=bootstrap))


async def main(args: argparse.Namespace) -> None:
    kw = client(args.bootstrap)
    consumer = AIOKafkaConsumer(**kw, enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(**kw, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    listed = replayed = 0
    try:
        await consumer.topics()  # fetch metadata
        parts = [TopicPartition(args.dlq, p) for p in sorted(consumer.partitions_for_topic(args.dlq) or ())]
        if not parts:
            raise SystemExit(f"no such topic: {args.dlq}")
        consumer.assign(parts)  # no consumer group: reading does not move any committed offset
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for r in records:
                    if r.offset >= end[tp]:
                        continue
                    h = {k: v.decode("utf-8", "replace") for k, v in r.headers}
                    if args.reason and h.get("x-dlq-reason") != args.reason:
                        continue
                    target = h.get("x-dlq-original-topic")
                    listed += 1
                    print(f"{tp.partition}:{r.offset} reason={h.get('x-dlq-reason')} ce_id={h.get('ce_id')} "
                          f"ce_type={h.get('ce_type')} from={target} error={h.get('x-dlq-error')}")
                    if not args.apply or target is None:
                        continue
                    original = [(k, v) for k, v in r.headers if not k.startswith("x-dlq-")]
                    await producer.send_and_wait(target, r.value, key=r.key, headers=original)
                    replayed += 1
                    print(f"  -> re-published to {target}")
    finally:
        await consumer.stop()
        await producer.stop()
    print(f"{listed} listed, {replayed} re-published" + ("" if args.apply else " (list only: add --apply)"))


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
