"""The study config: TOML validated with pydantic. Every error names the key and says what is allowed."""

from __future__ import annotations

import itertools
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from dlcompat.errors import ConfigError
from dlcompat.study.request import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

#: the longest study name: the results database keeps it in a String(200) column (`dlcompat.store.db.runs`)
MAX_NAME = 200
#: every whole number of a config fits 32 bits (the frameworks' seeds, the results database's INTEGER columns)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: a seed: numpy, torch, TensorFlow and JAX all take these
Seed = Annotated[int, Field(ge=0, le=INT_MAX)]


class _Strict(BaseModel):
    # strict: a TOML string is not a number, nor 1 a boolean; no inf or nan stands for a number
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataSettings(_Strict):
    limit_train: Annotated[int, Field(ge=1)] | None = None
    limit_test: Annotated[int, Field(ge=1)] | None = None
    val_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    split_seed: Seed = 0


class TrainSettingsConfig(_Strict):
    epochs: Annotated[int, Field(ge=1)] = 10
    batch_size: Annotated[int, Field(ge=1)] = 32
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: Annotated[float, Field(gt=0)] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    #: the learning rate per epoch (`dlcompat.frameworks.lr_schedule`), the same in every framework:
    #: "constant"; "step": lr x lr_gamma at each of lr_milestones (epochs, as torch's MultiStepLR);
    #: "cosine": from lr towards 0 over the epochs (torch's CosineAnnealingLR, T_max = epochs)
    lr_schedule: Literal["constant", "step", "cosine"] = "constant"
    lr_milestones: list[Annotated[int, Field(ge=1)]] = []
    lr_gamma: Annotated[float, Field(gt=0)] = 0.1
    #: training-batch augmentation, the same batches in every framework (`dlcompat.data.batching`):
    #: "none", or "crop-flip" (He et al. 2016: 4-pixel zero padding, random crop, random horizontal flip)
    augmentation: Literal["none", "crop-flip"] = "none"
    #: model name -> the settings above that differ for that model, e.g. `[train.per_model.vgg16]` with its own
    #: epochs and schedule (a preset whose models come from papers with different recipes)
    per_model: dict[str, dict[str, Any]] = {}

    @field_validator("per_model")
    @classmethod
    def _overrides_are_settings(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for model, override in value.items():
            if "per_model" in override:
                raise ValueError(f"{model}: per_model does not nest")
            unknown = sorted(set(override) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"{model}: {', '.join(unknown)} is not a known setting (check its spelling)")
        return value

    def for_model(self, model: str) -> dict[str, Any]:
        """The settings `model` trains with: these, with its `per_model` entries in their place (validated)."""
        merged = {**self.model_dump(exclude={"per_model"}), **self.per_model.get(model, {})}
        try:
            return TrainSettingsConfig.model_validate(merged).model_dump(exclude={"per_model"})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = "".join(f".{part}" for part in err["loc"])
            raise ValueError(f"per_model.{model}{key}: {err['msg'].removeprefix('Value error, ')}") from exc

    @field_validator("lr_milestones")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("must be strictly increasing epochs, e.g. [91, 136]")
        return value

    @model_validator(mode="after")
    def _milestones_go_with_the_step_schedule(self) -> TrainSettingsConfig:
        if self.lr_schedule == "step" and not self.lr_milestones:
            raise ValueError('lr_schedule = "step" needs lr_milestones (the epochs at which lr is multiplied '
                             "by lr_gamma)")
        if self.lr_schedule != "step" and self.lr_milestones:
            raise ValueError(f'lr_milestones apply only to lr_schedule = "step", not {self.lr_schedule!r}')
        if self.lr_milestones and self.lr_milestones[-1] >= self.epochs:
            raise ValueError(f"lr_milestones must be below epochs ({self.epochs}): milestone "
                             f"{self.lr_milestones[-1]} would never apply")
        for model in self.per_model:
            self.for_model(model)  # each model's merged settings must hold together too
        return self


class LatencySettings(_Strict):
    """The latency method (`dlcompat.metrics.latency.LatencyMethod`, where the defaults are explained)."""

    batch_size: Annotated[int, Field(ge=1)] = 1
    #: warm-up: at least this many calls and at least this long
    warmup: Annotated[int, Field(ge=0)] = 10
    warmup_time_s: Annotated[float, Field(ge=0)] = 0.1
    #: steady state: at least this many calls and this long, and the median's CI this narrow ...
    min_repeats: Annotated[int, Field(ge=1)] = 100
    min_time_s: Annotated[float, Field(ge=0)] = 0.5
    ci_level: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    max_ci_rel_width: Annotated[float, Field(gt=0)] = 0.05
    #: ... or stop at this (warm-up included) and mark the figure as not converged
    max_time_s: Annotated[float, Field(gt=0)] = 10.0

    @field_validator("max_time_s")
    @classmethod
    def _room_for_the_minimums(cls, value: float, info) -> float:  # info: pydantic.ValidationInfo
        needed = info.data.get("warmup_time_s", 0.0) + info.data.get("min_time_s", 0.0)
        if value < needed:
            raise ValueError(f"must be at least warmup_time_s + min_time_s ({needed:g} s)")
        return value


class AttackSettingsConfig(_Strict):
    """The robustness study: white-box attacks on every natively trained model, transferred to its derived models."""

    #: attacks to run; none by default (the presets name theirs): fgsm, bim, pgd, cw-l2, deepfool, jsma
    methods: list[str] = []
    #: L∞ budgets of FGSM, BIM and PGD on images in [0, 1]; the report draws robust accuracy against them
    epsilons: list[Annotated[float, Field(gt=0, le=1)]] = [0.05, 0.1, 0.2, 0.3]
    #: how many test images are attacked (the first ones of the test split, the same for every model)
    images: Annotated[int, Field(ge=1)] = 100
    batch_size: Annotated[int, Field(ge=1)] = 128
    #: BIM and PGD iterations, and their step as a fraction of ε (default 2.5 / steps, Madry et al. 2018)
    steps: Annotated[int, Field(ge=1)] = 10
    step_fraction: Annotated[float, Field(gt=0)] | None = None
    #: PGD starts from a uniform random point of the ε-ball (seeded); BIM starts from the image
    random_init: bool = True
    cw_confidence: Annotated[float, Field(ge=0)] = 0.0
    cw_learning_rate: Annotated[float, Field(gt=0)] = 0.01
    cw_binary_search_steps: Annotated[int, Field(ge=1)] = 5
    cw_steps: Annotated[int, Field(ge=1)] = 10
    cw_initial_const: Annotated[float, Field(gt=0)] = 1.0
    deepfool_steps: Annotated[int, Field(ge=1)] = 50
    #: DeepFool's overshoot (ART's `epsilon`)
    deepfool_overshoot: Annotated[float, Field(ge=0)] = 0.02
    #: how many of the top classes DeepFool takes gradients of
    deepfool_classes: Annotated[int, Field(ge=2)] = 10
    jsma_theta: Annotated[float, Field(gt=0)] = 1.0
    jsma_gamma: Annotated[float, Field(gt=0, le=1)] = 0.1
    #: run each adversarial set on every model derived from the attacked one (true), on none (false), or only
    #: on those run by the runtimes listed ("onnxruntime", "weights" for weight transfer, "ortweb", ...)
    transfer: bool | list[str] = True

    @field_validator("methods", "epsilons")
    @classmethod
    def _no_repeats(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("lists an entry twice")
        return value

    @field_validator("methods")
    @classmethod
    def _known_attacks(cls, value: list[str]) -> list[str]:
        from dlcompat.attacks.catalog import attack_names

        return _known(value, attack_names())

    @field_validator("transfer")
    @classmethod
    def _known_transfer_runtimes(cls, value: bool | list[str]) -> bool | list[str]:
        if isinstance(value, list):
            from dlcompat.runtimes.base import runtime_names

            return _known(value, runtime_names(include_framework=True))
        return value


class CheckSource(_Strict):
    """A `dlcompat check`: the user's model file and images stand where a study trains and loads its own.

    The hashes make the plan's job keys functions of the files' contents: a changed file is a new check."""

    model: str  # absolute path of the model file
    model_sha256: str
    #: the study's format name of the file ("onnx", "tflite", "tensorflow" for .keras, "pytorch"), and its kind
    format: str
    kind: str
    model_name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
    input_layout: Literal["NCHW", "NHWC"]
    input_shape: list[Annotated[int, Field(ge=1)]]  # (H, W, C)
    num_classes: Annotated[int, Field(ge=1)]
    images: str  # absolute path of the .npz or folder
    images_sha256: str
    resize: bool = False
    labels: str | None = None
    limit: Annotated[int, Field(ge=1)] | None = None
    #: how pixels become the model's input (`dlcompat.data.scaling.SCALES`)
    scale: Literal["0-1", "0-255", "symmetric", "imagenet"] = "0-1"
    #: where the --scale came from: "given" (the user's option) or "default"
    scale_from: Literal["given", "default"] = "default"


class StudyConfig(_Strict):
    #: set by `dlcompat check`: the planner starts from this model file instead of training (`study.check_plan`)
    check: CheckSource | None = None
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)] = "custom"
    description: str = ""
    datasets: list[str] = ["digits"]
    models: list[str] = ["lenet1", "lenet5"]
    #: framework names, or ["all"]: every registered framework, those not installed recorded as unavailable
    frameworks: list[str] = ["pytorch"]
    seeds: list[Seed] = [0]
    #: runtimes every trained model is deployed to, through the converter graph
    runtimes: list[str] = ["onnxruntime"]
    #: migration routes to every other framework: "weights" (canonical weight transfer), "converters"
    migration: list[Literal["weights", "converters"]] = []
    #: converter name -> the variants to run (default: the converter's first variant)
    converters: dict[str, list[str]] = Field(default_factory=lambda: {"torch.onnx": ["dynamo"]})
    #: training images (a seeded sample of the training split) that calibrate full-integer quantization
    calibration_images: Annotated[int, Field(ge=1)] = 100
    data: DataSettings = DataSettings()
    train: TrainSettingsConfig = TrainSettingsConfig()
    latency: LatencySettings = LatencySettings()
    attacks: AttackSettingsConfig = AttackSettingsConfig()
    #: train each (dataset, model, framework) twice with its first seed and record whether it is bit-identical
    check_reproducibility: bool = True
    threads: Annotated[int, Field(ge=1)] = 1
    timeout_s: Annotated[float, Field(gt=0)] = DEFAULT_TIMEOUT_S
    #: resident memory a job's worker may use (MB, its child processes included); past it the worker is
    #: killed and the job recorded as a finding. Also the memory a Ray task asks for. 0: no limit
    memory_limit_mb: Annotated[float, Field(ge=0)] = 0.0
    #: times a job is retried after an infrastructure fault (its worker or node killed from outside);
    #: a job's own failure (an exception, a crash, a time or memory limit) is a finding and never retried
    retries: Annotated[int, Field(ge=0)] = DEFAULT_RETRIES
    #: GPUs each training job asks Ray for (train and reproduce jobs; the local executor runs them as is)
    train_gpus: Annotated[float, Field(ge=0)] = 0.0

    @field_validator("name")
    @classmethod
    def _one_printable_line(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text on one line (no control characters)")
        return value

    @field_validator("datasets", "models", "frameworks", "seeds")
    @classmethod
    def _non_empty(cls, value: list, info: ValidationInfo) -> list:
        if not value and info.data.get("check") is None:  # a check trains nothing: its lists may be empty
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

    @model_validator(mode="after")
    def _per_model_settings_name_the_studys_models(self) -> StudyConfig:
        strangers = sorted(set(self.train.per_model) - set(self.models))
        if strangers:
            raise ValueError(f"train.per_model names {', '.join(strangers)}, which the study does not train "
                             f"(models = {self.models})")
        return self

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
            shown = repr(value) if len(value) <= 60 else f"{value[:40]!r}… ({len(value)} characters)"
            raise ValueError(f"unknown {shown}; choose from {', '.join(known)}")
    return values


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _quote(text: str) -> str:
    """`text` as a TOML basic string: printable characters as they are, every other one escaped."""
    escaped = "".join(c if c.isprintable() and c not in '"\\' else
                      {'"': '\\"', "\\": "\\\\"}.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x10000 else
                                                            f"\\U{ord(c):08x}") for c in text)
    return f'"{escaped}"'


