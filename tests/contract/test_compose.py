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


INFRA = ("kafka", "kafka-init", "mongo")


def test_compose_runs_kafka_mongo_and_the_five_services():
    services = compose()["services"]
    assert set(APP_SERVICES) | set(INFRA) <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["mongo"]["image"].startswith("mongo:")
    assert "--replSet" in " ".join(services["mongo"]["entrypoint"])
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
        assert svc["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully", name  # topics, users, ACLs
        assert svc["depends_on"]["mongo"]["condition"] == "service_healthy", name
        cls = settings_class(module)
        if cls.__module__ != "zhkh_runtime.settings":  # its own settings: its default port is this one
            assert cls.model_fields["http_port"].default == port, name
        instance_ids.append(svc["environment"]["ZHKH_GROUP_INSTANCE_ID"])
    assert len(set(instance_ids)) == len(instance_ids), instance_ids


def pending_auth(names: set[str], fields: set[str]) -> set[str]:
    """ZHKH_AUTH_* (issuer, audience, JWKS of the HTTP callers' tokens) are settings of the HTTP side of
    issue 13, written elsewhere: not checked as fields until a settings class has them."""
    return {n for n in names if n.startswith("ZHKH_AUTH_")} if "ZHKH_AUTH_ISSUER" not in fields else set()


def test_compose_settings_are_settings_fields(monkeypatch):
    from .test_k8s_manifests import env_names, settings_class, validate_settings

    services = compose()["services"]
    shared = compose_env()
    every = set().union(*(env_names(settings_class(m)) for m, _ in APP_SERVICES.values()))
    assert set(shared) - pending_auth(set(shared), every) <= every, sorted(set(shared) - every)
    for name, (module, port) in APP_SERVICES.items():
        cls = settings_class(module)
        own = {k: str(v) for k, v in services[name]["environment"].items()}
        assert set(own) <= env_names(cls), (name, sorted(set(own) - env_names(cls)))
        assert "retryWrites=false" not in own["ZHKH_MONGO_URI"]  # only for the embedded SecantusDB
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
        if name not in APP_SERVICES and name not in INFRA:
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


def kafka_listeners() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    env = compose()["services"]["kafka"]["environment"]
    listeners = dict(x.split("://", 1) for x in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(x.split("://", 1) for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(x.split(":", 1) for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    return listeners, advertised, protocols


def test_kafka_has_an_external_listener_for_host_clients_on_loopback_only():
    kafka = compose()["services"]["kafka"]
    env = kafka["environment"]
    listeners, advertised, protocols = kafka_listeners()
    assert listeners["EXTERNAL"] == ":29092" and protocols["EXTERNAL"] == "SASL_PLAINTEXT"
    assert env["KAFKA_LISTENER_NAME_EXTERNAL_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert advertised["EXTERNAL"].endswith(":29092") and advertised["CLIENT"] == "kafka:9092"
    assert kafka["ports"] == ["127.0.0.1:29092:29092"]  # no TLS: never on every interface
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"


def test_kafka_authenticates_every_listener_and_authorises_by_acls():
    env = compose()["services"]["kafka"]["environment"]
    listeners, advertised, protocols = kafka_listeners()
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, protocols  # no unauthenticated listener
    assert set(listeners) == set(protocols)
    for name in ("CLIENT", "EXTERNAL"):  # the clients' listeners: per-principal SCRAM users
        assert env[f"KAFKA_LISTENER_NAME_{name}_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    for name in ("CONTROLLER", "INTERNAL"):  # the broker's own: one static user, the super user
        assert env[f"KAFKA_LISTENER_NAME_{name}_SASL_ENABLED_MECHANISMS"] == "PLAIN"
        jaas = env[f"KAFKA_LISTENER_NAME_{name}_PLAIN_SASL_JAAS_CONFIG"]
        assert re.findall(r"user_(\w+)=", jaas) == ["admin"], jaas
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    shared = compose_env()
    assert shared["ZHKH_KAFKA_BOOTSTRAP"] == advertised["CLIENT"]
    assert shared["ZHKH_KAFKA_SECURITY_PROTOCOL"] == protocols["CLIENT"]
    assert shared["ZHKH_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert shared["ZHKH_CREATE_TOPICS"] == "false"  # kafka-init creates them; the services' users may not


def test_kafka_init_applies_the_generated_acls_with_a_password_for_every_principal():
    from devtools import gen_acls

    services = compose()["services"]
    init = services["kafka-init"]
    assert init["image"] == services["kafka"]["image"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    assert "/zhkh/init-acls.sh" in " ".join(init["command"])
    assert "./deploy/kafka:/zhkh:ro" in init["volumes"]
    assert (ROOT / "deploy" / "kafka" / "init-acls.sh") == gen_acls.SCRIPT_FILE
    env = init["environment"]
    assert env["KAFKA_BOOTSTRAP"] == "kafka:9094"  # the admin's listener (INTERNAL)
    principals = gen_acls.principals()
    wanted = {p.password_var for p in principals}
    assert wanted <= set(env), sorted(wanted - set(env))
    for p in principals:
        assert re.fullmatch(r"\$\{" + p.password_var + r":-dev-only-[a-z0-9-]+\}", env[p.password_var]), p.name
    # each service connects as its own principal, with the password kafka-init gave that principal
    by_name = {p.name: p for p in principals}
    for name in APP_SERVICES:
        own = services[name]["environment"]
        user = own["ZHKH_KAFKA_SASL_USERNAME"]
        assert user == gen_acls.principal_name(name) and by_name[user].kind == "service", name
        assert own["ZHKH_KAFKA_SASL_PASSWORD"] == env[by_name[user].password_var], name


def test_mongo_runs_with_auth_and_the_services_use_their_own_user():
    services = compose()["services"]
    mongo = services["mongo"]
    env = mongo["environment"]
    assert env["MONGO_INITDB_ROOT_USERNAME"] and env["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_ROOT_PASSWORD:-")
    entry = " ".join(mongo["entrypoint"])
    assert "--keyFile" in entry and "--replSet rs0" in entry and "exec docker-entrypoint.sh mongod" in entry
    init = [v for v in mongo["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    assert init and (ROOT / init[0].split(":")[0]).is_file()
    assert '-u root -p "$$MONGO_INITDB_ROOT_PASSWORD"' in " ".join(mongo["healthcheck"]["test"])
    for name in [*APP_SERVICES, "dev-directory"]:
        uri = services[name]["environment"]["ZHKH_MONGO_URI"]
        assert uri.startswith(f"mongodb://{env['MONGO_APP_USERNAME']}:${{MONGO_APP_PASSWORD:-"), name
        assert f"authSource={env['MONGO_APP_DB']}" in uri and "replicaSet=rs0" in uri, name
    assert compose_env()["ZHKH_MONGO_DB"] == env["MONGO_APP_DB"]


def test_no_password_in_the_env_file_and_every_default_is_marked_dev_only():
    assert not [k for k in compose_env() if "PASSWORD" in k or k == "ZHKH_MONGO_URI"]
    text = (ROOT / "docker-compose.yml").read_text()
    defaults = re.findall(r"\$\{(\w*PASSWORD\w*):-([^}]*)\}", text)
    assert defaults and all(d.startswith("dev-only-") for _, d in defaults), defaults


def test_keycloak_is_dev_only_pinned_and_imports_the_zhkh_realm():
    import json

    services = compose()["services"]
    kc = services["keycloak"]
    assert kc["profiles"] == ["dev"]
    image, tag = kc["image"].rsplit(":", 1)
    assert image == "quay.io/keycloak/keycloak" and re.fullmatch(r"\d+\.\d+\.\d+", tag)
    assert kc["command"] == ["start-dev", "--import-realm"]
    assert "./deploy/keycloak:/opt/keycloak/data/import:ro" in kc["volumes"]
    assert kc["ports"] == ["127.0.0.1:8080:8080"]
    issuer = kc["environment"]["KC_HOSTNAME"] + "/realms/zhkh"
    env = compose_env()
    assert env["ZHKH_AUTH_ISSUER"] == issuer
    assert env["ZHKH_AUTH_JWKS_URL"] == issuer + "/protocol/openid-connect/certs"
    assert env["ZHKH_AUTH_AUDIENCE"] == "zhkh-appeals"

    realm = json.loads((ROOT / "deploy" / "keycloak" / "zhkh-realm.json").read_text())
    assert realm["realm"] == "zhkh"
    assert {r["name"] for r in realm["roles"]["realm"]} >= {"citizen", "party", "operator", "inspector", "analyst", "admin"}
    clients = {c["clientId"]: c for c in realm["clients"]}
    groups = {g["path"]: g for g in realm["groups"]}
    users = {u["username"]: u for u in realm["users"]}
    for client in clients.values():
        mappers = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
        assert mappers["oidc-usermodel-realm-role-mapper"]["claim.name"] == "roles"
        assert mappers["oidc-usermodel-attribute-mapper"]["claim.name"] == "party_ids"
        assert mappers["oidc-audience-mapper"]["included.custom.audience"] == env["ZHKH_AUTH_AUDIENCE"]

    def account(client_id: str) -> dict:
        c = clients[client_id]
        assert c["serviceAccountsEnabled"] and not c["publicClient"] and c["secret"].startswith("dev-only-")
        return next(u for u in users.values() if u.get("serviceAccountClientId") == client_id)

    uk = account("uk-zarechye-system")
    assert uk["realmRoles"] == ["party"]
    assert [p for g in uk["groups"] for p in groups[g]["attributes"]["party_ids"]] == ["uk-zarechye"]
    assert account("callcentre")["realmRoles"] == ["operator"]
    for name, role in [("operator1", "operator"), ("inspector1", "inspector"), ("analyst1", "analyst"), ("party1", "party")]:
        assert users[name]["realmRoles"] == [role]
        assert all(c["value"].startswith("dev-only-") for c in users[name]["credentials"])
