"""dlcompat: what you lose when a model moves between frameworks and platforms.

The package core imports with NumPy alone, so that a job can run in every toolchain environment
(DESIGN.md). Heavy libraries are imported lazily inside the modules that need them.
"""

__version__ = "0.1.0"
