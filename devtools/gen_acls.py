"""Generate the Kafka principals, ACLs and topics from the topic catalog, for Strimzi and for compose.

    python -m devtools.gen_acls          # write the files
    python -m devtools.gen_acls --check  # exit 1 if the committed files differ
    python -m devtools.gen_acls --topic-prefix region59 --group-prefix region59 --out DIR   # another deployment

Nothing here is kept by hand: who writes and who reads each topic comes from
``zhkh_contracts.Topics(prefix).catalog()`` at run time (its producers and consumers are generated
from the services' code by devtools/gen_contracts.py, plus ``EXTERNAL_PRODUCERS``), the consumer
group from ``RuntimeSettings.group_id``. Per principal (SCRAM-SHA-512 user):

* each service ``<prefix>-<service>``: WRITE on every topic it produces (its events, its dead letters,
  intake's rejections), READ on every topic it consumes and on its consumer group;
* each channel adapter ``<prefix>-adapter-<channel>``: WRITE on its own channel's raw topic only
  (one principal per channel the catalog lists "channel adapters" for; ``gis`` is gis_sync's);
* every other external producer of the catalog (e.g. ``<prefix>-operators``): WRITE on the topics
  the catalog lists it for;
* nobody else gets anything: the brokers run with allow.everyone.if.no.acl.found=false, and topic
  creation, SCRAM users and ACLs are the admin's (a super user; compose: ``admin``).

Outputs (for the default prefixes):

* ``deploy/k8s/operators/strimzi-acls.yaml``: a Strimzi ``KafkaTopic`` per catalog topic and a
  ``KafkaUser`` per principal (``authentication: scram-sha-512``, ``authorization: simple``);
* ``deploy/kafka/init-acls.sh``: what compose's ``kafka-init`` runs with the admin's credentials:
  create the topics, the SCRAM users (passwords from ``KAFKA_PASSWORD_<NAME>``) and the ACLs.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import zhkh_contracts as c
from zhkh_contracts.topics import SERVICES

ROOT = Path(__file__).resolve().parent.parent
STRIMZI_FILE = ROOT / "deploy" / "k8s" / "operators" / "strimzi-acls.yaml"
SCRIPT_FILE = ROOT / "deploy" / "kafka" / "init-acls.sh"
STRIMZI_CLUSTER = "zhkh-kafka"
STRIMZI_NAMESPACE = "kafka"
STRIMZI_REPLICAS = 3
ADAPTERS = "channel adapters"


@dataclass(frozen=True, order=True)
class Acl:
    resource: str  # "topic" | "group"
    name: str
    operation: str  # "Write" | "Read"


@dataclass
class Principal:
    name: str
    kind: str  # "service" | "external"
    about: str
    acls: set[Acl] = field(default_factory=set)

    def writes(self) -> set[str]:
        return {a.name for a in self.acls if a.resource == "topic" and a.operation == "Write"}

    def reads(self) -> set[str]:
        return {a.name for a in self.acls if a.resource == "topic" and a.operation == "Read"}

    @property
    def password_var(self) -> str:
        """The environment variable the init script reads this principal's password from."""
        return "KAFKA_PASSWORD_" + re.sub(r"[^A-Z0-9]+", "_", self.slug.upper())

    @property
    def slug(self) -> str:
        return self.name.split("-", 1)[1]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def principal_name(who: str, topic_prefix: str = c.PREFIX) -> str:
    """Kafka user (and Strimzi KafkaUser name: lower case, digits and '-') of a service or an external producer."""
    return f"{_slug(topic_prefix)}-{_slug(who)}"


