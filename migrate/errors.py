"""Named exceptions.

Every error a *user* can cause (bad file, bad flag, refused configuration) is a
``MigrateError``: the CLI prints its message as one line and exits with its
``exit_code``, never with a traceback. Anything else is a bug and keeps its traceback.
Messages must never contain an API key (see ``migrate.secrets.redact``).
"""

from __future__ import annotations


class MigrateError(Exception):
    """Base class for user-facing errors: one clear line, non-zero exit."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} ({hint})")


class InputError(MigrateError):
    """A source file is missing, unreadable, malformed or inconsistent."""

    exit_code = 2


class ValidationFailed(InputError):
    """Sources were read but do not agree (missing docs, duplicate ids, dims...)."""


class ConfigError(MigrateError):
    """Flags, TOML or environment do not make a valid configuration."""

    exit_code = 2


class StateError(MigrateError):
    """The output directory holds state that conflicts with this run."""

    exit_code = 3


class EmbeddingError(MigrateError):
    """The embedding backend failed in a way retries cannot fix."""

    exit_code = 4


class BudgetExceeded(MigrateError):
    """A token or cost budget would be exceeded; the run stopped resumably."""

    exit_code = 5


class VerifyFailed(MigrateError):
    """``verify`` found a problem in a finished output."""

    exit_code = 6


class GateFailed(MigrateError):
    """A quality gate (``compare --fail-if``) failed."""

    exit_code = 7


class PlanFindings(MigrateError):
    """``plan`` has findings at or above ``--fail-on`` (a CI policy on the plan, not a quality gate)."""

    exit_code = 8
