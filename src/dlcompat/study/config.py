"""The study config: TOML validated with pydantic. Every error names the key and says what is allowed."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dlcompat.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Strict):
    limit_train: Annotated[int, Field(ge=1)] | None = None
    limit_test: Annotated[int, Field(ge=1)] | None = None
    val_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    split_seed: int = 0


class TrainSettingsConfig(_Strict):
    epochs: Annotated[int, Field(ge=1)] = 10
    batch_size: Annotated[int, Field(ge=1)] = 32
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: Annotated[float, Field(gt=0)] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Field(ge=0)] = 0.0


class LatencySettings(_Strict):
    batch_size: Annotated[int, Field(ge=1)] = 1
    warmup: Annotated[int, Field(ge=0)] = 10
    min_repeats: Annotated[int, Field(ge=1)] = 50
    min_time_s: Annotated[float, Field(ge=0)] = 0.2
    max_time_s: Annotated[float, Field(gt=0)] = 10.0


class StudyConfig(_Strict):
    name: str = "custom"
    description: str = ""
    datasets: list[str] = ["digits"]
    models: list[str] = ["lenet1", "lenet5"]
    #: framework names, or ["all"]: every registered framework, those not installed recorded as unavailable
    frameworks: list[str] = ["pytorch"]
    seeds: list[int] = [0]
    #: runtimes every trained model is deployed to, through the converter graph
    runtimes: list[str] = ["onnxruntime"]
    #: migration routes to every other framework: "weights" (canonical weight transfer), "converters"
    migration: list[Literal["weights", "converters"]] = []
    #: converter name -> the variants to run (default: the converter's first variant)
    converters: dict[str, list[str]] = Field(default_factory=lambda: {"torch.onnx": ["dynamo"]})
    data: DataSettings = DataSettings()
    train: TrainSettingsConfig = TrainSettingsConfig()
    latency: LatencySettings = LatencySettings()
    #: train each (dataset, model, framework) twice with its first seed and record whether it is bit-identical
    check_reproducibility: bool = True
    threads: Annotated[int, Field(ge=1)] = 1
    timeout_s: Annotated[float, Field(gt=0)] = 1800.0
    #: resident memory a job's worker may use (MB, its child processes included); past it the worker is
    #: killed and the job recorded as a finding. Also the memory a Ray task asks for. 0: no limit
    memory_limit_mb: Annotated[float, Field(ge=0)] = 0.0
    #: times a job is retried after an infrastructure fault (its worker or node killed from outside);
    #: a job's own failure (an exception, a crash, a time or memory limit) is a finding and never retried
    retries: Annotated[int, Field(ge=0)] = 2
    #: GPUs each training job asks Ray for (train and reproduce jobs; the local executor runs them as is)
    train_gpus: Annotated[float, Field(ge=0)] = 0.0

    @field_validator("datasets", "models", "frameworks", "seeds")
    @classmethod
    def _non_empty(cls, value: list) -> list:
        if not value:
            raise ValueError("must list at least one entry")
        if len(set(value)) != len(value):
            raise ValueError("lists an entry twice")
        return value

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        from dlcompat.data.registry import dataset_names

        return _known(value, dataset_names())

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[str]) -> list[str]:
        from dlcompat.zoo.registry import model_names

        return _known(value, model_names())

    @field_validator("frameworks")
    @classmethod
    def _known_frameworks(cls, value: list[str]) -> list[str]:
        from dlcompat.frameworks.registry import framework_names

        if "all" in value and len(value) > 1:
            raise ValueError('"all" stands alone: list frameworks by name, or ["all"] for every one')
        return _known(value, [*framework_names(), "all"])

    @field_validator("runtimes")
    @classmethod
    def _known_runtimes(cls, value: list[str]) -> list[str]:
        from dlcompat.runtimes.base import runtime_names

        return _known(value, runtime_names())

    @field_validator("converters")
    @classmethod
    def _known_converters(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        from dlcompat.converters.graph import converter, converter_names

        _known(list(value), converter_names())
        for name, variants in value.items():
            allowed = converter(name).variants
            for variant in variants:
                if variant not in allowed:
                    raise ValueError(f"{name}: unknown variant {variant!r}; choose from {', '.join(allowed)}")
        return value


def _known(values: list[str], known: list[str]) -> list[str]:
    for value in values:
        if value not in known:
            raise ValueError(f"unknown {value!r}; choose from {', '.join(known)}")
    return values


def _explain(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "is not a known setting (check its spelling)"
    return f"{source}: `{key}` {message}"


def parse_config(text: str, source: str = "config") -> StudyConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML ({exc}): fix the syntax and run again") from exc
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from exc


def load_config(path: Path) -> StudyConfig:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass a TOML file or use --preset")
    return parse_config(path.read_text(), str(path))


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files("dlcompat.study.presets").iterdir()
                  if p.name.endswith(".toml"))


def preset_text(name: str) -> str:
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(preset_names())}")
    return resources.files("dlcompat.study.presets").joinpath(f"{name}.toml").read_text()


def load_preset(name: str) -> StudyConfig:
    return parse_config(preset_text(name), f"preset {name}")


def config_to_toml(config: StudyConfig) -> str:
    """A readable TOML rendering of a validated config (for the report and the run record)."""
    lines: list[str] = []
    nested: dict[str, dict] = {}
    for key, value in config.model_dump().items():
        if isinstance(value, dict):
            nested[key] = value
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for section, values in nested.items():
        lines.append(f"\n[{section}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
