"""sparring: Gymnasium environments with exact verifiers, self-play agents and trainers for language models.

`import sparring` registers every environment in Gymnasium's registry:

    >>> import gymnasium, sparring
    >>> env = gymnasium.make("Countdown-v0")

The self-play loop from Python (what `sparring selfplay` runs):

    >>> from sparring import SelfPlayConfig, run
    >>> rows = run(SelfPlayConfig(rounds=2), "runs/mine")   # or run("configs/x.yaml", overrides=["rounds=2"])
"""

from typing import TYPE_CHECKING, Any

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.conformance import check
from sparring.envs.catalog import env_ids, make

if TYPE_CHECKING:  # what __getattr__ below imports on first use, named for type checkers
    from sparring.selfplay import SelfPlay, SelfPlayConfig, run

__all__ = ["SelfPlay", "SelfPlayConfig", "check", "env_ids", "make", "run"]

__version__ = "0.1.0"

_LOOP = ("SelfPlay", "SelfPlayConfig", "run")  # imported on first use: the loop pulls in torch and transformers


def __getattr__(name: str) -> Any:
    if name in _LOOP:
        import sparring.selfplay

        return getattr(sparring.selfplay, name)
    raise AttributeError(f"module 'sparring' has no attribute {name!r}")
