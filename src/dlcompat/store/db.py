"""The results database (SQLAlchemy Core): runs, jobs and measurements. SQLite by default, any URL works.

The driver is its only writer. A finished job and all its measurements are written in one
transaction, keyed by the job's key, so a study killed at any instant leaves either the whole job or
none of it, and a job is never stored twice.

Two small tables let another terminal follow a study (`dlcompat status`): `running` holds the jobs the
driver has handed to its executor and not yet stored, and `drivers` the driver of each run with a
heartbeat it refreshes every few seconds; a run marked running whose heartbeat is old lost its driver.

Any SQLAlchemy URL works; PostgreSQL through psycopg 3 (`postgresql+psycopg://user:password@host:port/db`,
and a bare `postgresql://` means the same), where several drivers may write their runs into one database
at once. A value that does not fit its column, or a database that cannot be reached, is the user's to
fix: a `UserError` of one sentence, never a database traceback.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, NoSuchModuleError, OperationalError

from dlcompat.errors import OutputError, UserError
from dlcompat.metrics.record import COLUMNS, Measurement

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("config_toml", Text, nullable=False),
    Column("created", String(40), nullable=False),
    Column("updated", String(40), nullable=False),
    Column("status", String(20), nullable=False),  # running | complete | interrupted | failed
    Column("environment", Text, nullable=False),  # JSON: python, platform, cpu, packages, threads, seeds
    Column("job_keys", Text, nullable=False),  # JSON list, the plan's jobs in order
    Column("summary", Text, nullable=False, default="{}"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("env", String(40), nullable=False),
    Column("label", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("deps", Text, nullable=False),
    Column("status", String(20), nullable=False),  # ok | failed | unavailable
    Column("error", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("outputs", Text, nullable=False, default="{}"),
    Column("environment", Text, nullable=False, default="{}"),
    Column("duration_s", Float),
    Column("finished", String(40), nullable=False),
    Column("run_id", String(32), nullable=False),  # the run that computed it first
)

measurements = Table(
    "measurements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_key", String(64), ForeignKey("jobs.key"), nullable=False, index=True),
    Column("dataset", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("framework", String(100), nullable=False),
    Column("seed", Integer),
    Column("target", String(200), nullable=False),
    Column("variant", Text, nullable=False),
    Column("metric", String(100), nullable=False),
    Column("value", Float),
    Column("unit", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=False),
    Column("artifact", Text, nullable=False),
    Column("method", Text, nullable=False),
)


running = Table(
    "running",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("label", Text, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("started", String(40), nullable=False),
)

drivers = Table(
    "drivers",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("executor", String(200), nullable=False),
    Column("started", String(40), nullable=False),
    Column("heartbeat", String(40), nullable=False),
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def age_s(stamp: str) -> float:
    """Seconds since an ISO timestamp written by `now()`."""
    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


def database_url(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'results.sqlite').resolve()}"


#: the key of the PostgreSQL advisory lock that lets one driver at a time create the tables
_SCHEMA_LOCK = 0x646C636F6D706174  # "dlcompat"


def shown_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _engine_url(url: str) -> str:
    """`postgresql://` (which SQLAlchemy gives to psycopg2) is PostgreSQL through psycopg 3, the driver installed."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UserError(f"{url!r} is not a database URL ({exc}): pass e.g. sqlite:////path/results.sqlite or "
                        "postgresql+psycopg://user:password@host:5432/dbname") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


#: SQLite's and PostgreSQL's words for a disk that is full or a database that is read-only
_FULL_OR_READ_ONLY = re.compile(r"disk is full|disk full|no space left|readonly database|read-only|quota exceeded",
                                re.IGNORECASE)


class ResultStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.shown_url = shown_url(url)
        try:
            self.engine: Engine = create_engine(_engine_url(url), pool_pre_ping=not url.startswith("sqlite"))
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise UserError(f"cannot use the database URL {self.shown_url} ({_first_line(exc)}): for PostgreSQL "
                            "write postgresql+psycopg://user:password@host:port/dbname") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # two drivers starting at once must not both create tables
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                metadata.create_all(conn)
        except OperationalError as exc:
            hint = ("that its folder exists and is writable" if self.engine.dialect.name == "sqlite" else
                    "that the server runs, that the URL's host, port, user, password and database are right, "
                    "and that this user may create tables there")
            raise UserError(f"cannot open the results database {self.shown_url} ({_first_line(exc.orig)}): check "
                            f"{hint}") from None

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction; a value the database refuses is the user's to fix, in one sentence."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except DataError as exc:
            raise UserError(f"the results database {self.shown_url} refused a value ({_first_line(exc.orig)}): "
                            "shorten or correct the name or setting it comes from") from None
        except OperationalError as exc:
            if not _FULL_OR_READ_ONLY.search(str(exc.orig)):
                raise
            raise OutputError(f"the results database {self.shown_url} cannot be written ({_first_line(exc.orig)}): "
                              "free space or make its folder writable, then run the same command again; the "
                              "transaction was rolled back, nothing half-written was kept") from None

    def _fitting(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        """`values` for a row of `table`, checked against each column's length (PostgreSQL enforces String(N),
        SQLite does not: both refuse here, alike); PostgreSQL stores no NUL character, so it gets U+FFFD."""
        postgres = self.engine.dialect.name == "postgresql"
        for name, value in values.items():
            if not isinstance(value, str):
                continue
            length = getattr(table.c[name].type, "length", None)
            if length is not None and len(value) > length:
                shown = value if len(value) <= 40 else f"{value[:40]}…"
                raise UserError(f"{table.name}.{name} holds at most {length} characters, and {shown!r} has "
                                f"{len(value)}: shorten the name or setting it comes from")
            if postgres and "\0" in value:
                values[name] = value.replace("\0", "\ufffd")
        return values

    # --- jobs ---------------------------------------------------------------------------------------
    def finished_keys(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                found |= {row[0] for row in conn.execute(select(jobs.c.key).where(jobs.c.key.in_(chunk)))}
        return found

    def job(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.key == key)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        for name in ("params", "deps", "outputs", "environment"):
            out[name] = json.loads(out[name])
        return out

    def record_job(self, run_id: str, key: str, kind: str, env: str, label: str, params: dict[str, Any],
                   deps: dict[str, str], outcome: Any) -> bool:
        """Store a finished job and its measurements atomically; False if the key was already stored."""
        job = self._fitting(jobs, dict(
            key=key, kind=kind, env=env, label=label, params=json.dumps(params, sort_keys=True),
            deps=json.dumps(deps, sort_keys=True), status=outcome.status, error=outcome.error,
            detail=outcome.detail, outputs=json.dumps(outcome.outputs, default=str),
            environment=json.dumps(outcome.environment, default=str), duration_s=outcome.duration_s,
            finished=now(), run_id=run_id,
        ))
        rows = [self._fitting(measurements, _measurement_row(key, m)) for m in outcome.measurements]
        try:
            with self._writing() as conn:
                conn.execute(insert(jobs).values(**job))
                if rows:
                    conn.execute(insert(measurements), rows)
                conn.execute(delete(running).where(running.c.run_id == run_id, running.c.key == key))
        except IntegrityError:
            self.job_stopped(run_id, key)
            return False
        return True

    # --- what is running now ------------------------------------------------------------------------
    def job_started(self, run_id: str, key: str, label: str, kind: str) -> None:
        row = self._fitting(running, dict(run_id=run_id, key=key, label=label, kind=kind, started=now()))
        with self._writing() as conn:
            conn.execute(delete(running).where(running.c.run_id == run_id, running.c.key == key))
            conn.execute(insert(running).values(**row))

    def job_stopped(self, run_id: str, key: str) -> None:
        """The job ended without being stored (an infrastructure fault)."""
        with self.engine.begin() as conn:
            conn.execute(delete(running).where(running.c.run_id == run_id, running.c.key == key))

    def heartbeat(self, run_id: str, executor: str = "") -> None:
        """The driver is alive: written at start (with `executor`) and every few seconds after."""
        with self._writing() as conn:
            stamp = now()
            if executor:
                conn.execute(delete(drivers).where(drivers.c.run_id == run_id))
                conn.execute(insert(drivers).values(**self._fitting(drivers, dict(
                    run_id=run_id, host=socket.gethostname(), pid=os.getpid(), executor=executor, started=stamp,
                    heartbeat=stamp))))
            else:
                conn.execute(update(drivers).where(drivers.c.run_id == run_id).values(heartbeat=stamp))

    def run_state(self, run_id: str | None) -> dict[str, Any]:
        """A run as another terminal sees it: its record, job counts, its driver and what runs now."""
        run = self.run(run_id)
        statuses = list(self.job_statuses(run["job_keys"]).values())
        counts = {s: statuses.count(s) for s in ("ok", "failed", "unavailable")}
        counts = {"total": len(run["job_keys"]), **counts, "pending": len(run["job_keys"]) - len(statuses)}
        with self.engine.connect() as conn:
            driver = conn.execute(select(drivers).where(drivers.c.run_id == run["id"])).mappings().first()
            now_running = conn.execute(select(running).where(running.c.run_id == run["id"])
                                       .order_by(running.c.started)).mappings().all()
        return {"run": run, "jobs": counts, "driver": dict(driver) if driver else None,
                "running": [dict(r) for r in now_running]}

    # --- runs ---------------------------------------------------------------------------------------
    def start_run(self, run_id: str, name: str, config_toml: str, environment: dict[str, Any],
                  job_keys: list[str]) -> None:
        values = {"status": "running", "updated": now(), "environment": json.dumps(environment, default=str),
                  "job_keys": json.dumps(job_keys)}
        new = self._fitting(runs, dict(id=run_id, name=name, config_toml=config_toml, created=now(), summary="{}",
                                       **values))
        with self._writing() as conn:
            exists = conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first()
            if exists:
                conn.execute(update(runs).where(runs.c.id == run_id).values(**values))
                conn.execute(delete(running).where(running.c.run_id == run_id))  # left by a killed driver
            else:
                conn.execute(insert(runs).values(**new))

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(status=status, updated=now(),
                                                                         summary=json.dumps(summary)))
            conn.execute(delete(running).where(running.c.run_id == run_id))

    def runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.updated.desc())).mappings().all()
        return [_run_dict(r) for r in rows]

    def run(self, run_id: str | None) -> dict[str, Any]:
        """A run by id, by unique id prefix, or the latest (None or "latest")."""
        all_runs = self.runs()
        if not all_runs:
            raise UserError(f"no runs in {self.shown_url}: run `dlcompat run` first, or pass --out to the right "
                            "folder")
        if run_id in (None, "latest"):
            return all_runs[0]
        matches = [r for r in all_runs if r["id"].startswith(run_id)]
        if len(matches) != 1:
            known = ", ".join(r["id"] for r in all_runs[:10])
            raise UserError(f"run {run_id!r} {'is ambiguous' if matches else 'not found'}: known runs are {known}")
        return matches[0]

    def rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's tidy table: one dict per measurement, keys exactly `COLUMNS`."""
        run = self.run(run_id)
        keys = run["job_keys"]
        order = {k: i for i, k in enumerate(keys)}
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                query = (select(measurements, jobs.c.kind).join(jobs, jobs.c.key == measurements.c.job_key)
                         .where(measurements.c.job_key.in_(chunk)))
                for row in conn.execute(query).mappings():
                    record = {c: row[c] for c in COLUMNS if c in row}
                    record.update(run=run["id"], job=row["job_key"], kind=row["kind"],
                                  method=json.loads(row["method"]))
                    out.append({c: record.get(c) for c in COLUMNS} | {"_order": (order[row["job_key"]], row["id"])})
        out.sort(key=lambda r: r.pop("_order"))
        return out

    def job_environments(self, keys: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Job key -> (its toolchain environment's name, the environment it recorded: Python, packages, ...)."""
        with self.engine.connect() as conn:
            result: dict[str, tuple[str, dict[str, Any]]] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                query = select(jobs.c.key, jobs.c.env, jobs.c.environment).where(jobs.c.key.in_(chunk))
                result.update({key: (env, json.loads(environment or "{}")) for key, env, environment
                               in conn.execute(query).all()})
        return result

    def job_statuses(self, keys: list[str]) -> dict[str, str]:
        with self.engine.connect() as conn:
            result: dict[str, str] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                result.update(dict(conn.execute(select(jobs.c.key, jobs.c.status).where(jobs.c.key.in_(chunk))).all()))
        return result


def _measurement_row(job_key: str, m: Measurement) -> dict[str, Any]:
    return {"job_key": job_key, "dataset": m.dataset, "model": m.model, "framework": m.framework, "seed": m.seed,
            "target": m.target, "variant": m.variant, "metric": m.metric, "value": m.value, "unit": m.unit,
            "status": m.status, "error": m.error, "artifact": m.artifact,
            "method": json.dumps(m.method, sort_keys=True, default=str)}


def _first_line(exc: BaseException | None) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _run_dict(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["environment"] = json.loads(out["environment"])
    out["job_keys"] = json.loads(out["job_keys"])
    out["summary"] = json.loads(out["summary"] or "{}")
    return out


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