def key_text(path: list[str | int] | tuple[str | int, ...]) -> str:
    """A key path as TOML writes it (`train.epochs`, `converters."torch.onnx"`; list items by index)."""
    return ".".join(str(p) if isinstance(p, int) or _BARE_KEY.fullmatch(p) else _quote(p) for p in path)


def _input_path(loc: tuple[str | int, ...], data: Any) -> list[str | int]:
    """The part of a pydantic error location that is in the input (not a union member's name)."""
    path: list[str | int] = []
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        if not (in_dict or (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))):
            break
        data = data[part]
        path.append(part)
    return path


def _explain(exc: ValidationError, source: str, data: Any) -> str:
    err = exc.errors()[0]
    key = key_text(_input_path(err["loc"], data)) or "(top level)"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "is not a known setting (check its spelling)"
    return f"{source}: `{key}` {message}"


def _check_values(data: dict[str, Any], source: str) -> None:
    """What the schema lets through but no study can hold: numbers beyond 32 bits, NUL characters."""
    stack: list[tuple[list[str | int], Any]] = [([], data)]
    while stack:  # not recursive: a hostile file may nest thousands of tables
        path, value = stack.pop()
        if isinstance(value, dict):
            stack += [([*path, k], v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [([*path, i], v) for i, v in enumerate(value)]
        elif isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
            raise ConfigError(f"{source}: `{key_text(path)}` is too {'large' if value > 0 else 'small'}: whole "
                              f"numbers in a study config lie between {INT_MIN} and {INT_MAX}")
        elif isinstance(value, str) and "\0" in value:
            raise ConfigError(f"{source}: `{key_text(path)}` contains a NUL character: remove it")


_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEY_PATH = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"\s*\[\[?\s*({_KEY_PATH})\s*\]\]?")
_ASSIGNMENT = re.compile(rf"\s*({_KEY_PATH})\s*=")
_STRING_OR_COMMENT = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'|#.*""")


def _split_key(key: str) -> list[str]:
    try:
        node: Any = tomllib.loads(f"{key} = 0")  # TOML itself splits and unquotes the dotted key
    except tomllib.TOMLDecodeError:
        return [key]
    parts: list[str] = []
    while isinstance(node, dict):
        name, node = next(iter(node.items()))
        parts.append(name)
    return parts


def _line_keys(lines: list[str]) -> tuple[list[list[str] | None], list[int]]:
    """For each line of a TOML text: the key of the statement it belongs to, and the nesting depth it reaches.
    A best-effort scan (it does not follow multi-line strings), for messages about files TOML cannot read."""
    table: list[str] = []
    key: list[str] | None = None
    depth = 0
    keys: list[list[str] | None] = []
    depths: list[int] = []
    for line in lines:
        if depth == 0 and (header := _HEADER.match(line)):
            table = key = _split_key(header.group(1))
            keys.append(key)
            depths.append(0)
            continue
        if depth == 0 and (assignment := _ASSIGNMENT.match(line)):
            key = table + _split_key(assignment.group(1))
        deepest = depth
        for char in _STRING_OR_COMMENT.sub("", line):
            if char in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif char in "]}":
                depth = max(depth - 1, 0)
        keys.append(key)
        depths.append(deepest)
    return keys, depths


def _where(key: list[str] | None, line: int) -> str:
    return f"`{key_text(key)}`" if key else f"line {line + 1}"


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML ({exc}): fix the syntax and run again") from exc
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        keys, depths = _line_keys(text.split("\n"))
        line = depths.index(max(depths))
        raise ConfigError(f"{source}: {_where(keys[line], line)} nests {max(depths)} levels deep, far deeper "
                          "than any setting of a study") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        keys, _ = _line_keys(lines := text.split("\n"))
        line = next((i for i, t in enumerate(lines) if re.search(r"\d[\d_]{999,}", t)), 0)
        raise ConfigError(f"{source}: {_where(keys[line], line)} is too large: whole numbers in a study config "
                          f"lie between {INT_MIN} and {INT_MAX}") from exc


def parse_config(text: str, source: str = "config") -> StudyConfig:
    data = _parse_toml(text, source)
    try:
        config = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, data)) from exc
    _check_values(data, source)
    return config


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start)
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        keys, _ = _line_keys(raw.decode("utf-8", errors="replace").split("\n"))
        raise ConfigError(f"{source}: {_where(keys[line], line)} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                          f"line {line + 1}, column {column}): save the file as UTF-8") from None


def load_config(path: Path) -> StudyConfig:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass a TOML file or use --preset")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path} ({exc.strerror}): check its permissions") from exc
    return parse_config(_decode(raw, str(path)), str(path))


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
        if value is None:  # an unset optional section (a study's `check`): TOML has no null
            continue
        if isinstance(value, dict):
            nested[key] = value
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for section, values in nested.items():
        lines.append(f"\n[{section}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key_text([key])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)
