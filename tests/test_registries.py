"""Every registry's strings resolve: what an entry points at exists, and every name it uses is registered.

A `"module:attr"` of an entry that runs in the driver's environment (`main`) is imported and looked up; one
of another toolchain environment (Theano, onnx2tf, tfjs, ...) cannot be imported here, so its module file
must exist in the tree and define the attribute (read with `ast`, not imported).
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

from dlcompat.attacks.catalog import ATTACKS
from dlcompat.converters.graph import CONVERTERS, FORMATS
from dlcompat.data.registry import dataset_names
from dlcompat.envs.registry import ENVS, SOURCE_ROOT
from dlcompat.errors import ConfigError
from dlcompat.frameworks.registry import FRAMEWORKS, seed_loaded_frameworks
from dlcompat.registry import Registry, resolve, resolve_loaded, split_reference
from dlcompat.runtimes.base import RUNTIMES
from dlcompat.study.config import load_preset, preset_names
from dlcompat.study.jobs import JOB_KINDS
from dlcompat.zoo.registry import MODELS

#: the environments whose modules this interpreter can import (a framework runtime's "" is its framework's)
IMPORTABLE_ENVS = ("main", "")


def references() -> list[tuple[str, str, str]]:
    """(what, environment, "module:attr") for every reference a registry entry holds."""
    refs = []
    for fw in FRAMEWORKS:
        refs.append((f"framework {fw.name} adapter", fw.env, fw.adapter))
        if fw.seed:
            refs.append((f"framework {fw.name} seed", fw.env, fw.seed))
    refs += [(f"converter {edge.name}", edge.env, edge.function) for edge in CONVERTERS]
    refs += [(f"runtime {rt.name}", rt.env, rt.runner) for rt in RUNTIMES]
    refs += [(f"attack {attack.name}", "main", attack.art_class) for attack in ATTACKS]
    # job modules run in every environment: checked in the tree, never imported here
    refs += [(f"job kind {kind.name}", "any", kind.function) for kind in JOB_KINDS]
    return refs


@cache
def _defined_names(path: Path) -> frozenset[str]:
    """The names a module file defines at its top level (classes, functions, assignments, imports)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return frozenset(names)


def _module_file(module: str) -> Path | None:
    base = SOURCE_ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@pytest.mark.parametrize(("what", "env", "reference"), references(), ids=lambda v: str(v))
def test_every_reference_resolves(what: str, env: str, reference: str) -> None:
    module, attr = split_reference(reference)
    if env in IMPORTABLE_ENVS:
        assert resolve(reference) is not None, f"{what}: {reference} resolves to None"
        return
    path = _module_file(module)
    assert path is not None, f"{what}: module {module} of environment {env!r} is not in the tree ({SOURCE_ROOT})"
    assert attr.split(".")[0] in _defined_names(path), f"{what}: {path} defines no {attr.split('.')[0]!r}"


def test_every_environment_named_is_registered() -> None:
    named = [(f"framework {fw.name}", fw.env) for fw in FRAMEWORKS]
    named += [(f"converter {edge.name}", edge.env) for edge in CONVERTERS]
    named += [(f"runtime {rt.name}", rt.env) for rt in RUNTIMES if rt.env]
    assert [(what, env) for what, env in named if env not in ENVS] == []


def _is_format(name: str) -> bool:
    return name in FORMATS or name in FRAMEWORKS


def test_every_converter_joins_known_formats() -> None:
    unknown = [(edge.name, end) for edge in CONVERTERS for end in (edge.source, edge.target) if not _is_format(end)]
    assert unknown == []


def test_every_runtime_accepts_a_known_format_and_lands_in_a_known_framework() -> None:
    for rt in RUNTIMES:
        if rt.platform == "framework" and not rt.accepts:  # `native`: the framework's own file
            continue
        assert _is_format(rt.accepts), f"runtime {rt.name} accepts {rt.accepts!r}, which no registry knows"
        assert not rt.framework or rt.framework in FRAMEWORKS, f"runtime {rt.name} lands in {rt.framework!r}"


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_names_only_registered_things(preset: str) -> None:
    config = load_preset(preset)
    assert set(config.datasets) <= set(dataset_names())
    assert set(config.models) <= set(MODELS.names())
    assert config.frameworks == ["all"] or set(config.frameworks) <= set(FRAMEWORKS.names())
    assert set(config.runtimes) <= set(RUNTIMES.names())
    for name, variants in config.converters.items():
        assert set(variants) <= set(CONVERTERS.get(name).variants), f"{preset}: {name} has no variant of {variants}"
    assert set(config.attacks.methods) <= set(ATTACKS.names())


def test_an_unknown_name_is_one_sentence_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"^unknown runtime 'tensorrt': choose one of native, weights, "):
        RUNTIMES.get("tensorrt")


def test_builtins_are_registered_on_first_lookup_only() -> None:
    registry: Registry[Path] = Registry("thing", builtins=("dlcompat_no_such_module",))
    registry.register(Path("a"))  # registering imports nothing
    with pytest.raises(ModuleNotFoundError):
        registry.names()
    with pytest.raises(ModuleNotFoundError):  # a failed import is tried again, not taken as done
        registry.get("a")


def test_a_reference_walks_into_its_module_and_resolve_loaded_imports_nothing() -> None:
    assert resolve("dlcompat.registry:Registry.register") is Registry.register
    assert resolve_loaded("dlcompat_no_such_module:thing") is None
    assert "dlcompat_no_such_module" not in sys.modules
    with pytest.raises(ValueError, match="not a 'module:attr' reference"):
        split_reference("dlcompat.registry")


def test_seeding_reaches_the_loaded_frameworks_only() -> None:
    torch = pytest.importorskip("torch")
    seed_loaded_frameworks(3)
    drawn = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(2))


def test_every_native_art_classifier_is_for_a_registered_framework() -> None:
    art = pytest.importorskip("dlcompat.attacks.art")
    assert set(art.NATIVE_CLASSIFIERS.names()) <= set(FRAMEWORKS.names())


def test_a_name_in_two_registries_has_one_title() -> None:
    """A runtime named as its format (coreml, tfjs) is written the same way: the report has one display name."""
    titles: dict[str, set[str]] = {}
    for entry in (*FRAMEWORKS, *FORMATS, *RUNTIMES):
        titles.setdefault(entry.name, set()).add(entry.title)
    assert {name: found for name, found in titles.items() if len(found) > 1} == {}
