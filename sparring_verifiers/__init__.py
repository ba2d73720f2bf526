"""The `sparring-verifiers` taskset id for verifiers (`vf-eval sparring-verifiers --env.taskset.env-id ...`).

verifiers loads a taskset by the name of an installed package; this package re-exports
`sparring.integrations.verifiers` (see there) under such a name.
"""

from sparring.integrations.verifiers import (  # noqa: F401
    SparringConfig,
    SparringData,
    SparringEnv,
    SparringEnvConfig,
    SparringTask,
    SparringTaskset,
)

__all__ = ["SparringConfig", "SparringData", "SparringEnv", "SparringEnvConfig", "SparringTask", "SparringTaskset"]
