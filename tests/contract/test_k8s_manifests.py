"""deploy/k8s/ checked without a cluster: every manifest parses, the kustomization lists every file,
every service has a Deployment (probes, resources, non-root, pinned image, static membership from
the pod name, graceful period), a Service and a PodDisruptionBudget, and every ZHKH_* variable the
manifests set is a field of that service's settings class (ZHKH_<FIELD NAME UPPER>) with a valid value.
"""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from zhkh_runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"

# Kubernetes name -> Python module (`python -m <module>`) and HTTP port.
SERVICES: dict[str, tuple[str, int]] = {
    "intake": ("intake", 8001),
    "router": ("router", 8002),
    "notifier": ("notifier", 8003),
    "gis-sync": ("gis_sync", 8004),
    "analytics": ("analytics", 8005),
}
# Services whose background loops run under a MongoDB lease (one holder at a time).
LEASED_LOOPS = {"notifier", "gis-sync"}


# ---- settings classes ------------------------------------------------------------------------------

def settings_class(module: str) -> type[RuntimeSettings]:
    """The service's settings class (the RuntimeSettings subclass defined in <module>.settings); the
    shared RuntimeSettings for a service without a settings module of its own."""
    try:
        mod = importlib.import_module(f"{module}.settings")
    except ModuleNotFoundError as exc:
        if exc.name not in (module, f"{module}.settings"):
            raise
        return RuntimeSettings
    found = [
        v for v in vars(mod).values()
        if isinstance(v, type) and issubclass(v, RuntimeSettings) and v.__module__ == mod.__name__
    ]
    assert len(found) == 1, f"{module}.settings defines {len(found)} RuntimeSettings subclasses"
    return found[0]


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Environment variables a settings class reads: ZHKH_<field name upper>."""
    assert cls.model_config.get("env_prefix") == "ZHKH_", cls
    return {f"ZHKH_{name.upper()}" for name in cls.model_fields}


def validate_settings(cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """Builds the settings from exactly this environment (types and bounds checked by pydantic)."""
    import os

    with monkeypatch.context() as m:
        for key in [k for k in os.environ if k.upper().startswith("ZHKH_")]:
            m.delenv(key)
        for key, value in env.items():
            m.setenv(key, value)
        return cls()


# ---- manifests ---------------------------------------------------------------------------------------

@functools.cache
def load_docs(path: Path) -> list[dict[str, Any]]:
    """The documents of one file (parsed once per session; the tests only read them)."""
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def all_yaml_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def kustomization() -> dict[str, Any]:
    return load_docs(K8S / "kustomization.yaml")[0]


def applied_docs() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/k8s` creates."""
    return [d for f in kustomization()["resources"] for d in load_docs(K8S / f)]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in applied_docs() if d["kind"] == kind}


def container(dep: dict[str, Any]) -> dict[str, Any]:
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, dep["metadata"]["name"]
    return containers[0]


def container_env(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container(dep).get("env", [])}


def pod_environment(dep: dict[str, Any]) -> dict[str, str]:
    """The variables the pod gets, as strings: envFrom ConfigMaps, then env (fieldRef and secretKeyRef
    replaced by representative values)."""
    configmaps = objects("ConfigMap")
    out: dict[str, str] = {}
    for src in container(dep).get("envFrom", []):
        assert "configMapRef" in src, f"{dep['metadata']['name']}: envFrom only from ConfigMaps here"
        out.update(configmaps[src["configMapRef"]["name"]]["data"])
    for name, e in container_env(dep).items():
        if "value" in e:
            out[name] = e["value"]
        elif "fieldRef" in e.get("valueFrom", {}):
            out[name] = "pod-name-7d9f8c6b5-x2x4q"
        elif "secretKeyRef" in e.get("valueFrom", {}):
            out[name] = "mongodb://user:secret@mongo-0.example:27017/?replicaSet=rs0&w=majority"
        else:
            raise AssertionError(f"{dep['metadata']['name']}: {name}: unsupported env source")
    return out


# ---- files -------------------------------------------------------------------------------------------

