"""Every benchmark still imports and answers ``--help``, so none rots unnoticed between runs.

Benchmarks are not run here (they print figures, take minutes and start whole stacks): each
script is started as a user would start it, ``python bench/<script>.py --help``, which imports
everything it needs and parses its command line; each helper module is imported as the
scripts and their worker processes import it, with ``bench/`` on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())
HELPERS = sorted(p.stem for p in BENCH.glob("*.py") if p.name not in SCRIPTS)
# Helper modules that need the ``bench`` extra (pip install -e '.[bench]').


def run(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    # Without BENCH_REDIS_URL the peers' modules pick in-memory brokers: no import reaches a Redis.
    env = {key: value for key, value in os.environ.items() if key != "BENCH_REDIS_URL"}
    return subprocess.run(
        [sys.executable, *arguments], cwd=BENCH.parent, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_bench_directory_has_the_scripts_its_readme_lists() -> None:
    assert {"pipeline.py", "peers.py", "map_scale.py", "local_engine.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_prints_its_usage(script: str) -> None:
    finished = run([str(BENCH / script), "--help"])

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith(f"usage: {script}"), finished.stdout


@pytest.mark.parametrize("module", HELPERS)
def test_each_helper_module_imports(module: str) -> None:
    finished = run(["-c", f"import sys; sys.path.insert(0, {str(BENCH)!r}); import {module}"])

    assert finished.returncode == 0, finished.stderr


def test_peers_refuses_an_unknown_peer_to_skip() -> None:
    finished = run([str(BENCH / "peers.py"), "--skip", "celery,huey"])

    assert finished.returncode == 2
    assert "unknown peer(s) huey" in finished.stderr


def test_pipeline_offers_the_peers_run() -> None:
    finished = run([str(BENCH / "pipeline.py"), "--help"])

    assert "--peers" in finished.stdout
