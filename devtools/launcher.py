"""Dev launcher: the whole system on this machine, with the embedded broker and database.

    python -m devtools.launcher            # start everything, run the demo, keep running (Ctrl-C stops)
    python -m devtools.launcher --once     # ... and stop after the demo
    python -m devtools.launcher --reset    # wipe the data dirs first

Broker, database, the ГИС ЖКХ emulator (devtools.gis_emulator, seeded with a few appeals) and
the five services run as child processes; logs go to <data-dir>/logs/.
Data dirs persist between runs unless --reset. Set ZHKH_KAFKA_BOOTSTRAP / ZHKH_MONGO_URI and
pass --external to use servers you already run instead of the embedded ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from zoneinfo import ZoneInfo

from zhkh_contracts import (
    AppealAssigned,
    AppealRegistered,
    Channel,
    DeadlinePlanned,
    GisActionMirrored,
    Topics,
)
from zhkh_runtime.kafka import client_kwargs, ensure_topics
from zhkh_runtime.mongo import redact_uri
from zhkh_runtime.settings import RuntimeSettings

from . import embedded, samples
from .dev_issuer import DevIssuer
from .follow import lifecycle, publish_and_follow
from .letters_demo import letter_demo
from .report_demo import scorecard_demo
from .cards_demo import control_card_demo
from .outage_demo import outage_demo

SERVICES = {"intake": 8001, "router": 8002, "notifier": 8003, "gis_sync": 8004, "analytics": 8005}
ROOT = Path(__file__).resolve().parent.parent
GIS_PARTIES = ROOT / "devtools" / "sample_gis" / "gis_parties.csv"
DEMO_DISPATCHER = "city-zhkh"

GIS_PATH = "/ext-bus-appeals-service/services/AppealsAsync"


@dataclass
class Config:
    data_dir: Path
    kafka_port: int = 19092
    mongo_port: int = 27117
    external: bool = False
    http_base_port: int = 8000
    group_prefix: str = "zhkh"
    topic_prefix: str = "zhkh"
    directory: Path | None = ROOT / "devtools" / "sample_directory"
    gis_port: int = 18080
    gis_seed: int = 3
    gis_endpoint: str | None = None  # None: start the emulator on gis_port
    issuer_port: int = 18443
    issuer: str | None = None  # None: start the dev issuer (devtools.dev_issuer) on issuer_port

    @property
    def issuer_url(self) -> str:
        return self.issuer or f"http://127.0.0.1:{self.issuer_port}"

    @property
    def issuer_key(self) -> Path:
        return self.data_dir / "dev-issuer" / "signing-key.json"

    @property
    def gis_url(self) -> str:
        return self.gis_endpoint or f"http://127.0.0.1:{self.gis_port}{GIS_PATH}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def bootstrap(self) -> str:
        return os.environ.get("ZHKH_KAFKA_BOOTSTRAP", f"127.0.0.1:{self.kafka_port}") if self.external else f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        return os.environ.get("ZHKH_MONGO_URI", embedded.mongo_uri(self.mongo_port)) if self.external else embedded.mongo_uri(self.mongo_port)

    def kafka_client(self) -> dict[str, Any]:
        """Arguments of the launcher's own Kafka clients: with --external, the ZHKH_KAFKA_* security
        settings of the environment (zhkh_runtime.kafka.client_kwargs); the embedded broker: plaintext."""
        if not self.external:
            return {"bootstrap_servers": self.bootstrap}
        return client_kwargs(RuntimeSettings(kafka_bootstrap=self.bootstrap))

    def port(self, service: str) -> int:
        return self.http_base_port + list(SERVICES).index(service) + 1


class System:
    """Owns every child process; ``stop()`` stops services first, then broker and database."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.logs = cfg.data_dir / "logs"
        self.kafka = embedded.kafka_server(cfg.data_dir / "kafka", cfg.kafka_port, self.logs)
        self.mongo = embedded.mongo_server(cfg.data_dir / "mongo", cfg.mongo_port, self.logs)
        self.services: dict[str, embedded.ServerProcess] = {}
        self.gis: embedded.ServerProcess | None = None
        self.issuer: embedded.ServerProcess | None = None
        if cfg.issuer is None:
            self.issuer = embedded.ServerProcess(
                name="dev_issuer", port=cfg.issuer_port, log_path=self.logs / "dev_issuer.log",
                argv=[sys.executable, "-m", "devtools.dev_issuer", "--host", "127.0.0.1", "--port", str(cfg.issuer_port),
                      "--key-file", str(cfg.issuer_key)],
            )
        if cfg.gis_endpoint is None:
            self.gis = embedded.ServerProcess(
                name="gis_emulator", port=cfg.gis_port, log_path=self.logs / "gis_emulator.log",
                argv=[sys.executable, "-m", "devtools.gis_emulator", "--host", "127.0.0.1", "--port", str(cfg.gis_port),
                      "--party-map", str(GIS_PARTIES), "--seed", str(cfg.gis_seed)],
            )

    def service_env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ZHKH_KAFKA_BOOTSTRAP=self.cfg.bootstrap,
            ZHKH_MONGO_URI=self.cfg.mongo_uri,
            ZHKH_HTTP_PORT=str(self.cfg.port(name)),
            ZHKH_GROUP_PREFIX=self.cfg.group_prefix,
            ZHKH_TOPIC_PREFIX=self.cfg.topic_prefix,
            ZHKH_GROUP_INSTANCE_ID=f"{name}-1",
            PYTHONUNBUFFERED="1",
        )
        env.setdefault("ZHKH_AUTH_ISSUER", self.cfg.issuer_url)
        if not self.cfg.external:
            env["ZHKH_KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"  # the embedded broker has no TLS or SASL
        if name == "gis_sync":
            env.setdefault("ZHKH_GIS_ENDPOINT", self.cfg.gis_url)
            env.setdefault("ZHKH_GIS_PARTY_MAP", str(GIS_PARTIES))
            # redirects of appeals with no performer yet (routed straight to a resource supplier) are
            # made by the sample map's city dispatcher; without one they fail with no_answerer
            if "ZHKH_GIS_DEFAULT_ANSWERER" not in env:
                from gis_sync.mapping import PartyMap

                env["ZHKH_GIS_DEFAULT_ANSWERER"] = PartyMap.load(GIS_PARTIES).parties[DEMO_DISPATCHER].answerer_guid or ""
            env.setdefault("ZHKH_PULL_INTERVAL_S", "5")
            env.setdefault("ZHKH_RECONCILE_INTERVAL_S", "60")
        return env

    async def start(self) -> None:
        if not self.cfg.external:
            for srv in (self.kafka, self.mongo):
                (self.cfg.data_dir / ("kafka" if srv is self.kafka else "mongo")).mkdir(parents=True, exist_ok=True)
                srv.start()
            await asyncio.gather(
                embedded.wait_kafka(self.cfg.bootstrap, server=self.kafka),
                embedded.wait_mongo(self.cfg.mongo_uri, server=self.mongo),
            )
        await ensure_topics(self.cfg.bootstrap, self.cfg.topics.catalog(), client=self.cfg.kafka_client())
        if self.issuer is not None:
            DevIssuer.with_key_file(self.cfg.issuer_url, self.cfg.issuer_key)  # the key the launcher signs with too
            self.issuer.start()
            await embedded.wait_port(self.cfg.issuer_port, server=self.issuer)
        if self.gis is not None:
            self.gis.start()
            await embedded.wait_port(self.cfg.gis_port, server=self.gis)
        if self.cfg.directory is not None:
            await self.import_directory(self.cfg.directory)
        for name in SERVICES:
            self.start_service(name)
        await asyncio.gather(*(self.wait_ready(n) for n in SERVICES))

    async def import_directory(self, folder: Path) -> None:
        """The router's directory of responsible parties (python -m router.cli import-directory)."""
        from router.cli import import_directory
        from router.settings import RouterSettings

        files = sorted(folder.glob("*.csv")) + sorted(folder.glob("*.json"))
        settings = RouterSettings(mongo_uri=self.cfg.mongo_uri)
        if await import_directory(files, settings) != 0:
            raise RuntimeError(f"directory import from {folder} failed")

    def start_service(self, name: str) -> embedded.ServerProcess:
        srv = embedded.ServerProcess(
            name=name, argv=[sys.executable, "-m", name], port=self.cfg.port(name), log_path=self.logs / f"{name}.log"
        )
        env = self.service_env(name)
        srv.log_path.parent.mkdir(parents=True, exist_ok=True)
        with srv.log_path.open("ab") as log:
            srv.proc = subprocess.Popen(srv.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=ROOT, start_new_session=True)
        self.services[name] = srv
        return srv

    async def wait_ready(self, name: str, timeout: float = 90.0) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.cfg.port(name)}/ready"
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if not self.services[name].alive():
                raise RuntimeError(f"{name} exited; see {self.services[name].log_path}")
            try:
                body = await asyncio.to_thread(_get_json, url)
                if body.get("ready"):
                    return body
                last = body
            except Exception as exc:  # noqa: BLE001
                last = exc
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{name} not ready after {timeout}s: {last!r}")

    def stop(self) -> None:
        for srv in self.services.values():
            srv.stop()
        if self.gis is not None:
            self.gis.stop()
        if self.issuer is not None:
            self.issuer.stop()
        if not self.cfg.external:
            self.mongo.stop()
            self.kafka.stop()


