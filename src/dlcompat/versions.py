"""The installed version of a Python package: its module's `__version__`, else its distribution's metadata.

Some packages (executorch, litert-torch) have no `__version__`; pip's metadata still knows what is installed.
"""

from __future__ import annotations

import importlib.metadata
import sys

#: module name -> distribution name, where they differ
DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "litert_torch": "litert-torch", "sklearn": "scikit-learn"}


def distribution(module: str) -> str:
    """The name of the distribution (pip's) that provides `module`."""
    return DISTRIBUTIONS.get(module, module)


def installed_version(module: str) -> str:
    """The version of the package that provides `module` ("unknown" when neither source says)."""
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None) if loaded is not None else None
    if version:
        return str(version)
    try:
        return importlib.metadata.version(distribution(module))
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
