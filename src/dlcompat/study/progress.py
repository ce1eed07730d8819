"""The live progress display (rich): jobs done of total, each running job, and its epochs while it trains."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class ProgressView:
    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self._lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._overall: TaskID | None = None
        self.counts: dict[str, int] = {}

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def say(self, message: str) -> None:
        """A one-line notice (e.g. a toolchain environment being built)."""
        if self.enabled:
            self.console.print(message, highlight=False, markup=False)

    def start(self, total: int, cached: int) -> None:
        note = f"{cached} already in the store" if cached else ""
        self._overall = self.progress.add_task("jobs", total=total, completed=cached, note=note)

    def job_started(self, label: str) -> TaskID:
        with self._lock:
            return self.progress.add_task(f"  {label}", total=None, note="")

    def job_event(self, task: TaskID, event: dict[str, Any]) -> None:
        """An event from a running job: epochs advance its bar."""
        with self._lock:
            if "epoch" in event and "epochs" in event:
                note = f"loss {event['loss']:.4f}" if "loss" in event else ""
                self.progress.update(task, total=event["epochs"], completed=event["epoch"], note=note)

    def job_done(self, label: str, status: str) -> None:
        with self._lock:
            self.counts[status] = self.counts.get(status, 0) + 1
            for task in self.progress.tasks:
                if task.description == f"  {label}":
                    self.progress.remove_task(task.id)
                    break
            if self._overall is not None:
                notes = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
                self.progress.update(self._overall, advance=1, note=notes)
