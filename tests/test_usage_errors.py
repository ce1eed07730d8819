"""Usage errors are usage errors: exit 2 with click's usage message, and no talk of resuming anything.

An unknown command, an unknown option, a bad option value or a missing argument is the user's typo:
`dlcompat` says how it is used and exits 2. "Run the same command again to resume" belongs only to a
`run` that stopped; a crash of any other command says what failed, exits 1, and promises nothing.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest

from dlcompat import cli


def dlcompat(*args: str) -> tuple[int, str, str]:
    """`dlcompat ARGS` in this process through its entry point: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return int(info.value.code or 0), out.getvalue(), err.getvalue()


def assert_usage_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    assert "Usage: dlcompat" in stderr and "--help" in stderr, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr
    assert "resume" not in stderr and "dlcompat failed" not in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(("args", "fragments"), [
    (["no-such-command"], ["No such command 'no-such-command'"]),
    (["--bogus"], ["No such option: --bogus"]),
    (["run", "--bogus"], ["Usage: dlcompat run", "No such option: --bogus"]),
    (["run", "--executor", "slurm"], ["Usage: dlcompat run", "slurm"]),
    (["run", "--jobs", "0"], ["Usage: dlcompat run", "--jobs"]),
    (["export", "--format", "xlsx"], ["Usage: dlcompat export", "xlsx"]),
    (["status", "a", "b"], ["Usage: dlcompat status", "unexpected extra argument"]),
    (["compare"], ["Usage: dlcompat compare", "Missing argument"]),
    (["env", "nope"], ["Usage: dlcompat env", "No such command 'nope'"]),
])
def test_unknown_commands_options_and_values_exit_2_with_the_usage(args, fragments):
    code, _, stderr = dlcompat(*args)
    assert_usage_error(code, stderr, *fragments)


def test_the_installed_command_says_the_same():
    result = subprocess.run([sys.executable, "-m", "dlcompat.cli", "no-such-command"], capture_output=True,
                            text=True, timeout=300)
    assert_usage_error(result.returncode, result.stderr, "No such command 'no-such-command'")


def test_help_exits_0_and_no_arguments_show_the_help():
    code, stdout, _ = dlcompat("--help")
    assert code == 0 and "Usage: dlcompat" in stdout and "run" in stdout
    code, stdout, stderr = dlcompat()
    assert code == 2 and "Usage: dlcompat" in stdout + stderr and "dlcompat failed" not in stdout + stderr


def test_an_input_error_is_still_one_sentence_with_exit_2(tmp_path):
    code, _, stderr = dlcompat("report", "--out", str(tmp_path))
    assert code == 2 and stderr.startswith("error: no results database") and stderr.count("\n") == 1


def test_a_crash_outside_run_promises_no_resume(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not a database" * 100)
    code, _, stderr = dlcompat("status", "--out", str(tmp_path))
    assert code == 1 and stderr.startswith("dlcompat failed: ") and "DLCOMPAT_DEBUG" in stderr
    assert "resume" not in stderr and stderr.count("\n") == 1


def test_a_crash_of_run_says_the_study_resumes(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('models = ["lenet1"]\n[train]\nepochs = 1\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is not a database" * 100)
    code, _, stderr = dlcompat("run", str(config), "--out", str(out), "--quiet")
    assert code == 1 and "dlcompat failed: " in stderr and "run the same command again to resume" in stderr
