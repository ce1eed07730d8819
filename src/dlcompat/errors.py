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


class OutputError(UserError):
    """The output folder cannot take what the study writes: the disk is full, or the folder is read-only."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line (whitespace collapsed), at most `limit` characters: the part of a
    one-sentence error that quotes the tool underneath."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
