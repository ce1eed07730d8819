"""Errors a user can cause. Each carries one sentence that says what to do; the CLI prints it and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (config, data, environment): shown as one sentence, exit code 2."""


class ConfigError(UserError):
    """The study config is invalid."""


class DataError(UserError):
    """A dataset is missing, corrupt or cannot be downloaded."""


class FrameworkUnavailableError(UserError):
    """A framework, converter or runtime the study needs is not installed."""


class ModelFileError(UserError):
    """A model file is unreadable, of the wrong kind, or would need unsafe loading."""
