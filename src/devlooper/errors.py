"""Errors that end a run with a clear message.

A red test run, a failed install or a timed-out command are *data* (see
``sandboxes.base.ExecResult``); the exceptions here are for input we cannot act
on and infrastructure we cannot reach.
"""


class DevlooperError(Exception):
    """Base class for every error devlooper raises on purpose."""


class ConfigError(DevlooperError, ValueError):
    """Bad input or configuration: unknown template, missing key, bad path.

    The CLI turns it into exit status 2 with its message as the one line to read.
    Also a ``ValueError``: a LangGraph API server sends a ValueError's message to
    its client and replaces any other exception's with "An internal error occurred".
    """


class CassetteError(ConfigError):
    """A replayed model was asked something its cassette has no reply for."""