def _get_json(url: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback only
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read() or b"{}")


async def demo(cfg: Config, timeout: float = 60.0) -> dict[str, str]:
    """Publish one sample appeal as a channel would, then follow it on the lifecycle topic."""
    raw = samples.raw_submission()
    seen: dict[str, str] = {}

    def sent(topic: str) -> None:
        print(f"-> published a sample appeal on {topic} (source id {raw.source_id})")

    async with contextlib.aclosing(publish_and_follow(cfg, raw, timeout, on_sent=sent)) as events:
        async for env in events:
            if isinstance(env.data, AppealRegistered):
                a = env.data.appeal
                seen.update(registered=a.registration_number, appeal_id=str(a.appeal_id), category=a.category.value,
                            access_code=env.data.access_code or "")
                print(f"<- registered as {a.registration_number} (appeal {a.appeal_id}, category {a.category.value}, house {a.house_key})")
            elif isinstance(env.data, AppealAssigned):
                d = env.data
                seen.update(assigned=d.party_id, party_kind=d.party_kind.value, reason=d.reason)
                print(f"<- assigned to {d.party_id} ({d.party_kind.value}, reason: {d.reason})")
            elif isinstance(env.data, DeadlinePlanned):
                p = env.data
                local = p.due_at.astimezone(ZoneInfo(p.party_timezone))
                seen.update(deadline=p.due_at.isoformat(), regime=p.regime)
                print(f"<- deadline {local:%Y-%m-%d %H:%M} {p.party_timezone} ({p.regime})")
                break
    if "deadline" not in seen:
        raise TimeoutError(f"the sample appeal did not get a deadline in {timeout}s; got {seen}")
    return seen


