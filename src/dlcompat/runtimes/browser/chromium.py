"""One headless Chromium: started in its own process group, driven over CDP by Playwright, always ended.

We start the browser ourselves (Debian's `chromium`, never a browser that Playwright downloads) and
connect Playwright to it over the DevTools protocol, so that we own its process and can end it
whatever happens:

- `close()` disconnects Playwright, then ends the browser's whole process group (SIGTERM, then SIGKILL)
  and removes its temporary profile; it runs in a `finally`, and is safe to call twice.
- A watchdog (`deadline`) kills the process group when a page does not answer in time, which is what
  makes a hung `page.evaluate` return (Playwright's evaluate has no time limit of its own).
- The browser is started with the parent-death signal set to SIGKILL, so when the process that
  started it dies without running its `finally` (a job killed at its time limit), the kernel kills
  the browser, and the browser's own children follow it.

The DevTools endpoint listens on 127.0.0.1 only (Chromium's default for `--remote-debugging-port`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlcompat.frameworks.base import Unavailable

#: where Debian (and `scripts/system-deps.sh`) puts it; DLCOMPAT_CHROMIUM overrides
DEFAULT_EXECUTABLE = "/usr/bin/chromium"

#: the switches every launch gets: headless, no sandbox (containers), nothing talking to the network
BASE_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--disable-crash-reporter",
)
#: added for CPU backends: no GPU process (WebGL still exists, on Chromium's software rasterizer)
NO_GPU_ARGS = ("--disable-gpu",)

#: temporary profiles are named <prefix><pid of the process that started the browser>-<random>
PROFILE_PREFIX = "dlcompat-chromium-"

_PR_SET_PDEATHSIG = 1
#: deaths by these signals, not sent by us, come from outside (the OOM killer, an operator): not the job's fault
EXTERNAL_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
#: how browsers of this process that were killed from outside ended (see `killed_from_outside`)
_KILLED_FROM_OUTSIDE: list[str] = []
_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _make_die_with_parent() -> Any:
    prctl = _libc().prctl  # looked up before the fork: the child only calls it

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return die_with_parent


def chromium_executable() -> str:
    """The browser to run, or Unavailable with what to install."""
    wanted = os.environ.get("DLCOMPAT_CHROMIUM") or DEFAULT_EXECUTABLE
    found = wanted if os.access(wanted, os.X_OK) else shutil.which("chromium")
    if not found:
        raise Unavailable(f"no Chromium at {wanted}: install Debian's `chromium` (`make setup` does, through "
                          "scripts/system-deps.sh) or point DLCOMPAT_CHROMIUM at one")
    return found


class Chromium:
    """A headless Chromium process and a Playwright connection to it. `start()`, then `close()` in a `finally`."""

    def __init__(self, args: tuple[str, ...] = (), start_timeout_s: float = 60.0, driver: Any = None) -> None:
        self.args = (*BASE_ARGS, *args)
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile: Path | None = None
        self.playwright: Any = None
        #: a Playwright driver started by someone else (a job worker's, shared by its kept browsers): not stopped
        #: by `close`; without one the browser starts its own and stops it
        self.shared_driver = driver
        self.browser: Any = None
        self.version = ""
        self.killed_by_watchdog = False

    @property
    def lacks(self) -> dict[tuple[str, str], str]:
        """Backends a page found missing in a browser of this executable and these switches, (runtime, backend) ->
        the page's reason (no WebGPU adapter, no WebGL): a property of the browser and the machine, not of a model
        or of one browser process, so later jobs in this process are answered without a page (`runner`)."""
        return _LACKS.setdefault((chromium_executable(), *self.args), {})

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Chromium:
        """Start the browser and connect to it; on any failure, end whatever was started and raise."""
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> Chromium:
        from playwright.sync_api import sync_playwright

        executable = chromium_executable()
        sweep_stale_profiles()
        self.profile = Path(tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-"))
        log = open(self.profile.parent / f"{self.profile.name}.log", "wb")  # noqa: SIM115  (closed below)
        try:
            self.proc = subprocess.Popen(
                [executable, *self.args, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                 "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_make_die_with_parent(),  # only prctl runs in the child
            )
        finally:
            log.close()
        # Playwright's driver boots while the browser does (a shared one is already running)
        self.playwright = self.shared_driver or sync_playwright().start()
        endpoint = self._wait_for_endpoint()
        self.browser = self.playwright.chromium.connect_over_cdp(endpoint, timeout=self.start_timeout_s * 1000)
        self.version = self.browser.version
        return self

    def _wait_for_endpoint(self) -> str:
        assert self.proc is not None and self.profile is not None
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode} while starting: "
                                   f"{self._log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                lines = marker.read_text().split()
                if len(lines) >= 2:
                    return f"http://127.0.0.1:{int(lines[0])}"
            time.sleep(0.02)
        raise TimeoutError(f"chromium did not open its DevTools port within {self.start_timeout_s:g} s: "
                           f"{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.profile is None:
            return ""
        log = self.profile.parent / f"{self.profile.name}.log"
        with contextlib.suppress(OSError):
            return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
        return ""

    def new_page(self, isolated: bool = False) -> Any:
        """A page in the browser's default context, or, `isolated`, in a context of its own (no cache,
        storage or service worker shared with earlier pages): close it with `page.context.close()`."""
        if isolated:
            return self.browser.new_context().new_page()
        context = self.browser.contexts[0] if self.browser.contexts else self.browser.new_context()
        return context.new_page()

    def healthy(self) -> bool:
        """Started, still running, connected, and never cut by the watchdog."""
        return (self.proc is not None and self.proc.poll() is None and self.browser is not None
                and not self.killed_by_watchdog and self.browser.is_connected())

    def kill(self) -> None:
        """SIGKILL the browser's whole process group now (the watchdog's way; `close` is the polite one)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Kill the browser if the block has not ended after `seconds` (then the block's page call raises)."""
        def expire() -> None:
            self.killed_by_watchdog = True
            self.kill()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def close(self) -> None:
        """Disconnect, end the process group (SIGTERM, then SIGKILL after 2 s), remove the profile; idempotent."""
        browser, playwright, self.browser, self.playwright = self.browser, self.playwright, None, None
        try:
            if browser is not None and not self.killed_by_watchdog:
                with contextlib.suppress(Exception):
                    browser.close()
            if playwright is not None and playwright is not self.shared_driver:
                with contextlib.suppress(Exception):
                    playwright.stop()
        finally:
            self._end_group()
            if self.profile is not None:
                shutil.rmtree(self.profile, ignore_errors=True)
                (self.profile.parent / f"{self.profile.name}.log").unlink(missing_ok=True)
                self.profile = None

    def _note_death(self, code: int | None, sent: signal.Signals | None) -> None:
        """`code`: how the browser ended, `sent`: what we had sent it; a signal from outside is noted
        (`killed_from_outside`)."""
        if code is None or code >= 0 or self.killed_by_watchdog or -code == sent or -code not in EXTERNAL_SIGNALS:
            return
        note = f"chromium (pid {self.pid}) was killed by {signal.Signals(-code).name}"
        if note not in _KILLED_FROM_OUTSIDE:
            _KILLED_FROM_OUTSIDE.append(note)

    def _end_group(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self._note_death(proc.poll(), None)  # gone before we signal it
        for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                code = proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
            if sig == signal.SIGTERM:  # an outside SIGKILL may have landed while it was going
                self._note_death(code, sig)
            if not group_alive(proc.pid):
                break
            # the leader is gone but some of its children linger: give them the same signal's time once more
            deadline = time.monotonic() + wait_s
            while group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not group_alive(proc.pid):
                break

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


#: a worker process's kept browsers, by launch switches (see `kept_chromium`)
_KEPT: dict[tuple[str, ...], Chromium] = {}
#: the worker's one Playwright driver, shared by its kept browsers: the sync API runs one driver per thread,
#: so a second `sync_playwright()` would fail ("Sync API inside the asyncio loop"), but one driver drives many
_DRIVER: list[Any] = []
#: what `Chromium.lacks` remembers, by executable and launch switches
_LACKS: dict[tuple[str, ...], dict[tuple[str, str], str]] = {}
#: holds one entry once `close_kept_browsers` is registered to run at exit
_EXIT_HOOK: list[bool] = []


def keeping_browsers() -> bool:
    """Whether this process keeps its browsers alive across jobs: set for the study's job workers
    (`DLCOMPAT_JOB_WORKER=1`), where every job would otherwise start Chromium and Playwright's driver anew."""
    return os.environ.get("DLCOMPAT_JOB_WORKER") == "1"


def _kept_driver() -> Any:
    if not _DRIVER:
        from playwright.sync_api import sync_playwright

        _DRIVER.append(sync_playwright().start())
    return _DRIVER[0]


def kept_chromium(args: tuple[str, ...]) -> tuple[Chromium, bool]:
    """This process's live browser with launch switches `args`, started if there is none (or it died);
    and whether it was already running. A worker keeps one browser per set of switches (the CPU backends'
    `--disable-gpu` one and the GPU backends' one), all driven by one Playwright driver, so jobs that
    alternate between the two do not restart either. Kept browsers end with the process (`atexit`, and
    the kernel's parent-death signal when the process is killed)."""
    browser = _KEPT.get(args)
    if browser is not None and browser.healthy():
        return browser, True
    if browser is not None:
        release_chromium(browser)
    if not _EXIT_HOOK:
        atexit.register(close_kept_browsers)
        _EXIT_HOOK.append(True)
    browser = Chromium(args, driver=_kept_driver())
    _KEPT[args] = browser  # held before it starts: close_kept_browsers ends a half-started one too
    try:
        browser.start()
    except BaseException:
        release_chromium(browser)
        _stop_driver()  # it may be the driver that failed: the next job starts a fresh one
        raise
    return browser, False


def release_chromium(browser: Chromium) -> None:
    """End `browser` and forget it if it was kept (after a failed job: the next job gets a fresh one)."""
    for args, kept in list(_KEPT.items()):
        if kept is browser:
            del _KEPT[args]
    browser.close()


def close_kept_browsers() -> None:
    """End every kept browser, then the driver they shared."""
    for browser in list(_KEPT.values()):
        release_chromium(browser)
    _stop_driver()


def _stop_driver() -> None:
    if _KEPT:  # another kept browser still uses it
        return
    while _DRIVER:
        with contextlib.suppress(Exception):
            _DRIVER.pop().stop()


def killed_from_outside(clear: bool = False) -> list[str]:
    """How the browsers this process closed since the last `clear` ended, where a signal from outside killed them:
    a job worker turns a job that failed with its browser so killed into an infrastructure fault (retried)."""
    found = list(_KILLED_FROM_OUTSIDE)
    if clear:
        _KILLED_FROM_OUTSIDE.clear()
    return found


def sweep_stale_profiles() -> int:
    """Remove the profiles (and logs) left by processes that died without closing their browser (SIGKILL)."""
    removed = 0
    for entry in Path(tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}*"):
        owner = entry.name[len(PROFILE_PREFIX):].split("-", 1)[0]
        if not owner.isdigit() or _pid_alive(int(owner)):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. Zombies do not count: they run nothing, and the
    init process that inherits them may take a second or two to reap them."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: any member, zombie or not
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False
