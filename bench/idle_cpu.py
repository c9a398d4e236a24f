"""CPU of the whole system while nothing happens: what `scripts/run` costs when idle.

    .venv/bin/python bench/idle_cpu.py [--seconds 30] [--settle 20]

Starts the dev launcher (embedded broker and database, the ГИС ЖКХ emulator, all five services,
no demo) on free ports in a temporary data dir, lets it settle (consumers joined, the emulator's
seeded appeals pulled), then measures the CPU used by every process of the launcher's tree over
--seconds and prints it per process and in all, as a share of one core.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, cpu_seconds

from devtools import embedded


def tree(pid: int) -> dict[int, str]:
    """pid -> a short name, for ``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        names[int(entry.name)] = name_of(cmd)
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        out[p] = names.get(p, "?")
        todo += children.get(p, [])
    return out


def name_of(cmd: str) -> str:
    for svc in ("intake", "router", "notifier", "gis_sync", "analytics"):
        if f"-m {svc}" in cmd:
            return svc
    if "noida" in cmd:
        return "broker"
    if "secantus" in cmd:
        return "database"
    if "gis_emulator" in cmd:
        return "ГИС emulator"
    if "launcher" in cmd:
        return "launcher"
    return cmd.split(" ")[0].rsplit("/", 1)[-1]


def own_cpu(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="zhkh-idle-") as tmp:
        base = 20000 + os.getpid() % 1000 * 10
        argv = [sys.executable, "-m", "devtools.launcher", "--no-demo", "--reset", "--data-dir", tmp,
                "--kafka-port", str(embedded.free_port()), "--mongo-port", str(embedded.free_port()),
                "--http-base-port", str(base), "--gis-port", str(embedded.free_port())]
        log = Path(tmp + ".log").open("w")
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while "running; Ctrl-C" not in Path(tmp + ".log").read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    print(Path(tmp + ".log").read_text()[-2000:])
                    return 1
                time.sleep(0.5)
            time.sleep(args.settle)
            procs = tree(proc.pid)
            before = {p: own_cpu(p) for p in procs}
            total0 = cpu_seconds(proc.pid)
            time.sleep(args.seconds)
            after = {p: own_cpu(p) for p in procs}
            total = cpu_seconds(proc.pid) - total0
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
            log.close()
    by_name: dict[str, float] = {}
    for p, name in procs.items():
        by_name[name] = by_name.get(name, 0.0) + after.get(p, 0.0) - before.get(p, 0.0)
    print(f"idle system over {args.seconds:.0f}s (after {args.settle:.0f}s to settle): "
          f"{total / args.seconds * 100:.1f}% of one core in all")
    for name, used in sorted(by_name.items(), key=lambda kv: -kv[1]):
        print(f"  {name:14s} {used / args.seconds * 100:5.2f}% of one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
