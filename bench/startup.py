"""Benchmark: how long the command line takes to start, beside the floors it cannot beat.

    python bench/startup.py [--runs 15]

Each command runs ``--runs`` times as a fresh process (the same Python as this
script; ``crmkit`` from the same environment); the median and the fastest wall
time are printed, with the issue's target next to each crmkit row:

* floor A — ``python -c "import click, pluggy"``: what any click + pluggy tool pays;
* floor B — ``python -c "import sqlalchemy, click, pluggy"``: the least a command that
  opens the database pays;
* floor C — the whole stack (SQLAlchemy, Alembic, click, pluggy, attrs, Jinja2);
* ``crmkit --help`` with every installed plugin enabled (target: within 0.25 s of A);
* ``crmkit customer list --limit 5`` on a seeded 200-customer demo database (target:
  within 0.35 s of B), and its peak memory (the largest of its runs).

Every command runs once untimed first. Python's bytecode cache is on, as for any
installed package (pip compiles it at install; the floors' libraries have theirs): a
``PYTHONDONTWRITEBYTECODE`` in the environment is dropped for the runs, otherwise, in
a checkout without ``__pycache__`` folders, crmkit's own sources would be compiled
again on every run and the floors' libraries not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
CRMKIT = str(Path(PYTHON).with_name("crmkit"))
FLOORS = {
    "A": "import click, pluggy",
    "B": "import sqlalchemy, click, pluggy",
    "C": "import sqlalchemy, alembic, click, pluggy, attrs, jinja2",
}


def timed(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, int]:
    """(median s, fastest s, peak KB) over ``runs`` fresh processes, after one untimed run."""
    times = []
    peak = 0
    for run in range(runs + 1):
        start = time.perf_counter()
        child = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, argv)
        if run:  # the first run warms the disk and bytecode caches
            times.append(elapsed)
            peak = max(peak, usage.ru_maxrss)
    return statistics.median(times), min(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per command")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="crmkit-startup-"))
    env = {**os.environ, "CRMKIT_CONFIG": str(folder / "crmkit.toml")}
    env.pop("CRMKIT_PLUGINS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    url = f"sqlite:///{folder / 'demo.db'}"
    (folder / "crmkit.toml").write_text(f'database = "{url}"\n', encoding="utf-8")
    subprocess.run(
        [CRMKIT, "demo", "--customers", "200", "--seed", "1"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.2f}, {args.runs} runs each\n")
    print(f"{'command':<48} {'median':>8} {'fastest':>8}  target")
    floors = {}
    for name, code in FLOORS.items():
        median, fastest, _ = timed([PYTHON, "-c", code], args.runs, env)
        floors[name] = median
        print(f"{'floor ' + name + ': ' + code:<48.48} {median:8.3f} {fastest:8.3f}")
    median, fastest, _ = timed([CRMKIT, "--help"], args.runs, env)
    target = floors["A"] + 0.25
    verdict = "met" if median <= target else "not met"
    print(f"{'crmkit --help (all plugins)':<48} {median:8.3f} {fastest:8.3f}  "
          f"<= {target:.3f} s: {verdict}")  # fmt: skip
    median, fastest, peak = timed([CRMKIT, "customer", "list", "--limit", "5"], args.runs, env)
    target = floors["B"] + 0.35
    verdict = "met" if median <= target else "not met"
    print(f"{'crmkit customer list --limit 5':<48} {median:8.3f} {fastest:8.3f}  "
          f"<= {target:.3f} s: {verdict}; peak {peak / 1024:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