def demo_tokens(cfg: Config) -> dict[str, str]:
    """Ready tokens from the dev issuer's key (12 h): a party user of every sample managing company and
    resource supplier would be too many to print, so the demo party holds the sample parties' ids."""
    issuer = DevIssuer.with_key_file(cfg.issuer_url, cfg.issuer_key)
    parties = [line.split(",", 1)[0] for line in (cfg.directory / "parties.csv").read_text().splitlines()[1:]] \
        if cfg.directory else ["uk-zarechye"]
    tokens = issuer.demo_tokens()
    tokens["demo-party"] = issuer.mint("demo-party", ["party"], 12 * 3600, party_ids=[p for p in parties if p])
    return tokens


async def api_demo(cfg: Config, seen: dict[str, str], party_token: str) -> dict[str, str]:
    """The assigned party acts through the router's HTTP API with a printed token, then the citizen
    checks the status with the number and the access code."""
    import httpx

    base = f"http://127.0.0.1:{cfg.port('router')}"
    number = seen["registered"]
    auth = {"authorization": f"Bearer {party_token}"}
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        r = await http.get(f"/api/v1/party/appeals/{number}", headers=auth)
        r.raise_for_status()
        print(f"-> party API: GET /api/v1/party/appeals/{number} -> {r.status_code} (status {r.json()['status']}, "
              f"the citizen's contacts included for the assigned party)")
        for step, body in (("accept", None), ("answer", {"text": "Неисправность устранена, проверьте, пожалуйста."})):
            r = await http.post(f"/api/v1/party/appeals/{number}/{step}", json=body, headers={
                **auth, "Idempotency-Key": f"demo-{number}-{step}"})
            r.raise_for_status()
            out = r.json()
            print(f"-> party API: POST .../{step} -> {r.status_code} {out['status']} "
                  f"(actor {(out.get('outcome') or {}).get('actor', '?')})")
        anon = await http.get("/api/v1/appeals", params={"open": "true"})
        print(f"-> anonymous GET /api/v1/appeals?open=true -> {anon.status_code} ({anon.json().get('code')})")
        status = "?"
        if seen.get("access_code"):
            r = await http.post("/api/v1/citizen/status", json={"number": number, "access_code": seen["access_code"]})
            status = r.json().get("status", "?") if r.status_code == 200 else f"HTTP {r.status_code}"
            print(f"-> citizen: POST /api/v1/citizen/status (number + access code) -> {status}")
        return {"party_api": out["status"], "citizen_status": status}


