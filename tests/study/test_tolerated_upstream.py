"""A job may tolerate a failed upstream of a named role (`Job.tolerates`): it runs, told how that upstream ended.

This is how one transfer job takes every attack of its source and still runs when one attack failed.
Only an upstream that ended *stored* (failed, unavailable) is tolerated: a skipped one is not, so a
job that ran on a partial input is never stored while that input could still come.
"""

from __future__ import annotations

from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore
from dlcompat.study.config import parse_config
from dlcompat.study.dag import Job, Plan
from dlcompat.study.progress import ProgressView
from dlcompat.study.runner import RunSummary, execute_plan, make_executor


def test_a_tolerated_failed_upstream_is_handed_over_and_an_untolerated_one_skips(tmp_path):
    plan = Plan(parse_config('name = "tolerated"'))

    def add(name: str, fault: str, deps: dict[str, str], tolerates: tuple[str, ...] = ()) -> str:
        cell = {"dataset": "none", "model": name, "framework": "fault", "seed": 0, "target": "fault", "variant": ""}
        return plan.add(Job("fault", "main", {"cell": cell, "fault": fault, "name": name}, deps, name,
                            tolerates=tolerates))

    broken, fine = add("broken", "raise", {}), add("fine", "none", {})
    tolerant = add("tolerant", "none", {"up": broken, "other": fine}, tolerates=("up",))
    strict = add("strict", "none", {"up": broken})
    wrong_role = add("wrong-role", "none", {"up": fine, "other": broken}, tolerates=("up",))
    after_skipped = add("after-skipped", "none", {"up": strict}, tolerates=("up",))

    store = ResultStore(f"sqlite:///{tmp_path / 'results.sqlite'}")
    summary = RunSummary(run_id=plan.run_id, out_dir=str(tmp_path), database=store.url)
    store.start_run(plan.run_id, "tolerated", "", {}, list(plan.jobs))
    with make_executor("inline", 1, tmp_path / "logs") as executor:
        execute_plan(plan, store, ArtifactStore(tmp_path / "artifacts"), executor, ProgressView(enabled=False),
                     summary)

    assert store.job(broken)["status"] == "failed" and store.job(fine)["status"] == "ok"
    ran = store.job(tolerant)
    assert ran["status"] == "ok"
    upstream = ran["outputs"]["upstream"]
    assert upstream["status"] == "failed" and upstream["label"] == "broken"
    assert "RuntimeError: deliberate failure" in upstream["error"]
    # not tolerated (no role, or another role), or an upstream that was itself skipped: skipped, not stored
    assert [store.job(key) for key in (strict, wrong_role, after_skipped)] == [None, None, None]
    assert summary.skipped == 3 and summary.failed == 1
