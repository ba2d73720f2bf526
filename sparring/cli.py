"""The `sparring` command: `sparring envs`, `demo`, `selfplay`, `eval`, `report`, `play`, `sandbox`, `check`,
`serve`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rich.console import Console
from rich.table import Table

from sparring.errors import SparringError
from sparring.io import read_jsonl


def cmd_envs(args: argparse.Namespace) -> int:
    """Every env id with family, description and knobs; with an id, every argument it accepts."""
    from rich.markup import escape

    from sparring.envs.catalog import describe, env_ids

    console = Console(width=args.width)
    if args.env:
        info = describe(args.env, **dict(args.env_kwargs))
        console.print(f"[bold]{args.env}[/bold] ({info['family']}): {info['description']}")
        table = Table(title=f"what gymnasium.make({args.env!r}, ...) accepts (env.kwargs in a self-play config)")
        for column in ("argument", "type", "default", "help"):
            table.add_column(column, overflow="fold")
        for argument in info["arguments"]:
            table.add_row(*map(escape, (argument["name"] + (" (knob)" if argument["kind"] == "knob" else ""),
                                        argument["type"], repr(argument["default"]), argument["help"])))
        console.print(table)
        return 0
    table = Table(title="sparring environments (sparring envs ID: every argument of one)")
    for column in ("id", "family", "description", "knobs (defaults)", "presets", "splits"):
        table.add_column(column, overflow="fold")
    for env_id in env_ids():
        info = describe(env_id)
        knobs = ", ".join(f"{k}={v}" for k, v in info["knobs"].items())
        table.add_row(*map(escape, (env_id, info["family"], info["description"], knobs,
                                    ", ".join(info["presets"]), ", ".join(info["splits"]))))
    console.print(table)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Countdown end to end: tasks drawn from a split, the expert's answer and some wrong ones, graded."""
    from sparring.envs.catalog import make, unwrapped

    console = Console(width=args.width)
    env = make("Countdown-v0", difficulty=args.difficulty, split=args.split)
    table = Table(title=f"Countdown-v0 ({args.difficulty}, {args.split}): answers and their verdicts")
    for column in ("task", "answer", "reward", "feedback"):
        table.add_column(column, overflow="fold")
    solved = 0
    for episode in range(args.episodes):
        observation, info = env.reset(seed=args.seed + episode)
        if episode == 0:
            console.print(f"[bold]Observation:[/bold] {observation}\n")
        task = info["task"]
        expert = unwrapped(env).expert_actions()[0]
        numbers = task["numbers"]
        answers = [expert, f"<answer>{'+'.join(map(str, numbers))}</answer>",
                   f"<answer>{numbers[0]}*{numbers[0]}</answer>", "I think the answer is 42."]
        for answer in answers:
            env.reset(options={"task": task})
            _, reward, _, _, info = env.step(answer)
            solved += answer is expert and info["verdict"]["success"]
            table.add_row(f"{task['numbers']} -> {task['target']}", answer, f"{reward:.2f}", info["verdict"]["feedback"])
    console.print(table)
    console.print(f"The expert solved {solved}/{args.episodes} tasks.")
    return 0 if solved == args.episodes else 1