def principals(topic_prefix: str = c.PREFIX, group_prefix: str = c.PREFIX) -> list[Principal]:
    from zhkh_runtime.settings import RuntimeSettings

    topics = c.Topics(topic_prefix)
    raw_channel = {topics.raw(ch): ch for ch in c.Channel}
    out: dict[str, Principal] = {}

    def get(name: str, kind: str, about: str) -> Principal:
        return out.setdefault(name, Principal(name, kind, about))

    for svc in SERVICES:
        p = get(principal_name(svc, topic_prefix), "service", f"the {svc} service")
        group = RuntimeSettings(service_name=svc, group_prefix=group_prefix).group_id
        p.acls.add(Acl("group", group, "Read"))
    for spec in topics.catalog():
        for who in spec.producers:
            if who in SERVICES:
                get(principal_name(who, topic_prefix), "service", "").acls.add(Acl("topic", spec.name, "Write"))
            elif who == ADAPTERS:
                ch = raw_channel[spec.name]  # the catalog lists channel adapters on raw topics only
                get(principal_name(f"adapter-{ch.value}", topic_prefix), "external",
                    f"channel adapter of the '{ch.value}' channel").acls.add(Acl("topic", spec.name, "Write"))
            else:
                get(principal_name(who, topic_prefix), "external", who).acls.add(Acl("topic", spec.name, "Write"))
        for who in spec.consumers:
            get(principal_name(who, topic_prefix), "service", "").acls.add(Acl("topic", spec.name, "Read"))
    return sorted(out.values(), key=lambda p: (p.kind != "service", p.name))


# ---- Strimzi ---------------------------------------------------------------------------------------


def _k8s_name(topic: str) -> str:
    return _slug(topic.replace(".", "-"))


def strimzi_documents(topic_prefix: str = c.PREFIX, group_prefix: str = c.PREFIX) -> list[dict]:
    docs: list[dict] = []
    labels = {"strimzi.io/cluster": STRIMZI_CLUSTER}
    for spec in c.Topics(topic_prefix).catalog():
        config: dict[str, object] = {**spec.config, "min.insync.replicas": 2}
        if spec.retention_ms is not None:
            config["retention.ms"] = spec.retention_ms
        docs.append({
            "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
            "metadata": {"name": _k8s_name(spec.name), "namespace": STRIMZI_NAMESPACE, "labels": labels},
            "spec": {"topicName": spec.name, "partitions": spec.partitions, "replicas": STRIMZI_REPLICAS,
                     "config": dict(sorted(config.items()))},
        })
    for p in principals(topic_prefix, group_prefix):
        acls = [{"resource": {"type": a.resource, "name": a.name, "patternType": "literal"},
                 "operations": [a.operation], "host": "*"} for a in sorted(p.acls)]
        docs.append({
            "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaUser",
            "metadata": {"name": p.name, "namespace": STRIMZI_NAMESPACE, "labels": labels,
                         "annotations": {"zhkh-appeals/principal": p.about}},
            "spec": {"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": acls}},
        })
    return docs


def strimzi_yaml(topic_prefix: str = c.PREFIX, group_prefix: str = c.PREFIX) -> str:
    head = (
        "# Generated by devtools/gen_acls.py from the topic catalog: do not edit, run python -m devtools.gen_acls.\n"
        "# EXAMPLE for the Strimzi operator, not part of kustomization.yaml (like strimzi-kafka.yaml): every topic\n"
        "# of the catalog as a KafkaTopic (then set ZHKH_CREATE_TOPICS=false) and one KafkaUser per principal\n"
        "# (SCRAM-SHA-512, simple authorization: each writes only what it produces, reads only what it consumes).\n"
        "# The User Operator writes each user's password into a Secret of the same name (key: password) in the\n"
        f"# namespace {STRIMZI_NAMESPACE}; give it to the service as ZHKH_KAFKA_SASL_PASSWORD (docs/operations.md,\n"
        "# \"Transport security\").\n"
    )
    return head + "---\n".join(yaml.safe_dump(d, sort_keys=False, allow_unicode=True) for d in strimzi_documents(topic_prefix, group_prefix))


# ---- compose (kafka-acls.sh and friends) ----------------------------------------------------------


