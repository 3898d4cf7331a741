"""Imports as real processes: two at once on one file, and one killed with SIGKILL.

* Two ``crmkit import orders`` of the same file running at the same time end
  with every order stored once, both exit 0, and the second reports the rows
  as already present (on PostgreSQL it used to die on a raw UniqueViolation).
* An import killed with SIGKILL while its duplicate check had moved to disk
  leaves no temporary file behind (its files are unlinked as they are created).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import crmkit

HEADER = "external_id,customer,occurred_at,amount\n"


def _launcher() -> list[str]:
    return [sys.executable, "-c", "from crmkit.cli import main; main()"]


def test_two_imports_of_one_file_at_once_store_each_row_once(database_url, tmp_path):
    crmkit.open(database_url, plugins=[], upgrade=True).close()
    with crmkit.open(database_url, plugins=[]) as crm:
        crm.customers.add_many({"external_id": f"C{n}", "name": f"C{n}"} for n in range(50))
    count = 30_000
    rows = "".join(f"O{n},C{n % 50},2025-01-02T10:00:00+00:00,{n}.25\n" for n in range(count))
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    env = {**os.environ, "CRMKIT_PLUGINS": ""}
    # small batches: many chances for the two writers to interleave
    command = [*_launcher(), "--database", database_url, "import", "orders", str(path),
               "--batch-size", "2000"]  # fmt: skip
    for attempt in range(2):  # the race needs both in the storing pass at once; retry once
        runs = [
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )  # fmt: skip
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=300) for run in runs]
        for run, (_out, err) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, err
            assert "UniqueViolation" not in err and "Traceback" not in err
        stored = sorted(int(out.split("stored ")[1].split(",")[0]) for out, _ in outputs)
        present = sorted(int(out.split("already present ")[1].split(" ")[0]) for out, _ in outputs)
        assert sum(stored) == count * (1 - attempt)
        assert [s + p for s, p in zip(stored, reversed(present), strict=True)] == [count, count]
        with crmkit.open(database_url, plugins=[]) as crm:
            assert len(crm.orders.list(limit=None)) == count


SCRIPT = """
import sys, time
import crmkit.transfer.duplicates as duplicates
from crmkit.cli import main

duplicates.SEEN_IN_MEMORY = 100
original = duplicates.SeenKeys._spill

def spill(self):
    original(self)
    print("spilled", flush=True)
    time.sleep(120)  # killed here, with the ids on disk

duplicates.SeenKeys._spill = spill
main()
"""


def test_an_import_killed_with_sigkill_leaves_no_temporary_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    with crmkit.open(url, plugins=[], upgrade=True) as crm:
        crm.customers.add(name="A", external_id="C1")
    path = tmp_path / "orders.csv"
    path.write_text(
        HEADER + "".join(f"O{n},C1,2025-01-02,1\n" for n in range(1000)), encoding="utf-8"
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "CRMKIT_PLUGINS": "", "TMPDIR": str(temp)}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), "--database", url, "import", "orders",
         str(path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "spilled", child.stderr.read() if child.stderr else ""
        time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert sorted(p.name for p in temp.rglob("*")) == []


@pytest.mark.parametrize("spill", [False, True])
def test_the_duplicate_check_finds_repeats_on_disk_too(tmp_path, monkeypatch, spill):
    from crmkit.transfer import duplicates

    monkeypatch.setattr(duplicates, "SEEN_IN_MEMORY", 3 if spill else 1000)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    seen = duplicates.SeenKeys()
    assert seen.first_times(["a", "b", "c", "d"]) == [True] * 4
    assert seen.first_times(["a", "e", "e"]) == [False, True, False]
    assert list(tmp_path.iterdir()) == []  # nothing named on disk, even while open
    seen.close()
