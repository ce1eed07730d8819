"""The live progress display (rich): jobs done of total, how many run and failed, the time left, each running
job with its epochs while it trains, and its retries after an infrastructure fault.

The runner drives it, so it is the same on every executor (inline, local processes, Ray).
"""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class EtaColumn(ProgressColumn):
    """`eta 0:01:05` once a task's rate is known (the study's jobs, a job's epochs); blank before."""

    def render(self, task: Task) -> Text:
        remaining = task.time_remaining
        if task.total is None or remaining is None or task.finished:
            return Text("")
        minutes, seconds = divmod(int(remaining), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"eta {hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


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
            EtaColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._overall: TaskID | None = None
        self.counts: dict[str, int] = {}
        self.running = 0
        self._cached_note = ""

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
        self._cached_note = f"{cached} from the store" if cached else ""
        self._overall = self.progress.add_task("jobs", total=total, completed=cached, note=self._cached_note)

    def overall_note(self) -> str:
        """`3 running, 12 ok, 1 failed, …`: what the overall line says after its count."""
        parts = [f"{self.running} running"] + [f"{n} {s}" for s, n in sorted(self.counts.items())]
        return ", ".join(p for p in [*parts, self._cached_note] if p)

    def job_started(self, label: str) -> TaskID:
        with self._lock:
            self.running += 1
            if self._overall is not None:
                self.progress.update(self._overall, note=self.overall_note())
            return self.progress.add_task(f"  {label}", total=None, note="")

    def job_event(self, task: TaskID, event: dict[str, Any]) -> None:
        """An event from a running job: epochs advance its bar; a retry after an infrastructure fault shows."""
        with self._lock:
            if "epoch" in event and "epochs" in event:
                note = f"loss {event['loss']:.4f}" if "loss" in event else ""
                self.progress.update(task, total=event["epochs"], completed=event["epoch"], note=note)
            elif "retry" in event:
                reason = str(event.get("reason", "")).split(";")[0][:80]
                self.progress.update(task, total=None, completed=0,
                                     note=f"retry {event['retry']}/{event.get('retries', '?')} after: {reason}")

    def job_done(self, label: str, status: str) -> None:
        with self._lock:
            self.counts[status] = self.counts.get(status, 0) + 1
            for task in self.progress.tasks:
                if task.description == f"  {label}":
                    self.progress.remove_task(task.id)
                    self.running -= 1
                    break
            if self._overall is not None:
                self.progress.update(self._overall, advance=1, note=self.overall_note())
