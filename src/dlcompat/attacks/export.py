"""Export a run's adversarial sets for use outside dlcompat: one `.npz` per set, and a manifest.

Each file is the set exactly as stored (see `dlcompat.attacks.adversarial_set`: images float32 NHWC
in [0, 1], labels, the attacked model's predictions, the clean images, metadata as JSON), named by
what it holds: ``<dataset>_<model>_<framework>_seed<seed>_<variant>.npz``. `manifest.csv` lists
them with their settings and the attack's success rate, so a reader needs neither the database nor
dlcompat to pick a set.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from typing import Any

from dlcompat.errors import UserError

MANIFEST_COLUMNS: tuple[str, ...] = ("file", "dataset", "model", "framework", "seed", "attack", "variant", "epsilon",
                                     "images", "attack_success_rate", "robust_accuracy", "sha256")


def slug(text: str) -> str:
    """A file-name-safe form of a variant: `fgsm eps=0.1` -> `fgsm-eps0.1`."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text.replace("=", "")).strip("-") or "set"


def export_adversarial_sets(store: Any, artifacts: Any, run_id: str | None, output: Path) -> list[dict[str, Any]]:
    """Copy every adversarial set of the run into `output` with a manifest; return the manifest's rows."""
    run = store.run(run_id)
    figures: dict[tuple[str, str], dict[str, float | None]] = {}
    for row in store.rows(run["id"]):
        if row["kind"] == "attack" and row["metric"] in ("attack_success_rate", "robust_accuracy"):
            figures.setdefault((row["artifact"], row["variant"]), {})[row["metric"]] = row["value"]
    rows: list[dict[str, Any]] = []
    output.mkdir(parents=True, exist_ok=True)
    for key in run["job_keys"]:
        job = store.job(key)
        if job is None or job["kind"] != "attack" or job["status"] != "ok":
            continue
        cell = job["params"]["cell"]
        for entry in job["outputs"].get("sets", []):
            stem = f"{cell['dataset']}_{cell['model']}_{cell['framework']}_seed{cell['seed']}"
            name = f"{stem}_{slug(entry['variant'])}.npz"
            shutil.copyfile(artifacts.path(entry["artifact"]), output / name)
            found = figures.get((entry["artifact"], entry["variant"]), {})
            rows.append({"file": name, "dataset": cell["dataset"], "model": cell["model"],
                         "framework": cell["framework"], "seed": cell["seed"], "attack": entry["attack"],
                         "variant": entry["variant"], "epsilon": "" if entry["epsilon"] is None else entry["epsilon"],
                         "images": job["outputs"].get("images", ""),
                         "attack_success_rate": found.get("attack_success_rate", ""),
                         "robust_accuracy": found.get("robust_accuracy", ""),
                         "sha256": Path(entry["artifact"]).parent.name + Path(entry["artifact"]).name.split(".")[0]})
    if not rows:
        raise UserError(f"run {run['id']} has no adversarial sets: give its config an [attacks] section with "
                        "`methods`, run it, and export again")
    with open(output / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows
