"""Errors raised by nasforge. Everything derives from :class:`NasforgeError`."""

from __future__ import annotations

from typing import Iterable


class NasforgeError(Exception):
    """Root of every error nasforge raises on purpose."""


class UnknownNameError(NasforgeError, KeyError):
    """A family, task, strategy or pruner name that nothing registered."""

    def __init__(self, kind: str, name: object, known: Iterable[str]):
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        choices = ", ".join(self.known) or "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; known: {choices}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class RegistrationError(NasforgeError):
    """A plugin registered something invalid or a name that is already taken."""


class SpaceError(NasforgeError, ValueError):
    """A search space that cannot be parsed; names the source and the field path."""

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None):
        self.source = source
        self.path = path
        where = ": ".join(p for p in (source, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class SpecError(NasforgeError, ValueError):
    """A search request that asks for something impossible (checked before any trial)."""


class ConfigError(NasforgeError, ValueError):
    """A configuration a family cannot build, or a task it cannot handle."""


class DataError(NasforgeError, ValueError):
    """A data set that cannot be searched: names the file, column or value and what would be valid."""


class UnknownSearchError(NasforgeError, LookupError):
    """A search that is not in the store (``nasforge.load``, ``nasforge show``): says which are."""


class StoreError(NasforgeError):
    """The MLflow store or the Optuna storage cannot be reached or written."""


class ExportError(NasforgeError, ValueError):
    """An export that cannot be done (bad format, occupied path, no saved weights, unknown run)."""


class ScaffoldError(NasforgeError, ValueError):
    """A plugin that cannot be created (bad name, taken name, occupied directory)."""


class SupernetWarning(UserWarning):
    """A weight-sharing search's supernet learned nothing usable: its picks are as good as random draws."""


class TrialPruned(NasforgeError):
    """Raised inside a trial when the pruner stops it early."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception, short (SQLAlchemy appends the SQL and a help link)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
