"""The package's own exception types and the "did you mean" helper every error uses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SparringError(Exception):
    """Base class of every error sparring raises on purpose."""


class UnknownNameError(SparringError, ValueError):
    """A name (env id, knob, preset, split, config key, backend...) that is not one of the accepted ones."""

    def __init__(self, kind: str, given: object, accepted: Iterable[str], hint: str = ""):
        self.kind, self.given, self.accepted = kind, given, sorted(accepted)
        super().__init__(unknown_name_message(kind, given, self.accepted, hint))


class UnsolvableTaskError(SparringError, ValueError):
    """The expert was asked to solve a task that has no solution under the env's rules."""


def unknown_name_message(kind: str, given: object, accepted: Iterable[str], hint: str = "") -> str:
    """`unknown difficulty 'medum'; did you mean 'medium'? Accepted: easy, hard, medium.`"""
    accepted = sorted(accepted)
    message = f"unknown {kind} {given!r}"
    close = difflib.get_close_matches(str(given), accepted, n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    message += f" Accepted: {', '.join(accepted) if accepted else '(none)'}."
    return message + (f" {hint}" if hint else "")
