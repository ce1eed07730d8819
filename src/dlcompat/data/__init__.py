"""Datasets: a registry of names, real loaders for the original file formats, checksummed download.

Import the submodule you need (``dlcompat.data.registry``, ``dlcompat.data.batching``); this package
imports nothing itself, so that it loads in every toolchain environment with NumPy alone.
"""
