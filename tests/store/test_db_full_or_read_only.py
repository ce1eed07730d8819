"""A results database that cannot be written (a full disk, a read-only file) is one sentence, not a traceback."""

from __future__ import annotations

import pytest

from dlcompat.errors import OutputError
from dlcompat.store.db import ResultStore


def test_a_read_only_sqlite_database_is_one_sentence_and_keeps_what_it_had(tmp_path):
    path = tmp_path / "results.sqlite"
    ResultStore(f"sqlite:///{path}").start_run("run1", "study", "", {}, ["k1"])
    read_only = ResultStore(f"sqlite:///file:{path}?mode=ro&uri=true")  # SQLite's own read-only open
    with pytest.raises(OutputError, match=r"cannot be written \(attempt to write a readonly database\)") as caught:
        read_only.start_run("run2", "study", "", {}, ["k2"])
    assert "\n" not in str(caught.value) and "run the same command again" in str(caught.value)
    assert read_only.run("run1")["job_keys"] == ["k1"]  # what was there is intact
