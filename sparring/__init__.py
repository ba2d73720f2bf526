"""sparring: Gymnasium environments with exact verifiers, self-play agents and trainers for language models.

`import sparring` registers every environment in Gymnasium's registry:

    >>> import gymnasium, sparring
    >>> env = gymnasium.make("Countdown-v0")
"""

import sparring.envs  # noqa: F401  (registers the environments)
from sparring.conformance import check
from sparring.envs.catalog import env_ids, make

__all__ = ["check", "env_ids", "make"]

__version__ = "0.1.0"
