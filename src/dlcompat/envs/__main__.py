"""`python -m dlcompat.envs [NAME ...]`: build toolchain environments with nothing but the standard library.

`make setup` runs it with the system's Python while pip builds the main environment beside it, so the
first `make run` does not build them one after the other. Every environment but `main` by default (the
quick study uses them all); a failure is reported and left to the study, which records the framework or
converter as unavailable, or says what to install. Exit 0 always, unless no name is known.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dlcompat.envs.registry import env_names, get_env, sync_envs
from dlcompat.errors import UserError


def main(argv: list[str]) -> int:
    log = Path(argv[argv.index("--log") + 1]) if "--log" in argv else None
    names = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--log")]
    try:
        names = [get_env(n).name for n in names] or [n for n in env_names() if n != "main"]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = sync_envs(names, log, lambda line: print(line, file=sys.stderr, flush=True))
    for name, error in failed.items():
        print(f"  {name} was not built: the study will say so ({error})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
