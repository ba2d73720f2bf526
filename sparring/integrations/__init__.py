"""sparring's envs inside the trainers people already run: TRL (`trl`), OpenEnv (`openenv`), verifiers (`verifiers`).

Each module imports its library only when used; a missing one is named with the command that installs it.
"""

from __future__ import annotations

import importlib
from typing import Any


def require(module: str, extra: str) -> Any:
    """Import `module`, or raise an ImportError that names the sparring extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"this needs the {module.split('.')[0]!r} package, which is not installed "
                          f"({error}): pip install \"sparring[{extra}]\"") from error
