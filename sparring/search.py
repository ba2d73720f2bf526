"""Tree search over a multi-turn env's actions: the policy proposes, rollouts estimate values, a beam keeps
the best states (ReST-MCTS*'s value-guided search, with Monte Carlo values instead of a value model).

    >>> search = TreeSearch(policy, "CountdownSteps-v0", {}, SearchConfig(width=4, beam=4, rollouts=1))
    >>> trajectories = search.run(tasks, seed=0)   # one per task: a verified trace where one was found
    >>> trajectories[0].meta["nodes"], trajectories[0].meta["tokens"]   # states expanded, tokens generated

At each depth every state of the beam is expanded: the policy samples `width` actions (distinct ones are
kept) and the env plays each. A child that ends the episode is a finished trace; every other child is
valued by `rollouts` policy rollouts to the end (its value is their mean reward), and a rollout that
succeeds is itself a verified trace. The `beam` best children go on. Search stops at the first verified
trace, when the beam is empty, at `max_turns`, or when `node_budget` states were expanded.

States are restored by replaying their actions on a fresh reset of the task (envs are deterministic given
the task and the actions), so any sparring env works, TextWorld's interpreter included. Tasks are searched
together, one policy call per depth for all their beams (and one per rollout turn).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sparring.envs.base import check_at_least
from sparring.policies.policy import Completion, Policy, SamplingParams
from sparring.solver import acquire_envs, release_envs, turn_seed
from sparring.trajectories import Trajectory, Turn


@dataclass
class SearchConfig:
    width: int = 4                 # actions sampled per expanded state (distinct ones are played)
    beam: int = 4                  # states kept per depth, the highest valued
    rollouts: int = 1              # policy rollouts valuing each new state (0: no values, the first children go on)
    node_budget: int = 64          # states expanded per task at most (one policy call of `width` samples each)
    temperature: float = 1.0       # sampling temperature of the proposals and the rollouts

    def __post_init__(self) -> None:
        check_at_least("search", self, {"width": 1, "beam": 1, "rollouts": 0, "node_budget": 1})
        if not self.temperature > 0:
            raise ValueError(f"search.temperature must be > 0 (search needs different samples), got {self.temperature!r}")


@dataclass
class _Node:
    task: int                      # index of the task searched
    turns: list[Turn]              # the actions so far, with the observation each answered
    observation: str               # what the env shows now
    value: float = 0.0


@dataclass
class _Search:
    nodes: int = 0                 # states expanded
    tokens: int = 0                # tokens generated (proposals and rollouts)
    found: Trajectory | None = None  # the first verified trace
    best: Trajectory | None = None   # the best finished trace so far (highest reward)
    beam: list[_Node] = field(default_factory=list)


def _tokens(completion: Completion) -> int:
    return len(completion.token_ids) if completion.token_ids is not None else len(completion.text)


class TreeSearch:
    def __init__(self, policy: Policy, env_id: str, env_kwargs: dict[str, Any] | None = None,
                 config: SearchConfig = SearchConfig(), *, max_tokens: int = 32, max_turns: int = 32,
                 role: str = "solver"):
        from sparring.envs.catalog import env_class

        env_class(env_id)  # a clear error on a mistyped id
        self.policy, self.env_id, self.env_kwargs = policy, env_id, dict(env_kwargs or {})
        self.config, self.max_turns, self.role = config, max_turns, role
        self.params = SamplingParams(temperature=config.temperature, max_tokens=max_tokens)

    def run(self, tasks: list[dict[str, Any]], *, seed: int = 0) -> list[Trajectory]:
        """One trajectory per task, in order: the first verified trace the search found, else the best finished
        one (or an empty one that says why). `meta`: nodes expanded, tokens generated, depth reached."""
        searches = [_Search() for _ in tasks]
        envs = acquire_envs(self.env_id, self.env_kwargs, 1)
        try:
            for i, task in enumerate(tasks):
                observation, _ = envs[0].reset(seed=seed, options={"task": task})
                searches[i].beam = [_Node(i, [], observation)]
            depth = 0
            while depth < self.max_turns:
                frontier = [(s, node) for s in searches if s.found is None for node in s.beam]
                frontier = [(s, n) for s, n in frontier if s.nodes < self.config.node_budget]
                if not frontier:
                    break
                self._expand(tasks, searches, frontier, envs[0], seed, depth)
                depth += 1
        finally:
            release_envs(self.env_id, self.env_kwargs, envs)
        out = []
        for i, (task, s) in enumerate(zip(tasks, searches)):
            trajectory = s.found or s.best or Trajectory(
                self.env_id, task, verdict={"reward": 0.0, "success": False, "details": {},
                                            "feedback": "the search finished no episode within its budget"})
            trajectory.source = "search"
            trajectory.meta.update(task_index=i, nodes=s.nodes, tokens=s.tokens, policy=self.policy.name)
            out.append(trajectory)
        return out

    # ---- one depth: expand every beam, play the children, value them, keep the best ----------------------------
    def _expand(self, tasks: list[dict[str, Any]], searches: list[_Search], frontier: list[tuple[_Search, _Node]],
                env: Any, seed: int, depth: int) -> None:
        params = replace(self.params, n=self.config.width, seed=turn_seed(seed, 2 * depth))
        outputs = self.policy.generate([self._prompt(node) for _, node in frontier], params)
        children: dict[int, list[_Node]] = {}
        for (search, node), group in zip(frontier, outputs):
            search.nodes += 1
            search.tokens += sum(_tokens(c) for c in group)
            for action in dict.fromkeys(c.text for c in group):  # distinct actions, in sampled order
                if search.found is not None:
                    break
                child = self._play(env, tasks[node.task], node, action, seed)
                if isinstance(child, Trajectory):
                    self._finished(search, child)
                else:
                    children.setdefault(node.task, []).append(child)
        pending = [c for i, cs in children.items() if searches[i].found is None for c in cs]
        if self.config.rollouts and pending:
            self._value(tasks, searches, pending, seed, depth)
        for i in {node.task for _, node in frontier}:  # every search expanded: its best children go on
            ranked = sorted(children.get(i, []), key=lambda n: -n.value)  # stable: ties keep sampled order
            searches[i].beam = ranked[:self.config.beam]

    def _prompt(self, node: _Node) -> list[dict[str, str]]:
        conversation = []
        for turn in node.turns:
            conversation += [{"role": "user", "content": turn.observation}, {"role": "assistant", "content": turn.action}]
        return conversation + [{"role": "user", "content": node.observation}]

    def _restore(self, env: Any, task: dict[str, Any], node: _Node, seed: int) -> None:
        env.reset(seed=seed, options={"task": task})
        for turn in node.turns:
            env.step(turn.action)

    def _play(self, env: Any, task: dict[str, Any], node: _Node, action: str, seed: int) -> _Node | Trajectory:
        """The child of `node` after `action`: a new state, or the finished episode."""
        self._restore(env, task, node, seed)
        observation, reward, terminated, truncated, info = env.step(action)
        turns = [*node.turns, Turn(node.observation, action, float(reward))]
        if terminated or truncated:
            return Trajectory(self.env_id, task, turns, info["verdict"], role=self.role, env_kwargs=self.env_kwargs)
        if len(turns) >= self.max_turns:
            return Trajectory(self.env_id, task, turns, role=self.role, env_kwargs=self.env_kwargs,
                              verdict={"reward": 0.0, "success": False, "details": {},
                                       "feedback": f"ran out of turns ({self.max_turns})"})
        return _Node(node.task, turns, observation)

    def _finished(self, search: _Search, trajectory: Trajectory) -> None:
        if trajectory.success:
            search.found = trajectory
        elif search.best is None or trajectory.reward > search.best.reward:
            search.best = trajectory

    def _value(self, tasks: list[dict[str, Any]], searches: list[_Search], pending: list[_Node], seed: int,
               depth: int) -> None:
        """Each pending child's value: the mean reward of `rollouts` policy episodes from it, played in lockstep."""
        k = self.config.rollouts
        envs = acquire_envs(self.env_id, self.env_kwargs, len(pending) * k)
        try:
            running = []
            for j, node in enumerate(pending):
                for r in range(k):
                    env = envs[j * k + r]
                    self._restore(env, tasks[node.task], node, seed)
                    running.append([env, node, list(node.turns), node.observation, None])
            turn = 0
            while True:
                active = [e for e in running if e[4] is None]
                if not active:
                    break
                params = replace(self.params, n=1, seed=turn_seed(seed, 2 * depth + 1) + turn * 1000)
                outputs = self.policy.generate([self._prompt(_Node(0, e[2], e[3])) for e in active], params)
                for episode, (completion,) in zip(active, outputs):
                    env, node, turns, observation, _ = episode
                    searches[node.task].tokens += _tokens(completion)
                    episode[3], reward, terminated, truncated, info = env.step(completion.text)
                    turns.append(Turn(observation, completion.text, float(reward)))
                    if terminated or truncated:
                        episode[4] = info["verdict"]
                    elif len(turns) >= self.max_turns:
                        episode[4] = {"reward": 0.0, "success": False, "details": {},
                                      "feedback": f"ran out of turns ({self.max_turns})"}
                turn += 1
        finally:
            release_envs(self.env_id, self.env_kwargs, envs)
        for j, node in enumerate(pending):
            rewards = []
            for _, _, turns, _, verdict in running[j * k:(j + 1) * k]:
                rewards.append(float(verdict["reward"]))
                self._finished(searches[node.task], Trajectory(self.env_id, tasks[node.task], turns, verdict,
                                                               role=self.role, env_kwargs=self.env_kwargs))
            node.value = sum(rewards) / k
