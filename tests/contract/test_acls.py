"""Kafka ACLs are generated from the topic catalog (devtools/gen_acls.py): the committed Strimzi
KafkaUsers and compose's init script are current, and they say what the catalog says. Only a few
examples are written here; the rest follows the catalog (which another change may extend)."""

from __future__ import annotations

import re

import yaml

import zhkh_contracts as c
from devtools import gen_acls
from zhkh_contracts.topics import SERVICES
from zhkh_runtime.settings import RuntimeSettings

T = c.Topics()


def test_generated_files_are_current():
    for path, text in gen_acls.render().items():
        assert path.exists(), f"{path} not committed; run python -m devtools.gen_acls"
        assert path.read_text() == text, f"{path} is stale; run python -m devtools.gen_acls"
    assert gen_acls.main(["--check"]) == 0


def users() -> dict[str, dict]:
    docs = list(yaml.safe_load_all(gen_acls.STRIMZI_FILE.read_text()))
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}


def strimzi_acls() -> dict[str, set[tuple[str, str, str]]]:
    """principal -> {(resource type, name, operation)} from the committed KafkaUsers."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    for name, u in users().items():
        assert u["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert u["spec"]["authorization"]["type"] == "simple"
        out[name] = set()
        for acl in u["spec"]["authorization"]["acls"]:
            assert acl["resource"]["patternType"] == "literal" and acl.get("type", "allow") == "allow"
            for op in acl["operations"]:
                out[name].add((acl["resource"]["type"], acl["resource"]["name"], op))
    return out


def script_acls() -> dict[str, set[tuple[str, str, str]]]:
    """The same from the committed compose init script (its kafka-acls.sh lines)."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    pattern = re.compile(r"kafka-acls\.sh\" \"\$\{ARGS\[@\]\}\" --add --allow-principal User:(\S+) --operation (\w+) --(topic|group) (\S+)$")
    for line in gen_acls.SCRIPT_FILE.read_text().splitlines():
        m = pattern.search(line)
        if m:
            out.setdefault(m[1], set()).add((m[3], m[4], m[2]))
    return out


def writers(topic: str) -> set[str]:
    return {p for p, acls in strimzi_acls().items() if ("topic", topic, "Write") in acls}


def svc(name: str) -> str:
    return gen_acls.principal_name(name)


def test_strimzi_and_compose_grant_the_same():
    assert strimzi_acls() == script_acls()
    script = gen_acls.SCRIPT_FILE.read_text()
    for name in users():  # every principal gets its SCRAM user in compose
        assert f"--entity-name {name} --add-config" in script


def test_router_may_write_the_lifecycle_topic():
    assert svc("router") in writers(T.lifecycle)


def test_analytics_writes_nothing_but_its_dlq():
    acls = strimzi_acls()[svc("analytics")]
    assert {name for kind, name, op in acls if op == "Write"} == {T.dlq("analytics")}


def test_no_channel_adapter_or_other_outsider_writes_the_gis_raw_topic():
    gis = T.raw(c.Channel.GIS)
    assert svc("gis_sync") in writers(gis)
    services = {svc(s) for s in SERVICES}
    assert writers(gis) <= services


def test_nobody_but_gis_sync_writes_the_gis_raw_topic():
    assert writers(T.raw(c.Channel.GIS)) == {svc("gis_sync")}


def test_channel_adapters_write_their_own_raw_topic_only():
    acls = strimzi_acls()
    adapters = {p: a for p, a in acls.items() if p.startswith(svc("adapter-"))}
    assert adapters, "the catalog lists channel adapters on the raw topics"
    for p, a in adapters.items():
        assert len(a) == 1, p
        ((kind, topic, op),) = a
        assert kind == "topic" and op == "Write" and topic.startswith(f"{c.PREFIX}.intake.raw.") and topic != T.raw(c.Channel.GIS)
        assert p == svc("adapter-" + topic.rsplit(".", 1)[1])


def test_every_service_reads_its_own_consumer_group_and_no_other():
    acls = strimzi_acls()
    for s in SERVICES:
        groups = {name for kind, name, op in acls[svc(s)] if kind == "group"}
        assert groups == {RuntimeSettings(service_name=s).group_id}, s
    for p, a in acls.items():
        if p not in {svc(s) for s in SERVICES}:
            assert all(kind == "topic" and op == "Write" for kind, _, op in a), p  # outsiders only write


def test_reads_and_writes_follow_the_catalog():
    """Every service reads exactly the topics the catalog says it consumes and writes exactly those it produces."""
    acls = strimzi_acls()
    for s in SERVICES:
        reads = {name for kind, name, op in acls[svc(s)] if kind == "topic" and op == "Read"}
        writes = {name for kind, name, op in acls[svc(s)] if kind == "topic" and op == "Write"}
        assert reads == {spec.name for spec in c.CATALOG if s in spec.consumers}, s
        assert writes == {spec.name for spec in c.CATALOG if s in spec.producers}, s


def test_every_catalog_topic_is_a_kafka_topic():
    docs = [d for d in yaml.safe_load_all(gen_acls.STRIMZI_FILE.read_text()) if d["kind"] == "KafkaTopic"]
    assert {d["spec"]["topicName"]: d["spec"]["partitions"] for d in docs} == {s.name: s.partitions for s in c.CATALOG}
    script = gen_acls.SCRIPT_FILE.read_text()
    for spec in c.CATALOG:
        assert f"--create --if-not-exists --topic {spec.name} --partitions {spec.partitions} " in script


def test_another_prefix(tmp_path):
    assert gen_acls.main(["--topic-prefix", "r59", "--group-prefix", "g59", "--out", str(tmp_path)]) == 0
    text = (tmp_path / gen_acls.STRIMZI_FILE.name).read_text()
    assert "name: r59.appeals.lifecycle" in text and "name: g59.router" in text and "name: r59-router" in text
    assert "zhkh." not in text.split("---", 1)[1]
