"""The run report: written by every round, rebuilt by `sparring report`, read in a real browser (Debian's chromium
driven by playwright), and the episodes `sparring eval --output` saves."""

import json
import re
import shutil

import gymnasium
import pytest
from kit import small_run

import sparring  # noqa: F401
from sparring.cli import main
from sparring.report import build_report, write_report
from sparring.trajectories import Trajectory, Turn, load_trajectories, save_trajectories

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">'\"&"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    small_run(run)
    return run


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium here (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, path):
    """The page opened from disk; every request it makes and every script error are recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.requests, page.errors = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(path.as_uri())
    return page


def expert_and_hostile(n=6):
    """Countdown episodes graded by the env: the expert's answers (solved) and hostile HTML answers (failed)."""
    from sparring.trainers.bootstrap import expert_demonstrations

    env = gymnasium.make("Countdown-v0", difficulty="easy")
    tasks = [env.unwrapped.generate_task(i, seed=3).to_dict() for i in range(n)]
    episodes = expert_demonstrations("Countdown-v0", {"difficulty": "easy"}, tasks[: n // 2])
    for task in tasks[n // 2:]:
        observation, _ = env.reset(options={"task": task})
        _, reward, _, _, info = env.step(HOSTILE)
        episodes.append(Trajectory("Countdown-v0", task, [Turn(observation, HOSTILE, float(reward))], info["verdict"],
                                   source="policy", meta={"eval": "eval", "mode": "greedy"}))
    return episodes


def test_every_round_writes_the_report_and_its_held_out_episodes(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    page = (run / "report.html").read_text()
    shown = {(m, int(r)): float(v) for m, r, v in re.findall(r"data-metric='([^']+)' data-round='(\d+)' "
                                                             r"data-value='([^']+)'", page)}
    numbers = {(k, row["round"]): float(v) for row in rows for k, v in row.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "round"}
    assert shown == numbers  # every number of metrics.jsonl, exactly, and nothing else
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)  # nothing to fetch
    for r in (0, 1):
        episodes = load_trajectories(run / f"rounds/00{r}/eval-trajectories")
        assert len(episodes) == 12 * (1 + 2)  # greedy, then k=2 samples per held-out task
        assert [e.meta["mode"] for e in episodes].count("greedy") == 12 and {e.meta["eval"] for e in episodes} == {"eval"}
        assert rows[r]["eval/success"] == sum(e.success for e in episodes if e.meta["mode"] == "greedy") / 12
    assert "data-source='eval'" in page and "data-source='generator'" in page
    assert build_report(run).count("<svg") >= 3  # success and loss, expert iteration, time


def test_the_report_in_a_browser(run, browser, tmp_path):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    page = open_page(browser, run / "report.html")
    for row in rows:  # the numbers the page shows are metrics.jsonl's
        for key in ("eval/success", "eval/pass@2", "time/round_s"):
            cell = page.locator(f"td[data-metric='{key}'][data-round='{row['round']}']")
            assert cell.inner_text() == f"{row[key]:.3f}"
    assert page.locator("td[data-metric='train/loss'][data-round='1']").inner_text() == f"{rows[1]['train/loss']:.3f}"
    total = page.locator("details.traj").count()
    assert total > 0 and page.locator("#f-count").inner_text() == f"{total} of {total} shown"
    # filters: held-out episodes only, then round 1's training episodes
    page.select_option("#f-source", "eval")
    visible = page.locator("details.traj:visible")
    assert 0 < visible.count() < total and page.locator("#f-count").inner_text().startswith(f"{visible.count()} of")
    assert {visible.nth(i).get_attribute("data-source") for i in range(visible.count())} == {"eval"}
    page.select_option("#f-source", "generator")
    page.select_option("#f-round", "1")
    visible = page.locator("details.traj:visible")
    assert visible.count() > 0
    assert {(visible.nth(i).get_attribute("data-source"), visible.nth(i).get_attribute("data-round"))
            for i in range(visible.count())} == {("generator", "1")}
    # into a trajectory: its task, observation, action and verdict
    first = visible.nth(0)
    first.locator("summary").click()
    assert first.get_attribute("open") is not None and first.locator("pre.obs").first.is_visible()
    trajectories = load_trajectories(run / "rounds/001/trajectories")
    observations = {t.turns[0].observation for t in trajectories}
    assert first.locator("pre.obs").first.inner_text() in observations
    assert first.locator("pre.feedback").inner_text().strip()  # the verdict's feedback
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert page.errors == [] and all(url.startswith(("file://", "data:")) for url in page.requests), page.requests


def test_model_text_is_shown_as_text_and_outcome_filter(tmp_path, browser):
    episodes = expert_and_hostile()
    save_trajectories(episodes, tmp_path / "episodes.parquet")
    path = write_report(tmp_path / "episodes.parquet")
    assert path == tmp_path / "episodes.html" and "<script>window.pwned" not in path.read_text()
    page = open_page(browser, path)
    assert page.evaluate("window.pwned") is None  # no script of the model's ran
    page.select_option("#f-success", "1")
    solved = page.locator("details.traj:visible")
    assert solved.count() == 3 and all(solved.nth(i).get_attribute("data-success") == "1" for i in range(3))
    page.select_option("#f-success", "0")
    failed = page.locator("details.traj:visible").nth(0)
    failed.locator("summary").click()
    assert failed.locator("pre.act").inner_text() == HOSTILE  # shown as the model wrote it
    assert page.evaluate("window.pwned") is None and page.errors == []


def test_eval_output_saves_every_graded_episode(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    assert main(["eval", "--policy", str(tiny_checkpoint), "--env", "Countdown-v0", "--n", "4", "--k", "3",
                 "--max-tokens", "8", "--output", str(out)]) == 0
    episodes = load_trajectories(out)
    assert len(episodes) == 4 * (1 + 3) and [e.meta["mode"] for e in episodes] == ["greedy"] * 4 + ["sampled"] * 12
    assert all(e.env_id == "Countdown-v0" and e.turns and "feedback" in e.verdict for e in episodes)
    assert "16 episodes saved" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    page = (tmp_path / "results.html").read_text()
    assert "16 episodes" in page and page.count("class='traj'") == 16
    with pytest.raises(SystemExit):  # not a .parquet name: argparse says so
        main(["eval", "--policy", str(tiny_checkpoint), "--env", "Countdown-v0", "--output", str(tmp_path / "x.json")])
    assert "does not end in .parquet" in capsys.readouterr().err


def test_report_of_a_missing_path_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