async def consultation_demo(cfg: Config, operator_token: str) -> dict[str, str]:
    """A question, not an appeal: the knowledge base's suggestion for it (anonymously, as the site asks
    before filing), then the operator records the consultation as resolved at first contact."""
    import httpx

    question = "До какого числа нужно передавать показания счётчиков?"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.port('intake')}", timeout=10) as http:
        r = await http.post("/api/v1/suggestions", json={"text": question})
        r.raise_for_status()
        top = (r.json()["articles"] or [{"id": "-", "title": "-"}])[0]
        print(f"-> anonymous POST /api/v1/suggestions -> {r.status_code}: {top['id']} «{top['title']}»")
        r = await http.post("/api/v1/consultations", json={
            "channel": "hotline", "question": question, "article_ids": [top["id"]] if top["id"] != "-" else [],
            "resolved_first_contact": True}, headers={"authorization": f"Bearer {operator_token}",
                                                      "Idempotency-Key": f"demo-{uuid.uuid4()}"})
        r.raise_for_status()
        c = r.json()
        print(f"-> operator POST /api/v1/consultations -> {r.status_code} (topic {c['category']}, resolved at first "
              f"contact, by {c['operator']}; not routed)")
        return {"suggested": top["id"], "consultation": c["consultation_id"]}


async def gis_demo(cfg: Config, since: float, timeout: float = 60.0) -> dict[str, str]:
    """Follow the appeals the emulator was seeded with: pulled by gis_sync, registered by intake,
    assigned by the router, and the assignment mirrored back to ГИС ЖКХ as a Performer."""
    numbers: dict[str, str] = {}
    async with contextlib.aclosing(lifecycle(cfg, timeout, from_start=True)) as events:
        async for at, env in events:
            if at < since:
                continue  # an earlier run's events
            if isinstance(env.data, AppealRegistered) and env.data.appeal.channel is Channel.GIS:
                a = env.data.appeal
                numbers[str(a.appeal_id)] = a.registration_number
                print(f"<- ГИС ЖКХ appeal {a.source_refs.get('gis_appeal_number')} pulled and registered as "
                      f"{a.registration_number} (deadline from ГИС: {a.source_refs.get('execution_end_date')})")
            elif isinstance(env.data, GisActionMirrored) and str(env.data.appeal_id) in numbers:
                d = env.data
                print(f"<- {d.action} for {d.registration_number} confirmed by ГИС ЖКХ (TransportGUID {d.transport_guid})")
                return {"gis_number": d.registration_number, "gis_action": d.action}
    raise TimeoutError(f"no ГИС appeal was mirrored back to ГИС in {timeout}s (seen: {numbers})")


