"""A run's report: one static HTML page that works opened from disk (no server, no internet, nothing fetched).

    sparring report runs/countdown-ei-seed0          # -> runs/countdown-ei-seed0/report.html
    sparring report results.parquet                  # the episodes `sparring eval --output` saved -> results.html

The self-play loop rewrites `RUN/report.html` at the end of every round. The page holds the resolved config,
the metrics of every round as a table (the numbers of metrics.jsonl) and as plots (held-out success with its
95% interval and pass@k, training losses, the trainer's and the agents' metrics, timings), the proposer's
tasks, the skill library and the reflections of each round, and a sample of each round's trajectories:
training episodes and held-out evaluation episodes, each with its task, every turn's observation and action,
and the verdict with its feedback, filtered by round, source and success.

Plots are matplotlib SVG written into the page; the filters are a few lines of inline JavaScript. Every text
that a model or a task wrote is HTML-escaped (it comes from an attacker, as far as this page is concerned).
"""

from __future__ import annotations

import html
import io
import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sparring.io import atomic_write_text, read_jsonl
from sparring.trajectories import Trajectory

SAMPLE = 4  # trajectories shown per round, kind (training / held-out), source and outcome
ROWS = 200  # records shown per table (proposals, skills, reflections)
TEXT = 4000  # characters shown of one observation, action or table cell
# metrics plotted together as small multiples, by the prefix of their name
GROUPS = [("Expert iteration", "ei/"), ("GRPO", "grpo/"), ("Proposer", "proposer/"), ("Verifiers", "verifier/"),
          ("Reflector", "reflector/"), ("Skills", "skills/"), ("Bootstrap", "bootstrap/"), ("Time (seconds)", "time/")]


def default_output(path: str | Path) -> Path:
    """Where `sparring report PATH` writes: RUN/report.html for a run, FILE.html beside a Parquet file."""
    path = Path(path)
    if path.is_dir() and not _is_run(path):
        return path.with_name(path.name + ".html")
    return path / "report.html" if path.is_dir() else path.with_suffix(".html")


def write_report(path: str | Path, output: str | Path | None = None, *, sample: int = SAMPLE) -> Path:
    """Build the page for a run directory or a trajectories Parquet file/folder and write it atomically."""
    output = Path(output) if output is not None else default_output(path)
    atomic_write_text(output, build_report(path, sample=sample))
    return output


def build_report(path: str | Path, *, sample: int = SAMPLE) -> str:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a run directory (sparring selfplay --run-dir) or the "
                                "Parquet file of `sparring eval --output`")
    if path.is_dir() and _is_run(path):
        return _run_page(path, sample)
    if path.is_file() and path.suffix != ".parquet":
        raise ValueError(f"{path} is neither a run directory (with metrics.jsonl) nor a .parquet file of trajectories")
    table = _read(path)
    body = [_summary_of(table), _trajectories_section(_sample(table, sample * 10, None, "file"), table.num_rows)]
    return _page(f"{path.name}: {table.num_rows} episodes", body)


def _is_run(path: Path) -> bool:
    return (path / "metrics.jsonl").exists() or (path / "config.yaml").exists()


# ---- the run's page -------------------------------------------------------------------------------------------
def _run_page(run: Path, sample: int) -> str:
    import yaml

    rows = read_jsonl(run / "metrics.jsonl")
    config_text = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else ""
    config = yaml.safe_load(config_text) or {} if config_text else {}
    env_id = (config.get("env") or {}).get("id", "?")
    body = [_headline(rows, config), "<h2 id='metrics'>Metrics per round</h2>", _plots(rows),
            _metrics_table(rows)]
    shown, total, task_sources = [], 0, {}
    rounds_html = []
    for folder in sorted((run / "rounds").glob("[0-9][0-9][0-9]")) if (run / "rounds").exists() else []:
        r = int(folder.name)
        records = read_jsonl(folder / "tasks.jsonl")
        task_sources.update({json.dumps(rec["task"], sort_keys=True): rec.get("source", "generator") for rec in records})
        for kind, sub in (("training", "trajectories"), ("eval", "eval-trajectories")):
            if (folder / sub).is_dir() and any((folder / sub).glob("*.parquet")):
                table = _read(folder / sub)
                total += table.num_rows
                shown += _sample(table, sample, r, kind, task_sources)
        rounds_html.append(_round_section(r, folder, records))
    body.append(_trajectories_section(shown, total))
    body.append("<h2 id='rounds'>Tasks, proposals, skills and reflections per round</h2>")
    body += rounds_html or ["<p>No round has written its files yet.</p>"]
    body.append(f"<h2 id='config'>Config</h2><pre class='config'>{_e(config_text)}</pre>")
    return _page(f"{run.name}: {env_id}, {len(rows)} finished round(s)", body)