def test_every_manifest_parses_and_names_its_object():
    files = all_yaml_files()
    assert files
    for path in files:
        docs = load_docs(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict), path
            assert doc.get("apiVersion") and doc.get("kind"), path
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), path


def test_kustomization_lists_every_file():
    k = kustomization()
    listed = list(k["resources"])
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    top = {p.name for p in K8S.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")}
    examples = {n for n in top if n.endswith(".example.yaml")}
    assert set(listed) == top - examples - {"kustomization.yaml"}
    assert not examples & set(listed), "example files must not be applied"
    assert k["namespace"] == "zhkh-appeals"
    assert any(d["kind"] == "Namespace" and d["metadata"]["name"] == k["namespace"] for d in applied_docs())


def test_kustomization_pins_the_image_tag():
    for img in kustomization().get("images", []):
        tag = img.get("newTag") or ""
        assert img.get("digest") or (tag and tag != "latest"), img


def test_operator_examples_use_the_names_the_config_points_at():
    config = objects("ConfigMap")["zhkh-config"]["data"]
    kafka = {d["kind"]: d for d in load_docs(K8S / "operators" / "strimzi-kafka.yaml")}
    cluster = kafka["Kafka"]["metadata"]
    assert config["ZHKH_KAFKA_BOOTSTRAP"].startswith(f"{cluster['name']}-kafka-bootstrap.{cluster['namespace']}.svc:")
    kafka_config = kafka["Kafka"]["spec"]["kafka"]["config"]
    assert kafka_config["min.insync.replicas"] == 2 and kafka_config["default.replication.factor"] == 3
    assert kafka_config["unclean.leader.election.enable"] is False
    assert config["ZHKH_TOPIC_REPLICATION"] == "3"
    mongo = load_docs(K8S / "operators" / "mongodb-community.yaml")[0]
    assert mongo["spec"]["members"] == 3
    uri = load_docs(K8S / "secret.example.yaml")[0]["stringData"]["ZHKH_MONGO_URI"]
    assert f"replicaSet={mongo['metadata']['name']}" in uri
    assert f"{mongo['metadata']['name']}-svc.{mongo['metadata']['namespace']}.svc" in uri
    assert "retryWrites=false" not in uri  # only for the embedded SecantusDB


# ---- per service ---------------------------------------------------------------------------------------

def test_every_service_has_a_deployment_a_service_and_a_pdb():
    assert set(objects("Deployment")) == set(SERVICES)
    assert set(SERVICES) <= set(objects("Service"))
    assert set(SERVICES) <= set(objects("PodDisruptionBudget"))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_deployment_runs_the_service_on_its_port(name: str):
    module, port = SERVICES[name]
    dep = objects("Deployment")[name]
    c = container(dep)
    assert c["command"] == ["python", "-m", module]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": port}
    assert container_env(dep)["ZHKH_HTTP_PORT"]["value"] == str(port)
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_probes_liveness_health_readiness_ready(name: str):
    _, port = SERVICES[name]
    c = container(objects("Deployment")[name])
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, (name, probe)
        assert named.get(get["port"], get["port"]) == port, (name, probe)
    if "startupProbe" in c:
        assert c["startupProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_resources_requests_and_limits(name: str):
    res = container(objects("Deployment")[name])["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(res[part]), (name, part)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_runs_as_non_root_with_a_read_only_root(name: str):
    pod = objects("Deployment")[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"].get("runAsUser", 1) != 0
    sc = container(objects("Deployment")[name])["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned(name: str):
    image = container(objects("Deployment")[name])["image"]
    if "@sha256:" in image:
        return
    repo, _, tag = image.rpartition(":")
    assert repo and "/" not in tag and tag and tag != "latest", image


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_group_instance_id_is_the_pod_name(name: str):
    e = container_env(objects("Deployment")[name])["ZHKH_GROUP_INSTANCE_ID"]
    assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_termination_grace_outlasts_the_graceful_timeout(name: str, monkeypatch: pytest.MonkeyPatch):
    dep = objects("Deployment")[name]
    module, _ = SERVICES[name]
    settings = validate_settings(settings_class(module), pod_environment(dep), monkeypatch)
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.graceful_timeout_s + 5, (grace, settings.graceful_timeout_s)
    assert grace > 15


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_zhkh_variable_is_a_settings_field(name: str, monkeypatch: pytest.MonkeyPatch):
    module, port = SERVICES[name]
    cls = settings_class(module)
    env = pod_environment(objects("Deployment")[name])
    assert all(k.startswith("ZHKH_") for k in env), sorted(k for k in env if not k.startswith("ZHKH_"))
    unknown = set(env) - env_names(cls)
    assert not unknown, f"{name}: {sorted(unknown)} are not fields of {cls.__module__}.{cls.__name__}"
    settings = validate_settings(cls, env, monkeypatch)
    assert settings.http_port == port
    assert settings.http_host == "0.0.0.0"
    assert settings.group_instance_id


def test_shared_config_holds_runtime_settings_only():
    data = objects("ConfigMap")["zhkh-config"]["data"]
    assert set(data) <= env_names(RuntimeSettings), sorted(set(data) - env_names(RuntimeSettings))
    assert "ZHKH_MONGO_URI" not in data, "the URI (with credentials) belongs in the Secret"
    assert int(data["ZHKH_TOPIC_REPLICATION"]) >= 3


def test_mongo_uri_comes_from_the_example_secret():
    secret = load_docs(K8S / "secret.example.yaml")[0]
    assert secret["kind"] == "Secret"
    for name in SERVICES:
        ref = container_env(objects("Deployment")[name])["ZHKH_MONGO_URI"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_and_pdb_select_the_pods(name: str):
    dep = objects("Deployment")[name]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    _, port = SERVICES[name]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    svc = objects("Service")[name]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(port, "http")]
    pdb = objects("PodDisruptionBudget")[name]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) < dep["spec"]["replicas"]


@pytest.mark.parametrize("name", sorted(LEASED_LOOPS))
def test_services_with_leased_loops_run_two_replicas_and_roll(name: str):
    """Their loops are leased (tests/integration/test_engine_batches.py shows one holder at a time),
    so they scale and roll like the others."""
    spec = objects("Deployment")[name]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate" and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_gis_sync_party_map_is_mounted_and_valid(tmp_path: Path):
    from gis_sync.mapping import PartyMap

    dep = objects("Deployment")["gis-sync"]
    env = pod_environment(dep)
    path = Path(env["ZHKH_GIS_PARTY_MAP"])
    pod = dep["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in container(dep)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in mounts.values() if path.parent == Path(m["mountPath"]))
    cm = objects("ConfigMap")[volumes[mount["name"]]["configMap"]["name"]]
    csv_text = cm["data"][path.name]
    (tmp_path / path.name).write_text(csv_text, encoding="utf-8")
    parties = PartyMap.load(tmp_path / path.name).parties
    assert parties
    assert env["ZHKH_GIS_DEFAULT_ANSWERER"] in {p.answerer_guid for p in parties.values() if p.answerer_guid}
    assert env["ZHKH_GIS_ENDPOINT"].endswith("/ext-bus-appeals-service/services/AppealsAsync")
    assert re.fullmatch(r"[0-9a-f-]{36}", env["ZHKH_GIS_ORG_PPA_GUID"])


def test_the_plain_kafka_listener_is_fenced_to_the_services_namespace():
    """The example promises a NetworkPolicy: Strimzi writes it from the listener's networkPolicyPeers."""
    kafka = {d["kind"]: d for d in load_docs(K8S / "operators" / "strimzi-kafka.yaml")}
    (plain,) = [x for x in kafka["Kafka"]["spec"]["kafka"]["listeners"] if x["name"] == "plain"]
    namespace = load_docs(K8S / "namespace.yaml")[0]["metadata"]["name"]
    assert plain["tls"] is False and plain["type"] == "internal"
    assert plain["networkPolicyPeers"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    ]