async def main_async(args: argparse.Namespace) -> int:
    cfg = Config(
        data_dir=Path(args.data_dir).resolve(),
        external=args.external,
        kafka_port=args.kafka_port,
        mongo_port=args.mongo_port,
        http_base_port=args.http_base_port,
        topic_prefix=args.topic_prefix,
        group_prefix=args.topic_prefix,
        directory=None if args.no_directory else Path(args.directory),
        gis_port=args.gis_port,
        gis_seed=args.gis_seed,
        gis_endpoint=args.gis_endpoint,
        issuer_port=args.issuer_port,
        issuer=args.issuer,
    )
    if args.reset and cfg.data_dir.exists():
        shutil.rmtree(cfg.data_dir)
    system = System(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print(f"starting broker, database and services (data: {cfg.data_dir}, logs: {system.logs}) ...")
        t0, started_at = time.monotonic(), time.time()
        await system.start()
        print(f"all up in {time.monotonic() - t0:.1f}s: kafka {cfg.bootstrap}, mongodb {redact_uri(cfg.mongo_uri)}")
        for name in SERVICES:
            print(f"   {name:9s} http://127.0.0.1:{cfg.port(name)}/health  /ready  /metrics  /openapi.json  /docs")
        print(f"   issuer    {cfg.issuer_url}" + ("  (dev issuer: tokens below are valid 12 h)" if system.issuer else ""))
        tokens = demo_tokens(cfg) if system.issuer else {}
        for who, tok in tokens.items():
            print(f"   token {who:14s} {tok}")
        print(f"   dashboard http://127.0.0.1:{cfg.port('analytics')}/dashboard#access_token=<analyst token>  "
              "(CSV: /api/v1/analytics/export.csv)")
        print(f"   ГИС ЖКХ   {cfg.gis_url}" + ("  (emulator; control API under /emulator)" if system.gis else ""))
        if not args.no_demo:
            seen = await demo(cfg)
            if tokens:
                await api_demo(cfg, seen, tokens["demo-party"])
                await outage_demo(cfg, tokens["demo-operator"])  # the outage register (devtools/outage_demo.py)
                await control_card_demo(cfg, tokens["demo-operator"])  # per-house control cards (devtools/cards_demo.py)
                await consultation_demo(cfg, tokens["demo-operator"])
                await letter_demo(cfg, tokens["demo-party"], tokens["demo-operator"])  # devtools/letters_demo.py
                await scorecard_demo(cfg, tokens["demo-analyst"])  # devtools/report_demo.py
            if system.gis is not None and cfg.gis_seed > 0:
                await gis_demo(cfg, since=started_at - 1)
        if args.once:
            return 0
        print("running; Ctrl-C stops everything")
        while not stop.is_set():
            for name, srv in system.services.items():
                if not srv.alive():
                    print(f"{name} exited unexpectedly; see {srv.log_path}", file=sys.stderr)
                    return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
        return 0
    finally:
        print("stopping ...")
        await asyncio.to_thread(system.stop)
        print("stopped")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(ROOT / ".data"))
    ap.add_argument("--once", action="store_true", help="stop after the demo")
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--reset", action="store_true", help="delete the data dirs first")
    ap.add_argument("--external", action="store_true", help="use ZHKH_KAFKA_BOOTSTRAP / ZHKH_MONGO_URI")
    ap.add_argument("--kafka-port", type=int, default=19092)
    ap.add_argument("--mongo-port", type=int, default=27117)
    ap.add_argument("--http-base-port", type=int, default=8000, help="services listen on base+1 .. base+5")
    ap.add_argument("--topic-prefix", default="zhkh", help="topic and consumer-group prefix")
    ap.add_argument("--directory", default=str(ROOT / "devtools" / "sample_directory"),
                    help="folder of parties.csv/districts.csv/houses.csv imported into the router at start")
    ap.add_argument("--no-directory", action="store_true", help="keep the directory already in the database")
    ap.add_argument("--gis-port", type=int, default=18080, help="port of the ГИС ЖКХ emulator")
    ap.add_argument("--gis-seed", type=int, default=3, help="appeals the emulator starts with (pulled by gis_sync)")
    ap.add_argument("--gis-endpoint", default=None, help="use this AppealsAsync endpoint instead of starting the emulator")
    ap.add_argument("--issuer-port", type=int, default=18443, help="port of the dev token issuer")
    ap.add_argument("--issuer", default=None, help="use this OIDC issuer instead of starting the dev issuer "
                    "(the services then need ZHKH_AUTH_* set for it)")
    return asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