def _headline(rows: list[dict[str, Any]], config: dict[str, Any]) -> str:
    if not rows:
        return "<p>No finished round yet.</p>"
    last, first = rows[-1], rows[0]
    parts = [f"<b>{_e(config.get('algorithm', '?'))}</b> on <b>{_e((config.get('env') or {}).get('id', '?'))}</b>",
             f"rounds 0-{_e(last.get('round'))} finished"]
    if "eval/success" in last:
        interval = ""
        if "eval/success_low" in last:
            interval = f" (95% interval {_num(last['eval/success_low'])}-{_num(last['eval/success_high'])})"
        parts.append(f"held-out success {_num(first['eval/success'])} at round {_e(first.get('round'))} -> "
                     f"<b>{_num(last['eval/success'])}</b>{interval} at round {_e(last.get('round'))}")
    return "<p class='headline'>" + "; ".join(parts) + "</p>"


def _numeric(rows: list[dict[str, Any]]) -> list[str]:
    """The metric names with a number in some round, in first-seen order (round first)."""
    keys: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "round":
                keys[key] = None
    return list(keys)


def _metrics_table(rows: list[dict[str, Any]]) -> str:
    """Every number of metrics.jsonl: a row per metric, a column per round. Each cell keeps the exact value in
    `data-value`; it shows 3 decimals (integers as they are)."""
    if not rows:
        return ""
    head = "".join(f"<th>round {_e(row.get('round'))}</th>" for row in rows)
    lines = []
    for key in _numeric(rows):
        cells = []
        for row in rows:
            value = row.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f"<td data-metric='{_e(key)}' data-round='{_e(row.get('round'))}' "
                             f"data-value='{_e(repr(value))}'>{_num(value)}</td>")
            else:
                cells.append("<td>-</td>")
        lines.append(f"<tr><th class='metric'>{_e(key)}</th>{''.join(cells)}</tr>")
    return (f"<details open><summary>Every metric (metrics.jsonl)</summary><div class='scroll'>"
            f"<table id='metrics-table'><tr><th>metric</th>{head}</tr>{''.join(lines)}</table></div></details>")


