"""docker-compose.yml must stay valid (checked without a Docker engine by scripts/check-compose), run
Kafka, MongoDB and the five services the way docs/operations.md says, and the image must carry the
services' data files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check-compose"


def run(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK), *map(str, files)], capture_output=True, text=True, timeout=600)


def test_compose_file_is_valid():
    out = run(ROOT / "docker-compose.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    both = out.stdout + out.stderr
    assert "validator:" in both and "OK:" in both


def test_validator_rejects_a_broken_file(tmp_path: Path):
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "deploy" / "compose.env", tmp_path / "deploy" / "compose.env")
    text = (ROOT / "docker-compose.yml").read_text().replace("condition: service_healthy", "condition: when_it_feels_like_it", 1)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text)
    out = run(broken)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "INVALID" in out.stdout + out.stderr


# ---- what the compose file runs ------------------------------------------------------------------
# PyYAML is imported inside the tests (not at module level) so the validator tests above run even
# where it is missing.

# compose service -> (module for `python -m`, HTTP port)
APP_SERVICES = {
    "intake": ("intake", 8001),
    "router": ("router", 8002),
    "notifier": ("notifier", 8003),
    "gis_sync": ("gis_sync", 8004),
    "analytics": ("analytics", 8005),
}


def compose() -> dict:
    import yaml

    with (ROOT / "docker-compose.yml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)  # resolves the anchors and << merge keys


def compose_env() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "deploy" / "compose.env").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key == key.strip() and key.isupper(), f"compose.env: bad line {line!r}"
        out[key] = value
    return out


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(number) * units[unit]
    return total


def test_compose_runs_kafka_mongo_and_the_five_services():
    services = compose()["services"]
    assert set(APP_SERVICES) | {"kafka", "mongo"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["mongo"]["image"].startswith("mongo:")
    assert "--replSet" in services["mongo"]["command"]
    assert "rs.initiate" in " ".join(services["mongo"]["healthcheck"]["test"])
    for infra in ("kafka", "mongo"):
        assert services[infra]["volumes"], infra
        assert ":latest" not in services[infra]["image"]
    assert set(compose()["volumes"]) >= {"kafka-data", "mongo-data"}


def test_every_service_is_healthchecked_restarted_and_stopped_gracefully():
    from .test_k8s_manifests import settings_class

    services = compose()["services"]
    env = compose_env()
    graceful = float(env["ZHKH_GRACEFUL_TIMEOUT_S"])
    instance_ids = []
    for name, (module, port) in APP_SERVICES.items():
        svc = services[name]
        assert svc["command"] == ["python", "-m", module], name
        assert "deploy/compose.env" in svc["env_file"], name
        assert svc["restart"] == "unless-stopped", name
        assert seconds(svc["stop_grace_period"]) > graceful, name
        assert "/ready" in " ".join(svc["healthcheck"]["test"]), name
        assert svc["environment"]["ZHKH_HTTP_PORT"] == str(port), name
        assert f"{port}:{port}" in svc["ports"], name
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert svc["depends_on"]["mongo"]["condition"] == "service_healthy", name
        cls = settings_class(module)
        if cls.__module__ != "zhkh_runtime.settings":  # its own settings: its default port is this one
            assert cls.model_fields["http_port"].default == port, name
        instance_ids.append(svc["environment"]["ZHKH_GROUP_INSTANCE_ID"])
    assert len(set(instance_ids)) == len(instance_ids), instance_ids


def test_compose_settings_are_settings_fields(monkeypatch):
    from .test_k8s_manifests import env_names, settings_class, validate_settings

    services = compose()["services"]
    shared = compose_env()
    every = set().union(*(env_names(settings_class(m)) for m, _ in APP_SERVICES.values()))
    assert set(shared) <= every, sorted(set(shared) - every)
    assert "retryWrites=false" not in shared["ZHKH_MONGO_URI"]  # only for the embedded SecantusDB
    for name, (module, port) in APP_SERVICES.items():
        cls = settings_class(module)
        own = {k: str(v) for k, v in services[name]["environment"].items()}
        assert set(own) <= env_names(cls), (name, sorted(set(own) - env_names(cls)))
        # Variables of other services are ignored (extra="ignore"); this service's must validate.
        mine = {k: v for k, v in {**shared, **own}.items() if k in env_names(cls)}
        settings = validate_settings(cls, mine, monkeypatch)
        assert settings.http_port == port and settings.http_host == "0.0.0.0"


def test_gis_emulator_is_dev_only_and_gis_sync_points_at_it():
    services = compose()["services"]
    emu = services["gis-emulator"]
    assert emu["profiles"] == ["dev"]
    cmd = emu["command"]
    assert cmd[:3] == ["python", "-m", "devtools.gis_emulator"]
    port = cmd[cmd.index("--port") + 1]
    party_map = cmd[cmd.index("--party-map") + 1]
    assert (ROOT / party_map).is_file()
    assert f"{port}/emulator/health" in " ".join(emu["healthcheck"]["test"])
    env = compose_env()
    assert env["ZHKH_GIS_ENDPOINT"] == f"http://gis-emulator:{port}/ext-bus-appeals-service/services/AppealsAsync"
    # The image keeps the repo layout of the samples under its working directory /app.
    assert env["ZHKH_GIS_PARTY_MAP"] == f"/app/{party_map}"
    assert env["ZHKH_GIS_SIGNER"] == "none"
    # redirects of appeals with no performer yet need one: a performer of the same party map
    from gis_sync.mapping import PartyMap

    parties = PartyMap.load(ROOT / party_map).parties.values()
    assert env["ZHKH_GIS_DEFAULT_ANSWERER"] in {p.answerer_guid for p in parties if p.answerer_guid}
    dep = services["gis_sync"]["depends_on"]["gis-emulator"]
    assert dep["required"] is False  # gis_sync also starts without the dev profile
    for name, svc in services.items():
        if name not in APP_SERVICES and name not in ("kafka", "mongo"):
            assert svc.get("profiles") == ["dev"], f"{name}: extra services are for local/dev use only"


def test_non_editable_install_ships_the_data_files(tmp_path: Path):
    """What deploy/Dockerfile does: build the wheel (not editable), install it, and check with
    deploy/verify_image.py that the rules, the ГИС WSDL/XSD and the dashboard files came along."""
    import sys

    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for part in ("services", "devtools"):
        shutil.copytree(ROOT / part, src / part, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", src / "pyproject.toml")
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    out = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    wheel = next(wheels.glob("zhkh_appeals-*.whl"))
    out = subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    # Third-party packages from this venv; the project itself only from the installed wheel.
    out = subprocess.run([sys.executable, str(ROOT / "deploy" / "verify_image.py")], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stdout + out.stderr


def test_kafka_has_an_external_listener_for_host_clients_on_loopback_only():
    kafka = compose()["services"]["kafka"]
    env = kafka["environment"]
    listeners = dict(x.split("://", 1) for x in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(x.split("://", 1) for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(x.split(":", 1) for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert listeners["EXTERNAL"] == ":29092" and protocols["EXTERNAL"] == "PLAINTEXT"
    assert advertised["EXTERNAL"].endswith(":29092") and advertised["PLAINTEXT"] == "kafka:9092"
    assert kafka["ports"] == ["127.0.0.1:29092:29092"]  # no TLS/auth: never on every interface
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "PLAINTEXT"
