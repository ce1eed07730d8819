"""Vet a user's `torch.export` archive (``.pt2``) before `torch.export.load` reads it.

PyTorch documents that `torch.export.load` "uses pickle under the hood" and must never read untrusted data. In
this PyTorch the pickle and code paths of an archive are: members loaded with ``torch.load(weights_only=False)``
(weights and constants the writer flagged ``use_pickle``: tensor subclasses; legacy ``<model>.pt`` weight files;
the sample inputs, when the safe ``weights_only=True`` load of them fails), custom and opaque objects
(``pickle.loads``), compiled AOTInductor / ExecuTorch / MTIA payloads (shared libraries it loads), symbolic shape
strings (``sympy.sympify`` evaluates them), guard strings (compiled into a Python function by ``.module()``) and
node targets resolved by ``getattr`` from the ``torch`` module (``torch.os.system`` is one).

`vet_pt2` opens the archive as a zip (zip bombs refused first by `dlcompat.data.archives.check_zip`, every
member's CRC checked) and accepts only what plain ``torch.export.save`` of a plain model writes: members from a
fixed list, weights and constants as raw tensor bytes, sample inputs that ``torch.load(weights_only=True)``
reads, node targets among the ATen / prims / higher-order / quantized operators and Python's ``operator`` /
``math``, and symbolic expressions and guards made only of numbers, operators and a fixed list of names. Anything
else is refused with one sentence naming it, before any of it is unpickled, evaluated or loaded.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlcompat.data.archives import ArchiveTooLarge, check_zip
from dlcompat.errors import ModelFileError, one_line

#: how to write an archive dlcompat reads (the sentence every refusal ends with)
EXPORT_HINT = 'export it with torch.export.save(torch.export.export(model.eval(), (example,)), "model.pt2")'
#: archive members (relative to its one root folder) that `torch.export.save` of a plain model writes
_MEMBERS = re.compile(
    r"archive_format|archive_version|byteorder|version|\.data/version|\.data/serialization_id|\.format_version"
    r"|\.storage_alignment|models/\w+\.json|data/weights/weight_\d+|data/weights/\w+_weights_config\.json"
    r"|data/constants/tensor_\d+|data/constants/\w+_constants_config\.json|data/sample_inputs/\w+\.pt|extra/[\w./-]+"
)
#: node targets the deserializer may resolve (it resolves any other ``torch.*`` attribute by getattr)
_TARGETS = re.compile(
    r"torch\.ops\.(aten|prims|higher_order|quantized_decomposed)\.\w+(\.\w+)?|_operator\.\w+|math\.\w+"
    r"|torch\.sym_(float|int|max|min|not|sqrt|ite|sum)|torch\._sym_sqrt"
)
#: names a symbolic expression (sympy) or a guard (Python) may use: sympy's and torch's shape functions
_NAME_LIST = (
    "Symbol Integer Rational Float Add Mul Pow Mod Min Max Abs Eq Ne Lt Le Gt Ge And Or Not Piecewise floor ceiling "
    "sqrt oo zoo nan true false True False None positive integer real nonnegative finite FloorDiv ModularIndexing "
    "Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift PowByNatural FloatPow FloatTrueDiv "
    "IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt RoundToInt RoundDecimal ToFloat Identity "
    "BitwiseFn_bitwise_and BitwiseFn_bitwise_or OpaqueUnaryFn_sqrt L size stride storage_offset dim numel and or not "
    "in is if else int float len"
)
_NAMES = frozenset(_NAME_LIST.split())
_EXPRESSION = re.compile(r"(?:\s+|'\w*'|\d+(?:\.\d+)?(?:e-?\d+)?|[A-Za-z_]\w*|[-+*/%<>=!(),.\[\]&|~^])*")
_SYMBOL = re.compile(r"[a-z]{1,2}\d+")


def _refuse(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path} is a torch.export archive that {what}, which torch.export.load would unpickle, "
                          f"evaluate or load as code: {EXPORT_HINT} from a plain model")


def safe_expression(text: str) -> bool:
    """Whether a symbolic shape or guard string is made only of numbers, operators, quoted words and known names."""
    if "__" in text or _EXPRESSION.fullmatch(text) is None:
        return False
    words = re.findall(r"[A-Za-z_]\w*", re.sub(r"'\w*'", "''", text))
    return all(word in _NAMES or _SYMBOL.fullmatch(word) for word in words)


def vet_pt2(path: Path) -> None:
    """Raise `ModelFileError` unless the archive at `path` holds only what torch.export.save of a plain model
    writes (see the module docstring); it then loads with `torch.export.load` without unpickling or running code."""
    path = Path(path)
    try:
        check_zip(path)
        archive = zipfile.ZipFile(path)
    except ArchiveTooLarge as exc:
        raise ModelFileError(f"{path} is refused: {exc}: pass a model archive below that size") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path} is not a readable torch.export archive (a zip; truncated or corrupt: "
                             f"{one_line(exc)}): {EXPORT_HINT}") from exc
    with archive:
        root = _root(path, archive)
        for name in archive.namelist():
            relative = name[len(root):]
            if not _MEMBERS.fullmatch(relative):
                raise _refuse(path, f"holds {relative}")
        if archive.read(root + "archive_format").strip() != b"pt2":
            raise _refuse(path, "is not in the pt2 archive format")
        for name in archive.namelist():
            relative = name[len(root):]
            if relative.endswith("_config.json"):
                _vet_payload(path, relative, _json(path, archive, name))
            elif relative.startswith("models/"):
                _vet_program(path, _json(path, archive, name))
            elif relative.startswith("data/sample_inputs/"):
                _vet_sample_inputs(path, archive.read(name))


def _root(path: Path, archive: zipfile.ZipFile) -> str:
    """The archive's one root folder (with its slash), after every member's CRC is checked."""
    try:
        bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path} is a corrupt zip archive ({one_line(exc)}): {EXPORT_HINT}") from exc
    if bad is not None:
        raise ModelFileError(f"{path} is a corrupt zip archive (member {bad} fails its checksum): {EXPORT_HINT}")
    roots = {name.split("/", 1)[0] for name in archive.namelist()}
    if len(roots) != 1 or not all("/" in name for name in archive.namelist()):
        raise ModelFileError(f"{path} is not a torch.export archive (its members are not in one folder): "
                             f"{EXPORT_HINT}")
    root = roots.pop() + "/"
    if root + "archive_format" not in archive.namelist():
        raise _refuse(path, "is in an older archive format (no archive_format member)")
    return root


def _json(path: Path, archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(archive.read(name))
    except ValueError as exc:
        raise ModelFileError(f"{path} holds a corrupt {name} ({one_line(exc)}): {EXPORT_HINT}") from exc


def _vet_payload(path: Path, member: str, config: Any) -> None:
    """A weights or constants config: every entry raw tensor bytes (no pickled tensor subclass, no object)."""
    entries = config.get("config", {}) if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(path, f"has an unreadable {member}")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(path, f"stores {fqn} pickled (a tensor subclass or an object)")
        prefix = "weight_" if "weights" in member else "tensor_"
        if not str(meta.get("path_name", "")).startswith(prefix):
            raise _refuse(path, f"stores {fqn} as {meta.get('path_name')!r}, an object")


def _vet_sample_inputs(path: Path, data: bytes) -> None:
    """torch.export.load falls back to an unrestricted unpickler when the restricted one fails: it must not."""
    import torch

    if not data:
        return
    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # the restricted unpickler refuses anything but tensors and containers
        raise _refuse(path, f"holds sample inputs beyond tensors ({one_line(exc, 120)})") from exc


def _vet_program(path: Path, program: Any) -> None:
    """Node targets, symbolic expressions, range-constraint names and guards of one serialized program."""
    for key, value in _items(program):
        if key == "target" and isinstance(value, str) and not _TARGETS.fullmatch(value):
            raise _refuse(path, f"calls {value!r}")
        if key == "expr_str" and (not isinstance(value, str) or not safe_expression(value)):
            raise _refuse(path, f"has the symbolic expression {str(value)[:80]!r}")
    if not isinstance(program, dict):
        raise _refuse(path, "has an unreadable program")
    for name in program.get("range_constraints") or {}:
        if not re.fullmatch(r"\w+", str(name)):
            raise _refuse(path, f"names the symbol {str(name)[:80]!r}")
    for guard in program.get("guards_code") or []:
        if not isinstance(guard, str) or not safe_expression(guard):
            raise _refuse(path, f"has the guard {str(guard)[:80]!r}")


def _items(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, depth first."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from item.items()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