def _plots(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [row.get("round") for row in rows]
    keys = _numeric(rows)
    figures = []
    with plt.rc_context({"svg.fonttype": "none", "font.size": 8}):
        fig, (success, loss) = plt.subplots(1, 2, figsize=(10, 3.4))
        for key in [k for k in keys if re.fullmatch(r"(control/)?eval(/[^/]+)?/(success|pass@\d+)", k)]:
            xs, ys = _series(rows, key)
            line, = success.plot(xs, ys, "o-" if key.endswith("success") else "s--", label=key)
            low, high = _series(rows, f"{key}_low")[1], _series(rows, f"{key}_high")[1]
            if key.endswith("success") and len(low) == len(ys) == len(high):
                success.fill_between(xs, low, high, alpha=0.15, color=line.get_color())
        success.set(title="held-out success (greedy, 95% interval) and pass@k", xlabel="round", ylim=(-0.02, 1.02))
        for key in [k for k in keys if re.search(r"(^|/)loss$", k)]:
            loss.plot(*_series(rows, key), "o-", label=key)
        loss.set(title="training loss", xlabel="round")
        for ax in (success, loss):
            ax.set_xticks(rounds)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        figures.append(("Held-out success and training loss", _svg(fig)))
        for title, prefix in GROUPS:
            group = [k for k in keys if k.startswith(prefix) and not re.search(r"(^|/)loss$", k)]
            if not group:
                continue
            columns = min(4, len(group))
            fig, axes = plt.subplots(math.ceil(len(group) / columns), columns, squeeze=False,
                                     figsize=(2.6 * columns, 2.0 * math.ceil(len(group) / columns)))
            for ax, key in zip(axes.flat, group):
                ax.plot(*_series(rows, key), "o-")
                ax.set_title(key, fontsize=7)
                ax.set_xticks(rounds)
                ax.grid(alpha=0.3)
            for ax in list(axes.flat)[len(group):]:
                ax.axis("off")
            figures.append((title, _svg(fig)))
        curve = next((row.get("bootstrap/curve") for row in rows if row.get("bootstrap/curve")), None)
        if curve:
            fig, ax = plt.subplots(figsize=(4, 2.6))
            ax.plot([step for step, _ in curve], [s for _, s in curve], "o-")
            ax.set(title="bootstrap: development success per step", xlabel="step")
            ax.grid(alpha=0.3)
            figures.append(("Bootstrap plateau", _svg(fig)))
        plt.close("all")
    return "".join(f"<figure><figcaption>{_e(t)}</figcaption>{svg}</figure>" for t, svg in figures)


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[Any], list[float]]:
    points = [(row.get("round"), row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    return [x for x, _ in points], [y for _, y in points]


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # matplotlib's RDF: date and version
    return text[text.index("<svg"):]  # the XML prolog and DOCTYPE do not belong inside HTML


def _round_section(r: int, folder: Path, records: list[dict[str, Any]]) -> str:
    parts = []
    if records:
        counts = Counter(rec.get("source", "generator") for rec in records)
        parts.append("<p>Training tasks: " + ", ".join(f"{n} {_e(s)}" for s, n in counts.most_common()) + "</p>")
    for name, title, columns in (
            ("proposals.jsonl", "Proposer's tasks", ["text", "label", "reason", "pass_rate", "learnability", "task"]),
            ("skills.jsonl", "Skill library", None), ("reflections.jsonl", "Reflections", None)):
        found = read_jsonl(folder / name)
        if found:
            parts.append(f"<details><summary>{_e(title)} ({len(found)})</summary>{_table(found, columns)}</details>")
    if not parts:
        return ""
    return f"<section class='round' id='round-{r}'><h3>Round {r}</h3>{''.join(parts)}</section>"


def _table(records: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    columns = columns or list(dict.fromkeys(key for record in records for key in record))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(record.get(c))}</td>" for c in columns) + "</tr>"
                   for record in records[:ROWS])
    more = f"<p>{len(records) - ROWS} more in the file.</p>" if len(records) > ROWS else ""
    return f"<div class='scroll'><table class='records'><tr>{head}</tr>{body}</table></div>{more}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _num(value)
    return _e(_cut(value if isinstance(value, str) else json.dumps(value, sort_keys=True)))


# ---- trajectories -------------------------------------------------------------------------------------------
def _read(path: Path) -> Any:
    """The trajectories saved at `path` (a folder of Parquet files, or one file) as one Arrow table: a round
    holds tens of thousands; only the sampled rows become `Trajectory` objects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no trajectories (*.parquet) in {str(path)!r}")
    return pa.concat_tables([pq.read_table(file) for file in files])


def _source(source: str, task: str, kind: str, task_sources: dict[str, str]) -> str:
    """What the filter calls a trajectory's source: held-out episodes are "eval"; a trainer's own kind
    ("refined", "search", "expert") wins; else where its task came from (generator, proposer, chain, ...)."""
    if kind == "eval":
        return "eval"
    if source != "policy":
        return source
    return task_sources.get(task, "policy")


def _sample(table: Any, per_group: int, r: int | None, kind: str,
            task_sources: dict[str, str] | None = None) -> list[tuple[Trajectory, str, int | None]]:
    """Up to `per_group` episodes of each (source, outcome), drawn with a seed fixed by the round: a page
    rebuilt later shows the same ones."""
    groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
    columns = zip(*(table.column(c).to_pylist() for c in ("source", "task", "success")))
    for i, (source, task, success) in enumerate(columns):
        groups[(_source(source, task, kind, task_sources or {}), bool(success))].append(i)
    rng, picked = random.Random(r or 0), []
    for (source, _), group in sorted(groups.items()):
        picked += [(i, source) for i in sorted(rng.sample(group, min(per_group, len(group))))]
    rows = table.take([i for i, _ in picked]).to_pylist() if picked else []
    return [(Trajectory.from_row(row), source, r) for row, (_, source) in zip(rows, picked)]


def _summary_of(table: Any) -> str:
    solved = sum(map(bool, table.column("success").to_pylist()))
    by_env = Counter(table.column("env_id").to_pylist())
    return (f"<p class='headline'>{table.num_rows} episodes ({', '.join(f'{n} {_e(k)}' for k, n in by_env.items())});"
            f" <b data-solved='{solved}'>{solved}</b> solved ({_num(solved / max(1, table.num_rows))})</p>")


def _trajectories_section(shown: list[tuple[Trajectory, str, int | None]], total: int) -> str:
    rounds = sorted({r for _, _, r in shown if r is not None})
    sources = sorted({s for _, s, _ in shown})
    options = lambda values: "".join(f"<option value='{_e(v)}'>{_e(v)}</option>" for v in values)  # noqa: E731
    filters = (f"<div class='filters'>round <select id='f-round'><option value='all'>all</option>{options(rounds)}"
               f"</select> source <select id='f-source'><option value='all'>all</option>{options(sources)}</select> "
               "outcome <select id='f-success'><option value='all'>all</option><option value='1'>solved</option>"
               "<option value='0'>failed</option></select> <span id='f-count'></span></div>")
    items = "".join(_trajectory(t, source, r, i) for i, (t, source, r) in enumerate(shown))
    return (f"<h2 id='trajectories'>Trajectories</h2><p>A sample of {len(shown)} of {total} episodes: up to "
            f"{_e(SAMPLE)} per round, kind, source and outcome by default (<code>sparring report --sample N</code>). "
            f"Source <i>eval</i>: held-out evaluation episodes.</p>{filters}<div id='trajectories-list'>{items}</div>")


def _trajectory(t: Trajectory, source: str, r: int | None, i: int) -> str:
    mark = "solved" if t.success else "failed"
    task = _cut(json.dumps(t.task, sort_keys=True), 160)
    extra = f" ({_e(t.meta['mode'])})" if "mode" in t.meta else ""  # greedy or sampled (pass@k)
    if t.meta.get("eval", "eval") != "eval":
        extra += f" set {_e(t.meta['eval'].removeprefix('eval/'))}"
    turns = "".join(
        f"<div class='turn'><div class='label'>turn {n + 1}: observation</div><pre class='obs'>{_e(_cut(turn.observation))}"
        f"</pre><div class='label'>action (reward {_num(turn.reward)})</div><pre class='act'>{_e(_cut(turn.action))}</pre></div>"
        for n, turn in enumerate(t.turns))
    details = t.verdict.get("details") or {}
    return (f"<details class='traj' id='traj-{i}' data-round='{_e(r if r is not None else '')}' data-source='{_e(source)}' "
            f"data-success='{int(t.success)}' data-reward='{_e(repr(t.reward))}'><summary><span class='{mark}'>{mark}</span>"
            f" round {_e(r if r is not None else '-')} · {_e(source)}{extra} · reward {_num(t.reward)} · {len(t.turns)} turn(s) · "
            f"<code>{_e(task)}</code></summary><div class='body'><div class='label'>task ({_e(t.env_id)})</div>"
            f"<pre>{_e(json.dumps(t.task, indent=1, sort_keys=True))}</pre>{turns}<div class='verdict'>"
            f"<div class='label'>verdict</div><p>reward {_num(t.reward)}, {'success' if t.success else 'no success'}</p>"
            f"<pre class='feedback'>{_e(_cut(str(t.verdict.get('feedback', ''))))}</pre>"
            + (f"<pre>{_e(_cut(json.dumps(details, indent=1, sort_keys=True)))}</pre>" if details else "")
            + "</div></div></details>")


# ---- the page -------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def _cut(text: str, n: int = TEXT) -> str:
    return text if len(text) <= n else text[:n] + f"... ({len(text) - n} more characters)"


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;vertical-align:top}
th.metric,table.records td{text-align:left}.scroll{overflow-x:auto;max-height:40em}
table.records td{max-width:40em;white-space:pre-wrap;word-break:break-word}
figure{margin:1em 0}figcaption{font-weight:bold}svg{max-width:100%;height:auto}
pre{background:#f6f6f6;padding:6px;white-space:pre-wrap;word-break:break-word;max-height:30em;overflow:auto;margin:2px 0}
pre.act{background:#eef5ff}.label{font-size:11px;color:#666;margin-top:4px}
details.traj{border:1px solid #ddd;margin:3px 0;padding:3px 6px}details.traj summary{cursor:pointer}
.solved{color:#fff;background:#2a7;padding:0 4px}.failed{color:#fff;background:#c44;padding:0 4px}
.filters{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #eee}
.headline{font-size:1.05em}
"""

SCRIPT = """
function sparringFilter(){
  var r=document.getElementById('f-round').value,s=document.getElementById('f-source').value,
      o=document.getElementById('f-success').value,n=0,all=document.querySelectorAll('details.traj');
  all.forEach(function(t){var show=(r==='all'||t.dataset.round===r)&&(s==='all'||t.dataset.source===s)&&
    (o==='all'||t.dataset.success===o);t.hidden=!show;if(show)n++;});
  document.getElementById('f-count').textContent=n+' of '+all.length+' shown';
}
['f-round','f-source','f-success'].forEach(function(id){var e=document.getElementById(id);
  if(e)e.addEventListener('change',sparringFilter);});
if(document.getElementById('f-round'))sparringFilter();
"""


def _page(title: str, body: list[str]) -> str:
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = ("<p><a href='#metrics'>metrics</a> · <a href='#trajectories'>trajectories</a> · "
           "<a href='#rounds'>proposals, skills, reflections</a> · <a href='#config'>config</a></p>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; img-src data:\">"
            f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1><p class='made'>sparring report, {made}</p>"
            f"{nav}{''.join(body)}<script>{SCRIPT}</script></body></html>\n")


# ---- the terminal's round table and curves.png, redrawn every round ----------------------------------------
def round_table(rows: list[dict[str, Any]], columns: list[str], title: str, width: int) -> Any:
    """The metrics of each round as a table that fits `width` columns: one row per round when that fits, else
    one row per metric and a column per round (the latest rounds that fit). Rounds that trained on nothing
    (`ei/examples` 0) are named in the caption."""
    from rich.table import Table

    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    wide = sum(max(len(c), *(len(r[i]) for r in cells)) + 3 for i, c in enumerate(columns)) + 1
    untrained = [str(row["round"]) for row in rows if row.get("round", 0) > 0 and trained_on_nothing(row)]
    caption = f"round {', '.join(untrained)} trained on nothing (ei/kept 0)" if untrained else None
    if wide <= width:
        table = Table(title=title, caption=caption)
        for column in columns:
            table.add_column(column, justify="right")
        for row in cells:
            table.add_row(*row)
        return table
    metrics = [c for c in columns if c != "round"]
    label = max(map(len, metrics)) + 3
    per_round = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    fit = max(1, (width - label - 1) // (max(per_round + [5]) + 3))
    shown = rows[-fit:]
    if len(shown) < len(rows):
        caption = "; ".join(filter(None, [caption, f"rounds 0-{shown[0]['round'] - 1}: metrics.jsonl"]))
    table = Table(title=title, caption=caption)
    table.add_column("metric")
    for row in shown:
        table.add_column(f"r{row['round']}", justify="right")
    for metric in metrics:
        table.add_row(metric, *[_fmt(row.get(metric)) for row in shown])
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def plot_curves(rows: list[dict[str, Any]], path: Path, k: int, eval_sets: Sequence[str] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [row["round"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, [row["eval/success"] for row in rows], "o-", label="held-out success (greedy)")
    ax.fill_between(rounds, [row["eval/success_low"] for row in rows], [row["eval/success_high"] for row in rows], alpha=0.2)
    if all(f"eval/pass@{k}" in row for row in rows):
        ax.plot(rounds, [row[f"eval/pass@{k}"] for row in rows], "s--", label=f"held-out pass@{k}")
    for name in eval_sets:  # the named held-out sets (easy-to-hard: 5 numbers, the bootstrap's 3), with intervals
        key = f"eval/{name}/success"
        if all(key in row for row in rows):
            line, = ax.plot(rounds, [row[key] for row in rows], "o-", label=f"held-out success: {name}")
            ax.fill_between(rounds, [row[f"eval/{name}/success_low"] for row in rows],
                            [row[f"eval/{name}/success_high"] for row in rows], alpha=0.15, color=line.get_color())
    control = [(row["round"], row["control/eval/success"]) for row in rows if "control/eval/success" in row]
    if control:
        ax.plot([0] + [r for r, _ in control], [rows[0]["eval/success"]] + [s for _, s in control], "^:",
                label="control: more expert demonstrations")
    ax.set_xlabel("round (0 = bootstrap)")
    ax.set_ylabel("success")
    ax.set_xticks(rounds)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def warn_untrained(console: Any, r: int, metrics: dict[str, Any]) -> None:
    """A round whose trainer had no example (no sampled answer verified, nothing replayed or searched) looks like
    any other in the table: say so."""
    if r > 0 and trained_on_nothing(metrics):
        what = "no pair of its attempts differed in score (dpo/pairs 0)" if "dpo/pairs" in metrics else \
            "none of its sampled answers verified (ei/kept 0)"
        console.print(f"[bold yellow]warning:[/bold yellow] round {r} trained on nothing: {what} and no training "
                      "step ran. More samples per task (expert_iteration.k), easier tasks (env.curriculum) or "
                      "expert_iteration.replay help")


def trained_on_nothing(metrics: dict[str, Any]) -> bool:
    """Whether a round's trainer had nothing to train on: no example (expert iteration) or no pair (DPO)."""
    return metrics.get("ei/examples") == 0 or metrics.get("dpo/pairs") == 0


# ---- where a run stands (sparring status RUN) ------------------------------------------------------

def run_status(run_dir: str | Path) -> list[str]:
    """Lines that say where the run in `run_dir` stands: rounds finished, the current round's finished stages,
    the stage under way and its progress (sampling parts written, the trainer's last checkpoint)."""
    from sparring.agents.roles import Roles
    from sparring.errors import SparringError
    from sparring.selfplay_config import load_selfplay_config
    from sparring.stages import RoundRecords, stage_order

    root = Path(run_dir)
    if not (root / "config.yaml").exists():
        raise SparringError(f"{root} holds no config.yaml: it is not a sparring selfplay run directory")
    config = load_selfplay_config(root / "config.yaml", [])
    total = config.rounds + 1
    skipped = {"control"} if not (config.control and config.algorithm == "expert_iteration") else set()
    skipped |= {"agents", "agents_bootstrap"} if not Roles.wanted(config) else set()
    rows = []
    if (root / "metrics.jsonl").exists():
        for line in (root / "metrics.jsonl").read_text(errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break  # a cut-short line: `--resume` repairs it
    lines = [f"{root}: {len(rows)} of {total} rounds finished (round 0 is the bootstrap)"
             + (f"; held-out success {rows[-1]['eval/success']:.3f} after round {len(rows) - 1}"
                if rows and isinstance(rows[-1].get("eval/success"), (int, float)) else "")]
    r = len(rows)
    if r >= total:
        return lines + ["finished: every round is in metrics.jsonl"]
    records = RoundRecords(root / "rounds" / f"{r:03d}", r)
    done = records.finished()
    pending = [s for s in stage_order(r) if s not in done and s not in skipped]
    now = pending[0] if pending else "writing its line of metrics.jsonl"
    detail = []
    parts = sorted((root / "rounds" / f"{r:03d}" / "sampling").glob("part-*"))
    tasks_file = root / "rounds" / f"{r:03d}" / "tasks.jsonl"
    if now == "sampling" and tasks_file.exists():
        n_tasks = sum(1 for line in tasks_file.read_text().splitlines() if line.strip())
        written = sum(int(p.name.split("-")[2]) - int(p.name.split("-")[1]) for p in parts if p.name.count("-") == 2
                      and all(x.isdigit() for x in p.name.split("-")[1:]))
        detail.append(f"episodes of {written} of {n_tasks} tasks written")
    for folder in sorted((root / "tmp-trainer").glob(f"{r:03d}-*")):
        for checkpoint in sorted(folder.glob("checkpoint-*")):
            try:
                state = json.loads((checkpoint / "trainer_state.json").read_text())
            except (OSError, ValueError):
                continue
            detail.append(f"{folder.name.split('-', 1)[1]}: trainer checkpoint at step {state.get('global_step')} "
                          f"of {state.get('max_steps')}")
    lines.append(f"round {r}: " + (f"finished {', '.join(done)}; " if done else "")
                 + f"now {now}" + (f" ({'; '.join(detail)})" if detail else "")
                 + (f"; then {', '.join(pending[1:])}" if len(pending) > 1 else ""))
    return lines