def init_script(topic_prefix: str = c.PREFIX, group_prefix: str = c.PREFIX) -> str:
    ps = principals(topic_prefix, group_prefix)
    q = shlex.quote
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by devtools/gen_acls.py from the topic catalog: do not edit, run python -m devtools.gen_acls.",
        "# Run by compose's kafka-init (apache/kafka image) as the super user: creates the catalog's topics, one",
        "# SCRAM-SHA-512 user per principal and its ACLs. Idempotent (topics --if-not-exists, SCRAM credentials",
        "# replaced, an existing ACL is kept); an ACL the catalog no longer gives is NOT removed (kafka-acls.sh",
        "# --remove by hand). Environment:",
        "#   KAFKA_BOOTSTRAP          the admin listener, e.g. kafka:9094",
        "#   KAFKA_ADMIN_CONFIG       client properties of the super user (SASL settings), e.g. /tmp/admin.properties",
        "#   KAFKA_REPLICATION        replication factor of new topics (default 1)",
        "#   KAFKA_PASSWORD_<NAME>    each principal's password (below)",
        "set -euo pipefail",
        'BIN="${KAFKA_BIN:-/opt/kafka/bin}"',
        'ARGS=(--bootstrap-server "${KAFKA_BOOTSTRAP:?}" --command-config "${KAFKA_ADMIN_CONFIG:?}")',
        'REPLICATION="${KAFKA_REPLICATION:-1}"',
        "# every password first: fail before changing anything",
        *(f': "${{{p.password_var}:?}}"' for p in ps),
        "",
        "# ---- topics ----",
    ]
    for spec in c.Topics(topic_prefix).catalog():
        cfg = dict(spec.config)
        if spec.retention_ms is not None:
            cfg["retention.ms"] = str(spec.retention_ms)
        conf = "".join(f" --config {q(f'{k}={v}')}" for k, v in sorted(cfg.items()))
        lines.append(f'"$BIN/kafka-topics.sh" "${{ARGS[@]}}" --create --if-not-exists --topic {q(spec.name)} '
                     f'--partitions {spec.partitions} --replication-factor "$REPLICATION"{conf}')
    lines += ["", "# ---- SCRAM users ----"]
    for p in ps:
        lines.append(f'"$BIN/kafka-configs.sh" "${{ARGS[@]}}" --alter --entity-type users --entity-name {q(p.name)} '
                     f'--add-config "SCRAM-SHA-512=[password=${{{p.password_var}:?}}]"')
    lines += ["", "# ---- ACLs ----"]
    for p in ps:
        lines.append(f"# {p.name}: {p.about}")
        for a in sorted(p.acls):
            res = "--topic" if a.resource == "topic" else "--group"
            lines.append(f'"$BIN/kafka-acls.sh" "${{ARGS[@]}}" --add --allow-principal {q("User:" + p.name)} '
                         f"--operation {a.operation} {res} {q(a.name)}")
    lines += ["", 'echo "kafka-init: topics, users and ACLs applied"', ""]
    return "\n".join(lines)


def render() -> dict[Path, str]:
    return {STRIMZI_FILE: strimzi_yaml(), SCRIPT_FILE: init_script()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    ap.add_argument("--topic-prefix", default=c.PREFIX, help="ZHKH_TOPIC_PREFIX of the deployment")
    ap.add_argument("--group-prefix", default=c.PREFIX, help="ZHKH_GROUP_PREFIX of the deployment")
    ap.add_argument("--out", type=Path, help="write both files into this folder instead (another prefix)")
    args = ap.parse_args(argv)
    if args.out is not None or (args.topic_prefix, args.group_prefix) != (c.PREFIX, c.PREFIX):
        if args.check or args.out is None:
            ap.error("another prefix needs --out DIR (the committed files are for the default prefixes)")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / STRIMZI_FILE.name).write_text(strimzi_yaml(args.topic_prefix, args.group_prefix))
        (args.out / SCRIPT_FILE.name).write_text(init_script(args.topic_prefix, args.group_prefix))
        (args.out / SCRIPT_FILE.name).chmod(0o755)
        print(f"wrote {STRIMZI_FILE.name} and {SCRIPT_FILE.name} under {args.out}")
        return 0
    wanted = render()
    if args.check:
        stale = [str(p.relative_to(ROOT)) for p, t in wanted.items() if not p.exists() or p.read_text() != t]
        if stale:
            print(f"generated ACLs are stale: {stale}; run: python -m devtools.gen_acls", file=sys.stderr)
            return 1
        print(f"generated ACLs are current ({len(wanted)} files)")
        return 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    SCRIPT_FILE.chmod(0o755)
    print("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in wanted))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
