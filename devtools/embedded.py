"""Start and stop the embedded Kafka-protocol broker (noida-db) and MongoDB-protocol server (SecantusDB).

Used by the dev launcher and by the integration/e2e test fixtures. Both are PyPI packages
installed with the project's ``embedded`` extra; no Docker needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(count: int, low: int = 20000, high: int = 32000) -> int:
    """A base port such that base+1 .. base+count are free now, below Linux's ephemeral range
    (32768+), where outgoing connections would otherwise take them between check and bind."""
    import random

    for _ in range(200):
        base = random.randrange(low, high - count)
        ok = True
        for port in range(base + 1, base + count + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError(f"no block of {count} free ports in {low}..{high}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ServerProcess:
    name: str
    argv: list[str]
    port: int
    log_path: Path
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if _port_open(self.port):
            raise RuntimeError(f"{self.name}: port {self.port} is already in use (another instance running?)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        """kill -9, for fault tests."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def kafka_server(data_dir: Path, port: int, log_dir: Path) -> ServerProcess:
    return ServerProcess(
        name="kafka (noida-db)",
        argv=[str(BIN / "noida-db"), "start", "--data-dir", str(data_dir), "--host", "127.0.0.1",
              "--only", "kafka", "--kafka-port", str(port)],
        port=port,
        log_path=log_dir / "kafka.log",
        stop_signal=signal.SIGINT,
    )


# SecantusDB serves each client connection on a thread of one Python process. With CPython's
# default 5 ms GIL switch interval, a thread whose reply is ready waits for a busy one to give the
# GIL up, so under load from several services every round trip takes milliseconds longer (the
# whole pipeline's burst throughput measured 21 appeals/s). At 0.2 ms it measured 39/s, with the
# same CPU per appeal. The server is started through this interpreter line to set it.
SECANTUS_SWITCH_INTERVAL_S = 0.0002
_SECANTUS_MAIN = (
    f"import sys; sys.setswitchinterval({SECANTUS_SWITCH_INTERVAL_S}); from secantus.cli import main; "
    "sys.argv[0] = 'secantusd-py'; sys.exit(main())"
)


def mongo_server(data_dir: Path, port: int, log_dir: Path) -> ServerProcess:
    return ServerProcess(
        name="mongodb (SecantusDB)",
        # --sync-on-commit: without it SecantusDB loses the last few acknowledged transactions on a
        # kill -9 (measured: 4 to 8 of ~1000), and a registration counter then hands out a number twice.
        argv=[sys.executable, "-c", _SECANTUS_MAIN, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(data_dir),
              "--sync-on-commit"],
        port=port,
        log_path=log_dir / "mongo.log",
    )


def mongo_uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false"


async def wait_port(port: int, timeout: float = 30.0, server: ServerProcess | None = None) -> None:
    """Until something accepts connections on 127.0.0.1:port (e.g. the ГИС emulator)."""
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if server is not None and not server.alive():
            raise RuntimeError(f"{server.name} exited; see {server.log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout}s")
        await asyncio.sleep(0.2)


async def wait_kafka(bootstrap: str, timeout: float = 60.0, server: ServerProcess | None = None) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "Unable connect" while it boots
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server is not None and not server.alive():
            raise RuntimeError(f"{server.name} exited; see {server.log_path}")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.3)
    raise TimeoutError(f"kafka at {bootstrap} not ready after {timeout}s: {last!r}")


async def wait_mongo(uri: str, timeout: float = 60.0, server: ServerProcess | None = None) -> None:
    from pymongo import AsyncMongoClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server is not None and not server.alive():
            raise RuntimeError(f"{server.name} exited; see {server.log_path}")
        client = AsyncMongoClient(uri, serverSelectionTimeoutMS=1000)
        try:
            await client.admin.command("ping")
            return
        except Exception as exc:  # noqa: BLE001
            last = exc
        finally:
            await client.close()
        await asyncio.sleep(0.3)
    from zhkh_runtime.mongo import redact_uri

    raise TimeoutError(f"mongodb at {redact_uri(uri)} not ready after {timeout}s: {last!r}")
