"""The browser runtimes' loader: a model loaded in a page of headless Chromium, and that page's session.

`PageLoader` lays out the model in a temporary folder, starts the static server (`server.py`, loopback
only) and the browser (`chromium.py`; a job worker's kept one, `chromium.keeping_browsers`), opens the
page (`page/`) and has it load the model with the asked backend. A load that fails ends what it
started; a backend the browser does not offer (WebGPU without an adapter) raises `Unavailable` with
the page's reason, and keeps a kept browser for the next job, which is answered without a page.
`PageSession.close` always ends the work folder, and the server and the browser unless they are kept and
the browser still healthy (then only the job's page closes, a failed call's too).

A job worker keeps one static server (`kept_server`) beside its browsers: every page of the worker comes from
one origin, where the page and the runtime files are cacheable (never the model or the inputs), so each job's
page loads them as a site's returning visitor would, from the browser's cache with their compiled code.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dlcompat.envs.registry import PROJECT_ROOT
from dlcompat.frameworks.base import Unavailable
from dlcompat.runtimes.base import Loader
from dlcompat.runtimes.browser.chromium import NO_GPU_ARGS, Chromium, keeping_browsers, kept_chromium, release_chromium
from dlcompat.runtimes.browser.server import StaticServer

#: software GPUs: a WebGL or WebGPU figure on one of these is the CPU emulating a GPU, and is labelled so
SOFTWARE_GPUS = ("swiftshader", "llvmpipe", "softpipe", "software")

#: URL prefix -> folder under web/node_modules: the only runtime files the page may load
RUNTIME_ROUTES = {
    "/ort": "onnxruntime-web/dist",
    "/tfjs": "@tensorflow/tfjs/dist",
    "/tfjs-wasm": "@tensorflow/tfjs-backend-wasm/dist",
}


def web_dir() -> Path:
    """The folder holding package.json and node_modules (web/ in the checkout; DLCOMPAT_WEB_DIR overrides)."""
    return Path(os.environ.get("DLCOMPAT_WEB_DIR", PROJECT_ROOT / "web"))


def page_dir() -> Path:
    return Path(str(resources.files("dlcompat.runtimes.browser") / "page"))


def runtime_routes() -> dict[str, Path]:
    modules = web_dir() / "node_modules"
    routes = {prefix: modules / folder for prefix, folder in RUNTIME_ROUTES.items()}
    missing = [str(path) for path in routes.values() if not path.is_dir()]
    if missing:
        raise Unavailable(f"the browser runtimes are not installed ({', '.join(missing)} missing): run `make setup` "
                          f"(it runs `npm ci` in {web_dir()})")
    return routes


#: a job worker's kept static server (`kept_server`)
_KEPT_SERVER: list[StaticServer] = []


def kept_server(routes: dict[str, Path]) -> StaticServer:
    """This process's long-lived server of the page and the runtime files (cacheable), started on first use;
    each job mounts its model and input folders on it (`/model`, `/data`)."""
    if not _KEPT_SERVER:
        server = StaticServer({"/": page_dir(), **routes}, cacheable=("/", *RUNTIME_ROUTES)).start()
        atexit.register(server.close)
        _KEPT_SERVER.append(server)
    return _KEPT_SERVER[0]


@dataclass
class PageSession:
    """A model loaded in a page: the work folder, server, browser and page, and what the page reported."""

    runtime: str
    variant: str
    call_timeout_s: float
    workdir: Path | None = None
    server: StaticServer | None = None
    chromium: Chromium | None = None
    page: Any = None
    #: the browser and the server are this worker's kept ones (`chromium.keeping_browsers`, `kept_server`)
    kept: bool = False
    browser_reused: bool = False
    #: a call or the load failed: the runner is not reused (a kept browser stays while it is healthy)
    failed: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    browser_start_s: float = 0.0
    browser_version: str = ""
    served_model_bytes: int = 0

    def call(self, function: str, *args: Any, what: str = "") -> Any:
        """Call `dlcompat.<function>(...args)` in the page and await it; the browser is killed past the time limit."""
        from playwright.sync_api import Error as PlaywrightError

        if self.chromium is None or self.page is None:
            raise RuntimeError(f"{self.runtime} runner is not active: call activate() first")
        script = f"(args) => window.dlcompat.{function}(...args)"
        try:
            with self.chromium.deadline(self.call_timeout_s):
                return self.page.evaluate(script, list(args))
        except PlaywrightError as exc:
            self.failed = True  # the page's state is unknown now: this session is not reused (its context is closed)
            if self.chromium.killed_by_watchdog:
                raise TimeoutError(f"the page did not finish {what or function} within {self.call_timeout_s:g} s: "
                                   "the browser was killed") from None
            raise RuntimeError(f"{self.runtime} {self.variant} in the page, {what or function}: "
                               f"{_first_line(exc)}") from None

    def unavailable(self, reason: str) -> Unavailable:
        assert self.chromium is not None
        return Unavailable(f"{self.runtime} {self.variant} in Chromium {self.chromium.version}: {reason}")

    def close(self) -> None:
        """End the server, remove the work folder and end the browser, whatever state they are in; a kept
        browser only closes this job's page (if it opened one) while it is healthy: a page's error (a failed
        call) dies with its page, a browser cut by the watchdog or crashed is ended; a kept server unmounts the
        job's folders."""
        chromium, server, workdir, page = self.chromium, self.server, self.workdir, self.page
        self.chromium = self.server = self.workdir = self.page = None
        try:
            if chromium is not None and self.kept and chromium.healthy():
                try:
                    if page is not None:
                        page.close()
                except Exception:  # a page that will not close: the browser goes too
                    release_chromium(chromium)
            elif chromium is not None and self.kept:
                release_chromium(chromium)
            elif chromium is not None:
                chromium.close()
        finally:
            try:
                if server is not None and self.kept:
                    server.mount("/model", None)
                    server.mount("/data", None)
                elif server is not None:
                    server.close()
            finally:
                if workdir is not None:
                    shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class PageLoader(Loader):
    """A page of headless Chromium holding the model that `prepare_model` lays out, loaded by `runtime` with
    `backend` on `threads` threads (a GPU browser where `gpu`)."""

    runtime: str
    variant: str
    backend: str
    gpu: bool
    threads: int
    call_timeout_s: float
    #: lays the artifact out in a folder (served as /model/) and returns the page's model spec fields
    prepare_model: Callable[[Path], dict[str, Any]]

    def __call__(self) -> PageSession:
        session = PageSession(self.runtime, self.variant, self.call_timeout_s)
        try:
            self._load(session)
        except Unavailable:  # the page answered (a backend the browser lacks): the browser is fine to keep
            session.close()
            raise
        except BaseException:
            session.failed = True
            session.close()
            raise
        return session

    def _load(self, session: PageSession) -> None:
        routes = runtime_routes()
        session.workdir = workdir = Path(tempfile.mkdtemp(prefix=f"dlcompat-{self.runtime}-"))
        (workdir / "model").mkdir()
        (workdir / "data").mkdir()
        model = self.prepare_model(workdir / "model")
        start = time.perf_counter()
        args = () if self.gpu else NO_GPU_ARGS
        if keeping_browsers():  # a job worker: one server and browser for all its jobs, a fresh page per job
            session.kept = True
            session.server = server = kept_server(routes)
            server.mount("/model", workdir / "model")
            server.mount("/data", workdir / "data")
            session.chromium, session.browser_reused = kept_chromium(args)
        else:
            session.server = server = StaticServer({"/": page_dir(), **routes, "/model": workdir / "model",
                                                    "/data": workdir / "data"})
            server.start()
            session.chromium = Chromium(args)  # held before it starts: close ends it
            session.chromium.start()
        chromium = session.chromium
        lacking = chromium.lacks.get((self.runtime, self.backend))
        if lacking:  # this browser's page said so for an earlier job: the same answer, without a page
            raise session.unavailable(lacking)
        session.page = page = chromium.new_page()
        page.set_default_timeout(self.call_timeout_s * 1000)
        page.goto(f"{server.url}/index.html", wait_until="load")
        page.wait_for_function("window.dlcompatReady === true")
        session.browser_start_s = time.perf_counter() - start
        session.browser_version = chromium.version
        server.reset_counts()
        spec = {"runtime": self.runtime, "backend": self.backend, "threads": self.threads, **model}
        facts = session.call("load", spec, what=f"loading the model with {self.runtime} {self.variant}")
        if "unavailable" in facts:
            if facts.get("scope") == "browser":
                chromium.lacks[(self.runtime, self.backend)] = facts["unavailable"]
            raise session.unavailable(facts["unavailable"])
        session.served_model_bytes = server.bytes_served("/model")
        gpu = str(facts.get("gpu") or "")
        session.facts = {**facts, "software_gpu": any(s in gpu.lower() for s in SOFTWARE_GPUS) if gpu else None}


def _first_line(exc: BaseException) -> str:
    """The page's own error message: the first line of Playwright's text, without its "Page.evaluate: " prefix."""
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip() and not line.startswith("="):
            return line.strip().removeprefix("Page.evaluate: ")
    return text or type(exc).__name__
