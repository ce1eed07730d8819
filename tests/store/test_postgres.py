"""PostgreSQL for real: studies run into a live server, and every command reads them back from it.

Two drivers write two runs into one database at once while a reader follows them with `dlcompat
status`; a third runs the first study into SQLite, and the two exports must agree in everything but
timings. A value that does not fit its column, or a server that refuses the login, is one sentence
with exit 2, never a database traceback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dlcompat import cli
from dlcompat.errors import UserError
from dlcompat.metrics.record import Measurement
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.jobs.base import JobOutcome

pytestmark = [pytest.mark.postgres]

STUDY = """
name = "{name}"
models = ["lenet1"]
seeds = [{seed}]
check_reproducibility = false
[data]
limit_train = 200
limit_test = 50
[train]
epochs = 1
[latency]
warmup = 1
min_repeats = 3
min_time_s = 0.0
"""
#: measurements that are timings or memory: they differ from one run to the next, whatever the database
TIMING_UNITS = ("s", "ms")


def run_cli(*args: str) -> tuple[int, str, str]:
    """`dlcompat ARGS` in this process, as the installed command runs it: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return int(info.value.code or 0), out.getvalue(), err.getvalue()


def one_sentence(code: int, stderr: str) -> str:
    lines = [line for line in stderr.split("\n") if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and "sqlalchemy" not in stderr.lower()
    return lines[0]


def start_driver(config: Path, out: Path, database: str | None) -> subprocess.Popen[str]:
    out.mkdir(parents=True)
    command = [sys.executable, "-m", "dlcompat.cli", "run", str(config), "--out", str(out), "--quiet"]
    log = (out.parent / f"{out.name}.log").open("w")
    return subprocess.Popen([*command, *(["--database", database] if database else [])], stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def follow(url: str, drivers: list[subprocess.Popen[str]], limit_s: float = 900) -> list[dict[str, Any]]:
    """What `dlcompat status --json` says of every run in the database, about once a second, until the
    drivers exit: a list of {run id: state} polls."""
    store = ResultStore(url)
    polls: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        finished = all(d.poll() is not None for d in drivers)
        poll = {}
        for run in store.runs():
            code, stdout, stderr = run_cli("status", run["id"], "--database", url, "--json")
            assert code == 0, stderr
            poll[run["id"]] = json.loads(stdout)
        polls.append(poll)
        if finished:
            return polls
        time.sleep(1.0)
    for driver in drivers:
        driver.kill()
    pytest.fail(f"the studies did not finish in {limit_s:.0f} s")


@pytest.fixture(scope="module")
def studies(postgres, tmp_path_factory) -> dict[str, Any]:
    """Study A and study B run into one PostgreSQL database at once, and study A into SQLite beside them."""
    folder = tmp_path_factory.mktemp("postgres-studies")
    url = postgres.create_database("studies")
    configs = {}
    for name, seed in (("pg-a", 0), ("pg-b", 1)):
        configs[name] = folder / f"{name}.toml"
        configs[name].write_text(STUDY.format(name=name, seed=seed))
    start = time.monotonic()
    drivers = [start_driver(configs["pg-a"], folder / "a", url), start_driver(configs["pg-b"], folder / "b", url),
               start_driver(configs["pg-a"], folder / "sqlite", None)]
    polls = follow(url, drivers)
    logs = {name: (folder / f"{name}.log").read_text() for name in ("a", "b", "sqlite")}
    assert [d.returncode for d in drivers] == [0, 0, 0], logs
    runs = {r["name"]: r["id"] for r in ResultStore(url).runs()}
    return {"url": url, "folder": folder, "polls": polls, "a": runs["pg-a"], "b": runs["pg-b"],
            "sqlite": database_url(folder / "sqlite"), "seconds": time.monotonic() - start}


@pytest.mark.slow
def test_two_drivers_write_one_database_at_once_while_status_follows(studies):
    polls, a, b = studies["polls"], studies["a"], studies["b"]
    both_running = [p for p in polls if {a, b} <= set(p) and p[a]["state"] == p[b]["state"] == "running"]
    assert both_running, "the reader never saw both runs running at once"
    assert both_running[0][a]["driver"]["pid"] != both_running[0][b]["driver"]["pid"]
    for run in (a, b):
        seen = [p[run] for p in polls if run in p]
        done = [s["jobs"]["ok"] + s["jobs"]["failed"] + s["jobs"]["unavailable"] for s in seen]
        assert done == sorted(done), "the reader saw a run's finished jobs go down"
        assert any(s["state"] == "running" and s["jobs"]["pending"] > 0 for s in seen)
        last = seen[-1]
        assert last["state"] == "complete" and last["jobs"]["pending"] == 0
        assert last["jobs"]["ok"] == last["jobs"]["total"] > 0


@pytest.mark.slow
def test_status_report_export_and_compare_read_postgres(studies, tmp_path):
    url, a, b = studies["url"], studies["a"], studies["b"]
    code, stdout, stderr = run_cli("status", a, "--database", url)
    assert code == 0 and a in stdout and "complete" in stdout, stderr

    code, stdout, stderr = run_cli("report", b, "--database", url, "--out", str(tmp_path))
    assert code == 0, stderr
    assert "<html" in (tmp_path / "reports" / b / "report.html").read_text().lower()

    code, _, stderr = run_cli("export", a, "--database", url, "--output", str(tmp_path / "a.csv"))
    assert code == 0, stderr
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    assert {r["metric"] for r in rows} >= {"accuracy", "train_time", "latency_p50", "label_flips"}
    code, _, stderr = run_cli("export", a, "--database", url, "--format", "parquet", "--output",
                              str(tmp_path / "a.parquet"))
    assert code == 0, stderr
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "a.parquet").num_rows == len(rows)

    code, stdout, stderr = run_cli("compare", a, b, "--database", url, "--output", str(tmp_path / "ab"))
    assert code == 0 and (tmp_path / "ab" / "compare.html").exists(), stderr
    # the same study from PostgreSQL and from SQLite: one comparison across the two databases
    code, stdout, stderr = run_cli("compare", a, a, "--database", url, "--database-b", studies["sqlite"],
                                   "--output", str(tmp_path / "pg-sqlite"))
    assert code == 0 and (tmp_path / "pg-sqlite" / "compare.md").exists(), stderr


@pytest.mark.slow
def test_the_csv_export_from_postgres_equals_the_one_from_sqlite(studies, tmp_path):
    exported = {}
    for name, database in (("postgres", studies["url"]), ("sqlite", studies["sqlite"])):
        code, _, stderr = run_cli("export", studies["a"], "--database", database, "--output",
                                  str(tmp_path / f"{name}.csv"))
        assert code == 0, stderr
        exported[name] = list(csv.DictReader((tmp_path / f"{name}.csv").open()))
    postgres, sqlite = exported["postgres"], exported["sqlite"]
    assert len(postgres) == len(sqlite) > 0
    for pg_row, sqlite_row in zip(postgres, sqlite, strict=True):
        timing = pg_row["unit"] in TIMING_UNITS or "rss" in pg_row["metric"]
        ignored = {"value", "method"} if timing else set()
        assert {k: v for k, v in pg_row.items() if k not in ignored} == {
            k: v for k, v in sqlite_row.items() if k not in ignored}
    compared = [r for r in postgres if not (r["unit"] in TIMING_UNITS or "rss" in r["metric"])]
    assert any(r["metric"] == "accuracy" for r in compared) and any(r["metric"] == "model_size" for r in compared)


def _outcome(**measurement: Any) -> JobOutcome:
    fields = {"dataset": "digits", "model": "lenet1", "framework": "pytorch", "metric": "accuracy", "value": 0.5,
              **measurement}
    return JobOutcome(status="ok", measurements=[Measurement(**fields)])


def test_a_value_longer_than_its_column_is_one_sentence_on_postgres_and_sqlite(postgres, tmp_path):
    for url in (postgres.create_database("lengths"), database_url(tmp_path)):
        store = ResultStore(url)
        with pytest.raises(UserError, match=r"runs\.name holds at most 200 characters, and '.*' has 300"):
            store.start_run("run1", "n" * 300, "", {}, [])
        store.start_run("run1", "fits", "", {}, ["job1"])
        with pytest.raises(UserError, match=r"measurements\.model holds at most 200 characters"):
            store.record_job("run1", "job1", "evaluate", "main", "label", {}, {}, _outcome(model="m" * 201))
        assert store.job("job1") is None, "a refused job must leave nothing behind"
        assert store.record_job("run1", "job1", "evaluate", "main", "label", {}, {}, _outcome(model="m" * 200))


def test_a_study_name_too_long_for_the_database_exits_2_before_any_job(postgres, tmp_path):
    config = tmp_path / "long.toml"
    config.write_text(STUDY.format(name="n" * 201, seed=0))
    url = postgres.create_database("long_name")
    message = one_sentence(*run_cli("run", str(config), "--database", url, "--out", str(tmp_path / "out"))[::2])
    assert "`name`" in message and "200" in message
    assert ResultStore(url).runs() == [] and not (tmp_path / "out").exists()


def test_values_postgres_cannot_hold_are_stored_or_refused_in_one_sentence(postgres):
    store = ResultStore(postgres.create_database("values"))
    store.start_run("run1", "values", "", {}, ["job1", "job2"])
    # NUL, which PostgreSQL's text cannot hold, may come in a tool's error output: kept as U+FFFD
    failed = JobOutcome(status="failed", error="crashed: \x00\x01 binary", measurements=[])
    assert store.record_job("run1", "job1", "convert", "main", "label", {}, {}, failed)
    assert store.job("job1")["error"] == "crashed: \ufffd\x01 binary"
    # a number beyond the INTEGER column: the database's own refusal, as one sentence
    with pytest.raises(UserError, match="refused a value") as info:
        store.record_job("run1", "job2", "evaluate", "main", "label", {}, {}, _outcome(seed=2**40))
    assert "\n" not in str(info.value) and store.job("job2") is None


def test_a_server_that_refuses_the_login_or_is_not_there_is_one_sentence(postgres):
    postgres.create_database("logins")
    wrong = postgres.url("logins", password="wrong-password")
    message = one_sentence(*run_cli("status", "--database", wrong)[::2])
    assert "cannot open the results database" in message and "wrong-password" not in message and "***" in message
    with socket.socket() as sock:  # a port where nothing listens (and the bare scheme: psycopg all the same)
        sock.bind(("127.0.0.1", 0))
        closed = f"postgresql://dlcompat:pw@127.0.0.1:{sock.getsockname()[1]}/logins"
    message = one_sentence(*run_cli("export", "--database", closed)[::2])
    assert "cannot open the results database" in message and "refused" in message.lower()


def test_a_password_with_url_characters_is_percent_encoded(postgres):
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=postgres.port, user="dlcompat", password="test-password",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS odd WITH (FORCE)")
        conn.execute("DROP ROLE IF EXISTS odd")
        conn.execute("CREATE ROLE odd LOGIN PASSWORD 'p@ss:w/rd%'")
        conn.execute("CREATE DATABASE odd OWNER odd")
    url = f"postgresql+psycopg://odd:p%40ss%3Aw%2Frd%25@127.0.0.1:{postgres.port}/odd"
    message = one_sentence(*run_cli("status", "--database", url)[::2])
    assert message.startswith("error: no runs in postgresql+psycopg://odd:***@") and "p%40ss" not in message
    store = ResultStore(url)
    store.start_run("run1", "odd", "", {}, [])
    assert [r["name"] for r in store.runs()] == ["odd"]
