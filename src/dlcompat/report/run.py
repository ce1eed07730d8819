"""The run's info as the report reads it: whatever shape it was given, as a dict of the expected shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    for method in ("model_dump", "to_dict", "_asdict"):
        if callable(getattr(value, method, None)):
            return dict(getattr(value, method)())
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    return None


def toolchains(job_environments: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(toolchain environment -> its Python, platform, interpreter and every package its jobs recorded;
    job key -> its environment), from what each job recorded (a job records the packages it imported)."""
    merged: dict[str, dict[str, Any]] = {}
    job_env: dict[str, str] = {}
    for key, entry in job_environments.items():
        if not isinstance(entry, list | tuple) or len(entry) != 2 or not isinstance(entry[1], Mapping):
            continue
        env, recorded = str(entry[0]), entry[1]
        job_env[str(key)] = env
        info = merged.setdefault(env, {k: v for k, v in recorded.items() if k in ("python", "platform", "executable")}
                                 | {"packages": {}})
        packages = recorded.get("packages") or {}
        for name, version in (packages.items() if isinstance(packages, Mapping) else ()):
            known = info["packages"].get(name)
            if known is None:
                info["packages"][name] = str(version)
            elif str(version) not in known.split(" / "):  # two jobs of one environment saw different versions
                info["packages"][name] = f"{known} / {version}"
    for info in merged.values():
        info["packages"] = dict(sorted(info["packages"].items(), key=lambda item: item[0].lower()))
    return merged, job_env


def run_info(run: Any) -> dict[str, Any]:
    """The run's info as a dict of the expected shapes, whatever it was given.

    Accepts a dict, a pydantic model, a dataclass or None; `environment`, its `packages` and `jobs`
    become dicts, `seeds` a list and `config_toml` text, so nothing downstream trips on a surprise.
    `job_environments` (job key -> (toolchain environment, what the job recorded), as the store gives it)
    becomes `toolchains` (each environment's Python and every package its jobs recorded) and `job_env`.
    """
    info = _as_dict(run) or {}
    environment = _as_dict(info.get("environment"))
    if environment is None:
        environment = {"description": str(info.get("environment"))}
    packages = environment.get("packages")
    if isinstance(packages, list | tuple):
        packages = {str(name): "" for name in packages}
    environment["packages"] = _as_dict(packages) or {}
    info["environment"] = environment
    info["jobs"] = _as_dict(info.get("jobs")) or {}
    seeds = info.get("seeds")
    info["seeds"] = [] if seeds is None else list(seeds) if isinstance(seeds, list | tuple) else [seeds]
    config = info.get("config_toml")
    info["config_toml"] = "" if config is None else str(config)
    if info.get("job_environments") and not info.get("toolchains"):
        info["toolchains"], info["job_env"] = toolchains(info["job_environments"])
    return info


__all__ = ["run_info", "toolchains"]