def quiet_libraries() -> None:
    """Our own progress bars only: silence the per-step output of transformers and datasets."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def cmd_selfplay(args: argparse.Namespace) -> int:
    """Run (or resume) the self-play loop; `--print-config` shows the resolved config with every key's help."""
    from sparring.selfplay import SelfPlay
    from sparring.selfplay_config import check_resume, default_run_dir, load_selfplay_config

    quiet_libraries()
    run_dir, config_path = args.run_dir, args.config
    if args.resume:
        if not run_dir:
            raise ValueError("--resume needs --run-dir: the run to continue")
        saved = Path(run_dir) / "config.yaml"
        if not saved.exists():
            raise ValueError(f"--resume: {saved} does not exist; there is no run to continue in {run_dir}")
        config_path = config_path or saved
    config = load_selfplay_config(config_path, args.overrides, seed=args.seed)  # no --config: the embedded default
    if args.print_config:
        from sparring.config import annotated_yaml

        if args.resume:
            check_resume(Path(run_dir) / "config.yaml", config)
        print(annotated_yaml(config), end="")
        return 0
    run_dir = run_dir or default_run_dir(Path(config_path).stem if config_path else "countdown-ei", config.seed)
    console = Console(width=args.width)
    console.print(f"[bold]sparring selfplay[/bold]: {config.env.id}, {config.algorithm}, {config.rounds} rounds, "
                  f"run directory {run_dir}" + (f", episodes on Ray ({config.executor.num_workers} workers at "
                                                f"{config.executor.address or 'a Ray started here'})"
                                                if config.executor.kind == "ray" else ""))
    try:
        rows = SelfPlay(config, run_dir, console=console).run_rounds(resume=args.resume)
    except KeyboardInterrupt:
        done = len(read_jsonl(Path(run_dir) / "metrics.jsonl"))
        print(f"\nsparring selfplay: interrupted; {done} finished round(s) are kept in {run_dir}. Continue with: "
              f"sparring selfplay --run-dir {run_dir} --resume", file=sys.stderr)
        return 130
    first, last = rows[0]["eval/success"], rows[-1]["eval/success"]
    console.print(f"held-out success: round 0 {first:.3f} -> round {rows[-1]['round']} {last:.3f} "
                  f"({100 * (last - first):+.1f} points); curves in {Path(run_dir) / 'curves.png'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Success and pass@k of a policy on an env split, with 95% intervals."""
    from sparring.envs.catalog import draw_tasks, env_class
    from sparring.evaluation import evaluate
    from sparring.policies.policy import make_policy

    env_class(args.env)  # a mistyped id: the closest one, before anything loads
    if not args.verbose:
        quiet_libraries()
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM's start-up log: -v shows it
    if args.search is not None and args.k > 1:
        raise SparringError(f"--search gives one trace per task (the first that verifies), so --k {args.k} has no "
                            "meaning with it: leave --k out, or drop --search for pass@k of sampled episodes")
    kwargs = dict(args.env_kwargs or {})
    backend = args.backend or ("openai" if args.policy.startswith(("http://", "https://")) else "hf")
    policy_kwargs = {"base_url": args.policy, "model": args.model} if backend == "openai" else {"path": args.policy}
    tasks = draw_tasks(args.env, kwargs, args.split, args.seed, 0, args.n)
    try:
        with make_policy(backend, **policy_kwargs) as policy:
            if args.search is not None:  # tree search instead of greedy decoding (multi-turn envs)
                from sparring.evaluation import evaluate_search
                from sparring.search import SearchConfig

                search = SearchConfig(**args.search)
                result = evaluate_search(policy, args.env, kwargs, tasks, search, max_tokens=args.max_tokens,
                                         seed=args.seed)
            else:
                result = evaluate(policy, args.env, kwargs, tasks, k=args.k, temperature=args.temperature,
                                  max_tokens=args.max_tokens, seed=args.seed)
        if args.output:  # every graded episode, greedy and sampled, for `sparring report FILE`
            from sparring.trajectories import save_trajectories

            save_trajectories(result.episodes, args.output)
    except SparringError as error:
        if backend == "openai" and not urlparse(args.policy).path.rstrip("/").endswith("/v1"):
            raise SparringError(f"{error} Hint: add /v1 to the URL ({args.policy.rstrip('/')}/v1): "
                                "OpenAI-compatible servers such as vLLM answer under /v1") from error
        raise
    console = Console(width=args.width)
    console.print(f"{args.env} {args.split}, {result.n_tasks} tasks, policy {args.policy}")
    how = "greedy" if args.search is None else (f"tree search, width {search.width}, beam {search.beam}, "
                                                f"rollouts {search.rollouts}, node budget {search.node_budget}")
    console.print(f"success ({how}): {result.success:.3f}  95% CI [{result.success_low:.3f}, {result.success_high:.3f}]")
    if args.search is not None:
        per_solved = result.details.get("search/nodes_per_solved")
        console.print(f"states expanded per task: {result.details['search/nodes']:.1f}, per solved task: "
                      f"{'-' if per_solved is None else f'{per_solved:.1f}'}; tokens generated per task: "
                      f"{result.details['search/tokens']:.1f}")
    if result.pass_at_k is not None:
        console.print(f"pass@{result.k} (temperature {args.temperature}): {result.pass_at_k:.3f}  "
                      f"95% CI [{result.pass_at_k_low:.3f}, {result.pass_at_k_high:.3f}]")
    if args.output:
        console.print(f"{len(result.episodes)} episodes saved to {args.output} (sparring report {args.output})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """A run's static HTML page (or the page of the episodes `eval --output` saved)."""
    from sparring.report import write_report

    try:
        print(f"wrote {write_report(args.path, args.output, sample=args.sample)}")
    except FileNotFoundError as error:
        raise SparringError(str(error)) from None
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    """`sandbox info`: which sandbox backends work here and what confines them; `sandbox build-image`."""
    if args.action == "build-image":
        from sparring.sandboxes.docker_image import build_image

        print(f"built {build_image(args.tag)}")
        return 0
    from sparring.sandboxes import probe_backends

    found = probe_backends()
    for backend, (works, detail) in found.items():
        print(f"{backend:8} {'ok' if works else 'unavailable'}: {detail}")
    return 0 if any(works for works, _ in found.values()) else 1


def cmd_play(args: argparse.Namespace) -> int:
    """A person plays an env in the terminal."""
    from sparring.play import load_task, play

    task = load_task(args.task) if args.task else None
    return play(args.env, seed=args.seed, difficulty=args.difficulty, task=task, env_kwargs=dict(args.env_kwargs))


def cmd_status(args: argparse.Namespace) -> int:
    from sparring.report import run_status

    print("\n".join(run_status(args.run_dir)))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The conformance suite on any registered env: a table of checks, exit status 1 when one fails."""
    from sparring.conformance import check, print_report

    report = check(args.env, env_kwargs=dict(args.env_kwargs), episodes=args.episodes, seed=args.seed)
    print_report(report, Console(width=args.width))
    return 0 if report.passed else 1


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve an env with OpenEnv's protocol (HTTP and WebSocket) until interrupted."""
    from sparring.integrations.openenv import serve

    try:
        import openenv.core.env_server  # noqa: F401
    except ImportError as error:
        print(f"sparring serve: error: needs OpenEnv ({error}): pip install \"sparring[openenv]\"", file=sys.stderr)
        return 2
    print(f"serving {args.env} on http://{args.host}:{args.port} (OpenEnv protocol; Ctrl-C stops)", file=sys.stderr)
    serve(args.env, args.host, args.port, max_sessions=args.max_sessions, **dict(args.env_kwargs))
    return 0


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parquet_path(text: str) -> str:
    """An argparse type: a path ending in .parquet."""
    if not text.endswith(".parquet"):
        raise argparse.ArgumentTypeError(f"{text!r} does not end in .parquet: the episodes are saved as one Parquet "
                                         "file, e.g. --output results.parquet")
    return text


def _search_config(text: str) -> dict[str, Any]:
    """An argparse type: tree-search settings as a YAML mapping, checked by `SearchConfig`."""
    import yaml

    from sparring.search import SearchConfig

    try:
        settings = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not YAML: {error}") from error
    fields = ", ".join(SearchConfig.__dataclass_fields__)
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a mapping of search settings; accepted keys: {fields}")
    try:
        SearchConfig(**settings)
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"{error}; accepted keys: {fields}") from error
    return settings


def _key_value(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    return key, yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    parser = argparse.ArgumentParser(prog="sparring", description=__doc__)
    width = argparse.ArgumentParser(add_help=False)  # --width after the verb too: `sparring envs --width 80`
    width.add_argument("--width", type=positive_int, default=argparse.SUPPRESS,
                       help="terminal width for tables (default: the terminal's)")
    parser.add_argument("--width", type=positive_int, default=None, help="terminal width for tables (default: the terminal's)")
    sub = parser.add_subparsers(dest="command", required=True)
    envs = sub.add_parser("envs", parents=[width], help="list every env id; with an id, every argument it accepts "
                          "(type, default, help)")
    envs.add_argument("env", nargs="?", help="an env id, e.g. Countdown-v0")
    envs.add_argument("env_kwargs", type=_key_value, nargs="*", metavar="key=value",
                      help="env arguments that decide the rest, e.g. dataset=basic_arithmetic for ReasoningGym-v0")
    envs.set_defaults(func=cmd_envs)
    demo = sub.add_parser("demo", parents=[width], help="grade expert and wrong Countdown answers")
    demo.add_argument("--episodes", type=int, default=5)
    demo.add_argument("--difficulty", default="medium")
    demo.add_argument("--split", default="train")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    selfplay = sub.add_parser("selfplay", parents=[width], help="run the self-play loop (no arguments: the embedded default)")
    selfplay.add_argument("--config", help="a YAML run config (default: the embedded configs/countdown-ei.yaml)")
    selfplay.add_argument("--run-dir", help="where the run's files go (default runs/<config>-seed<N>)")
    selfplay.add_argument("--seed", type=int, help="overrides the config's seed")
    selfplay.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last finished round")
    selfplay.add_argument("--print-config", action="store_true",
                          help="print the resolved config (defaults, --config, overrides) with every key's help, and exit")
    selfplay.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, dotted for nested keys")
    selfplay.set_defaults(func=cmd_selfplay)
    evaluate = sub.add_parser("eval", parents=[width], help="success and pass@k of a policy on an env split")
    evaluate.add_argument("--policy", required=True, help="a checkpoint folder, a Hugging Face model id (from the local cache, or downloaded where allowed), or an OpenAI-compatible server URL (http://host:8000/v1)")
    evaluate.add_argument("--backend", choices=["hf", "tiny", "vllm", "openai"], help="default: hf, or openai for a URL")
    evaluate.add_argument("--model", help="the served model name (openai backend)")
    evaluate.add_argument("--env", required=True, help="an env id, e.g. Countdown-v0")
    evaluate.add_argument("--env-kwargs", type=_key_value, nargs="*", metavar="key=value",
                          help="env arguments, e.g. difficulty=easy instruction=compact")
    evaluate.add_argument("--split", default="test-seen")
    evaluate.add_argument("--n", type=positive_int, default=500, help="number of tasks")
    evaluate.add_argument("--k", type=positive_int, default=1, help="samples per task for pass@k")
    evaluate.add_argument("--temperature", type=float, default=1.0)
    evaluate.add_argument("--max-tokens", type=int, default=64)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--search", type=_search_config, nargs="?", const={}, metavar="YAML",
                          help="tree search instead of greedy decoding, on multi-turn envs (CountdownSteps-v0, "
                               "TextNav-v0, TextWorld-v0): a task counts when the search's trace verifies. Optional "
                               "settings as YAML, e.g. '{width: 4, beam: 4, rollouts: 1, node_budget: 64}'")
    evaluate.add_argument("--output", type=_parquet_path, help="save every graded episode here (a .parquet file, "
                          "the trajectory format; sparring report FILE shows them)")
    evaluate.add_argument("-v", "--verbose", action="store_true", help="show the libraries' logs and progress "
                          "bars (vLLM's start-up log included)")
    evaluate.set_defaults(func=cmd_eval)
    report = sub.add_parser("report", parents=[width], help="one static HTML page of a run (metrics, plots, "
                            "trajectories, config) or of the episodes `eval --output` saved")
    report.add_argument("path", help="a run directory, or a .parquet file of trajectories")
    report.add_argument("-o", "--output", help="the page to write (default RUN/report.html, or FILE.html)")
    report.add_argument("--sample", type=positive_int, default=4, help="trajectories shown per round, kind, "
                        "source and outcome (default 4)")
    report.set_defaults(func=cmd_report)
    sandbox = sub.add_parser("sandbox", parents=[width], help="code sandboxes: `info` (what works here), `build-image` (Docker, offline)")
    sandbox.add_argument("action", choices=["info", "build-image"])
    sandbox.add_argument("--tag", default="sparring-sandbox:latest", help="build-image: the image tag")
    sandbox.set_defaults(func=cmd_sandbox)
    play = sub.add_parser("play", parents=[width], help="play an env yourself in the terminal (help lists commands, quit leaves)")
    play.add_argument("env", help="an env id, e.g. TextNav-v0")
    play.add_argument("--seed", type=int, help="the episode's seed (default: a random one)")
    play.add_argument("--difficulty", help="a preset: easy, medium, hard")
    play.add_argument("--task", help="a task as JSON, or @file.json: play exactly this task")
    play.add_argument("env_kwargs", type=_key_value, nargs="*", metavar="key=value",
                      help="env arguments, e.g. instruction=compact n_rooms=6")
    play.set_defaults(func=cmd_play)
    status = sub.add_parser("status", help="where a self-play run stands: rounds finished, the round's stage and progress")
    status.add_argument("run_dir", metavar="RUN", help="the run directory (sparring selfplay --run-dir)")
    status.set_defaults(func=cmd_status)
    check = sub.add_parser("check", parents=[width], help="run the conformance suite on any registered env (yours too): table, exit 1 on failure")
    check.add_argument("env", help="a registered env id, e.g. Countdown-v0 or my_package:MyEnv-v0")
    check.add_argument("--episodes", type=int, default=10, help="seeds per check")
    check.add_argument("--seed", type=int, default=0, help="the first seed")
    check.add_argument("env_kwargs", type=_key_value, nargs="*", metavar="key=value", help="env arguments")
    check.set_defaults(func=cmd_check)
    serve = sub.add_parser("serve", help="serve an env as an OpenEnv server (pip install \"sparring[openenv]\")")
    serve.add_argument("env", help="an env id, e.g. TextNav-v0")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=positive_int, default=8000)
    serve.add_argument("--max-sessions", type=positive_int, default=64, help="WebSocket sessions at once")
    serve.add_argument("env_kwargs", type=_key_value, nargs="*", metavar="key=value",
                       help="env arguments, e.g. difficulty=easy instruction=compact")
    serve.set_defaults(func=cmd_serve)
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse leaves positionals that follow options unparsed: play's key=value env arguments
        if args.command not in ("play", "check", "envs", "serve") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.env_kwargs += [_key_value(e) for e in extra]
    try:
        return args.func(args)
    except (ValueError, TypeError, SparringError) as error:
        print(f"sparring {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # selfplay and play say more themselves
        print(f"\nsparring {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
