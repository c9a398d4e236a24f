"""docker-compose.yml must stay valid (checked without a Docker engine by scripts/check-compose)."""

from __future__ import annotations

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
