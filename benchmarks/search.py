"""Tree search against sampling at equal generated tokens, on held-out tasks of a multi-turn env.

    python benchmarks/search.py --policy runs/steps/checkpoints/round-000 \
        --env CountdownSteps-v0 --kwargs '{difficulty: easy, max_number: 20, min_target: 1, instruction: compact}'

For each task the tree search (`sparring.search`) runs within its node budget and its generated
tokens are counted; then the policy samples whole episodes of the same task, one after another, until it
has spent as many tokens. A task counts for sampling if one of those episodes succeeded (pass@budget).
Prints success of both, their ratio, pass@1 of plain sampling, tokens per task and states expanded per
solved task.
"""

from __future__ import annotations

import argparse
import json
import time

import yaml

from sparring.envs.catalog import draw_tasks
from sparring.policies.policy import SamplingParams, make_policy
from sparring.search import SearchConfig, TreeSearch
from sparring.solver import Solver, by_task


def episode_tokens(trajectory) -> int:
    return sum(len(turn.token_ids) if turn.token_ids is not None else len(turn.action) for turn in trajectory.turns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="a checkpoint folder (the hf backend)")
    parser.add_argument("--env", default="CountdownSteps-v0")
    parser.add_argument("--kwargs", default="{}", help="env kwargs as YAML")
    parser.add_argument("--split", default="test-seen")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--search", default="{width: 4, beam: 4, rollouts: 1, node_budget: 16}", help="SearchConfig as YAML")
    parser.add_argument("--max-samples", type=int, default=64, help="episodes sampled per task at most")
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kwargs, config = yaml.safe_load(args.kwargs) or {}, SearchConfig(**(yaml.safe_load(args.search) or {}))
    policy = make_policy("hf", path=args.policy)
    tasks = draw_tasks(args.env, kwargs, args.split, args.seed, 0, args.tasks)

    start = time.perf_counter()
    searched = TreeSearch(policy, args.env, kwargs, config, max_tokens=args.max_tokens,
                          max_turns=args.max_turns).run(tasks, seed=args.seed)
    search_s = time.perf_counter() - start
    params = SamplingParams(temperature=config.temperature, max_tokens=args.max_tokens)
    start = time.perf_counter()
    sampled = Solver(policy, args.env, kwargs, params, max_turns=args.max_turns).run(tasks, k=args.max_samples,
                                                                                     seed=args.seed + 1)
    sample_s = time.perf_counter() - start
    at_budget, short = [], 0
    for found, group in zip(searched, by_task(sampled, args.max_samples)):
        spent, solved = 0, False
        for episode in group:
            if spent >= found.meta["tokens"]:
                break
            spent += episode_tokens(episode)
            solved = solved or episode.success
        short += spent < found.meta["tokens"]  # ran out of samples before the search's budget
        at_budget.append(solved)
    n = len(tasks)
    search_success = sum(t.success for t in searched) / n
    sample_success = sum(at_budget) / n
    solved = [t for t in searched if t.success]
    result = {
        "env": args.env, "tasks": n, "search": vars(config),
        "search/success": search_success, "sampling/success_at_equal_tokens": sample_success,
        "ratio": search_success / sample_success if sample_success else float("inf"),
        "sampling/pass@1": sum(t.success for t in sampled) / len(sampled),
        "tokens_per_task": sum(t.meta["tokens"] for t in searched) / n,
        "nodes_per_solved_task": sum(t.meta["nodes"] for t in solved) / max(1, len(solved)),
        "tasks_where_samples_ran_short": short, "search_s": round(search_s, 1), "sampling_s": round(sample_s, 1),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
