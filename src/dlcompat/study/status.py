"""A study's state as another terminal sees it (`dlcompat status`), read from the results database alone.

Job counts come from the stored jobs of the run's plan; what runs now from the `running` table the
driver keeps; whether the driver still lives from its heartbeat (and, on the driver's own machine,
from its process). A run marked running whose driver is gone was killed: `dlcompat run` resumes it.
"""

from __future__ import annotations

import socket
from typing import Any

from dlcompat.store.db import ResultStore, age_s
from dlcompat.study.runner import HEARTBEAT_S

#: a driver silent for this long is taken for dead (it beats every HEARTBEAT_S seconds)
STALE_AFTER_S = 6 * HEARTBEAT_S


def _driver_alive(driver: dict[str, Any]) -> bool | None:
    """True or False when the driver ran on this machine (its process is checked), None elsewhere."""
    if driver["host"] != socket.gethostname():
        return None
    import psutil

    try:
        proc = psutil.Process(int(driver["pid"]))
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def study_state(store: ResultStore, run_id: str | None) -> dict[str, Any]:
    found = store.run_state(run_id)
    run, driver, jobs = found["run"], found["driver"], found["jobs"]
    state, detail = run["status"], ""
    if driver is not None:
        driver = {**driver, "heartbeat_age_s": round(age_s(driver["heartbeat"]), 1)}
    if state == "running":
        alive = _driver_alive(driver) if driver else None
        if alive is False:
            state, detail = "stopped", f"its driver (pid {driver['pid']}) is gone"  # type: ignore[index]
        elif driver is not None and alive is None and driver["heartbeat_age_s"] > STALE_AFTER_S:
            state, detail = "stopped", f"no heartbeat from its driver for {driver['heartbeat_age_s']:.0f} s"
        if state == "stopped":
            detail += ": run the same `dlcompat run` again to resume it"
    running = [{"label": r["label"], "kind": r["kind"], "for_s": round(age_s(r["started"]), 1)}
               for r in found["running"]]
    return {"id": run["id"], "name": run["name"], "state": state, "detail": detail, "created": run["created"],
            "updated": run["updated"], "jobs": jobs, "running": running, "driver": driver,
            "last_summary": run["summary"]}


def describe(state: dict[str, Any]) -> str:
    """The state as a few lines of text (rich markup)."""
    jobs = state["jobs"]
    lines = [f"run [bold]{state['id']}[/] ({state['name']}): [bold]{state['state']}[/]"
             + (f", {state['detail']}" if state["detail"] else "")]
    driver = state["driver"]
    if driver:
        live = state["state"] in ("running", "stopped")
        beat = f", last heartbeat {driver['heartbeat_age_s']:.0f} s ago" if live else ""
        lines.append(f"driver: pid {driver['pid']} on {driver['host']}, executor {driver['executor']}, started "
                     f"{driver['started']}{beat}")
    lines.append(f"jobs: {jobs['total']} in the plan: {jobs['ok']} ok, {jobs['failed']} failed, {jobs['unavailable']} "
                 f"unavailable, {jobs['pending']} pending")
    if state["running"]:
        verb = "running now" if state["state"] == "running" else "were running when it stopped"
        lines.append(f"{len(state['running'])} {verb}:")
        lines += [f"  {r['label']}  ({r['for_s']:.0f} s)" for r in state["running"]]
    return "\n".join(lines)
