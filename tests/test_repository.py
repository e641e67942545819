"""The public repository is named in one place (tools/repository.py), and the chapters' data ships with pgbook.

Issue 14: every launch link, install cell and citation derives from ``_config.yml``'s
``repository.url`` and ``pyproject.toml``'s version; the benchmark results chapters 9-10 plot are
package data. (That every chapter runs outside the checkout is ``make outside``.)
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from pgbook import results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import repository  # noqa: E402

pytestmark = pytest.mark.kernel_independent


def test_every_derived_place_agrees_with_the_config():
    assert repository.check(ROOT) == []


@pytest.fixture
def copy(tmp_path):
    """A copy of what the tool reads, to break on purpose."""
    for name in ("_config.yml", "pyproject.toml", "README.md", "references.bib"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "src" / "pgbook").mkdir(parents=True)
    shutil.copy(ROOT / "src" / "pgbook" / "__init__.py", tmp_path / "src" / "pgbook")
    (tmp_path / "book").mkdir()
    for nb in repository.notebooks(ROOT)[:2]:
        shutil.copy(nb, tmp_path / "book")
    assert repository.check(tmp_path) == []
    return tmp_path


def test_a_changed_url_is_reported_everywhere_and_write_fixes_it(copy):
    config = copy / "_config.yml"
    config.write_text(config.read_text().replace(repository.repository_url(ROOT), "https://github.com/someone/fork"))
    problems = repository.check(copy)
    assert sum("install cell" in p for p in problems) == 2
    assert any(p.startswith("README.md") for p in problems) and any(p.startswith("references.bib") for p in problems)
    assert len(repository.write(copy)) == 4  # two notebooks, README, references.bib
    assert repository.check(copy) == []
    assert "git+https://github.com/someone/fork@main" in (copy / "book" / repository.notebooks(ROOT)[0].name).read_text()


def test_a_version_bump_without_the_package_is_reported(copy):
    py = copy / "pyproject.toml"
    py.write_text(py.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    assert len(repository.check(copy)) == 5  # two install cells (they name the version), README, bib, __init__
    repository.write(copy)
    assert repository.check(copy) == ["src/pgbook/__init__.py: __version__ is not pyproject.toml's 0.2.0"]


def test_an_install_cell_that_prints_or_is_shown_is_reported(copy):
    path = repository.notebooks(copy)[0]
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.metadata["tags"] = []
    nbformat.write(nb, path)
    assert any("tagged remove-cell" in p for p in repository.check(copy))


def test_a_bad_url_is_refused(copy):
    config = copy / "_config.yml"
    config.write_text(config.read_text().replace(repository.repository_url(ROOT), "github.com/x"))
    with pytest.raises(SystemExit, match="repository.url"):
        repository.check(copy)


@pytest.mark.parametrize("name", results.RESULT_FILES)
def test_shipped_results_are_the_committed_csv(name):
    """read_rows gives the rows of src/pgbook/data/<name> exactly, read the plain way."""
    with open(ROOT / "src" / "pgbook" / "data" / name, newline="", encoding="utf-8") as fh:
        expected = list(csv.DictReader(fh))
    assert results.read_rows(name) == expected and len(expected) > 10


def _run_row(impl, seed, step, seconds, ret, batch=2048, env_id="Hopper-v5", cpu=""):
    return {"impl": impl, "env_id": env_id, "seed": str(seed), "step": str(step), "train_seconds": str(seconds),
            "cpu_seconds": str(cpu), "eval_mean": str(ret), "batch": str(batch)}


def test_summarize_runs_takes_each_runs_last_row():
    """Final return = the evaluation at each run's largest step, whatever the rows' order (seed 0
    ascending, seed 2 descending); speed = steps after the first iteration over the clock; medians
    (not means) over seeds; ``steps`` = the shortest run's. Hand-computed."""
    rows = [
        _run_row("ours", 0, 4096, 1.0, 50.0, cpu=0.5), _run_row("ours", 0, 6144, 2.0, 100.0, cpu=1.0),
        _run_row("ours", 1, 4096, 1.0, 1000.0, cpu=""),
        _run_row("ours", 2, 6144, 8.0, 300.0, cpu=4.0), _run_row("ours", 2, 4096, 4.0, 20.0, cpu=2.0),
        _run_row("sb3", 0, 1024, 1.0, 7.0, batch=512), _run_row("sb3", 1, 1536, 2.0, 9.0, batch=512),
    ]
    ours, sb3 = results.summarize_runs(rows)
    assert (ours["impl"], ours["seeds"], ours["finals"], ours["steps"]) == ("ours", [0, 1, 2], [100.0, 1000.0, 300.0], 4096)
    assert ours["median"] == 300.0  # the mean would be 466.7
    assert ours["sps"] == [2048.0, 2048.0, 512.0] and ours["median_sps"] == 2048.0
    assert ours["cpu_sps"] == [4096.0, None, 1024.0] and ours["median_cpu_sps"] == 2560.0  # over the two recorded
    assert (sb3["impl"], sb3["finals"], sb3["sps"], sb3["median"]) == ("sb3", [7.0, 9.0], [512.0, 512.0], 8.0)
    assert sb3["cpu_sps"] == [None, None] and sb3["median_cpu_sps"] is None


def _speed_row(impl, rnd, steps, cpu, env_id="Hopper-v5"):
    return {"impl": impl, "env_id": env_id, "round": str(rnd), "timed_steps": str(steps), "cpu_seconds": str(cpu)}


def test_paired_speed_divides_round_by_round():
    """Rounds 0 and 2 have both arms (round 1 only a, round 3 only b; another task's rows are
    ignored): ratios (1000/2)/(1000/4) = 2 and (500/1)/(1000/8) = 4, median 3; speeds medians of
    (500, 500) and (250, 125). Hand-computed; the ratio of the medians would be 500/187.5 = 2.67."""
    rows = [
        _speed_row("a", 0, 1000, 2.0), _speed_row("b", 0, 1000, 4.0), _speed_row("a", 1, 1000, 1.0),
        _speed_row("a", 2, 500, 1.0), _speed_row("b", 2, 1000, 8.0), _speed_row("b", 3, 1000, 0.1),
        _speed_row("a", 0, 1000, 0.01, env_id="HalfCheetah-v5"),
    ]
    p = results.paired_speed(rows, "Hopper-v5", "a", "b")
    assert p["rounds"] == [0, 2] and p["ratios"] == [2.0, 4.0] and p["median"] == 3.0
    assert p["sps_a"] == [500.0, 500.0] and p["sps_b"] == [250.0, 125.0]
    assert (p["median_a"], p["median_b"]) == (500.0, 187.5)
    with pytest.raises(ValueError, match="no round with runs of both"):
        results.paired_speed(rows, "HalfCheetah-v5", "a", "b")
    for cpu in (0.0, float("inf")):
        with pytest.raises(ValueError, match="positive, finite timed_steps and cpu_seconds"):
            results.paired_speed([_speed_row("a", 0, 1000, cpu)], "Hopper-v5", "a", "b")
    with pytest.raises(ValueError, match="second run of 'a' in round 0"):
        results.paired_speed(rows + [_speed_row("a", 0, 1000, 1.0)], "Hopper-v5", "a", "b")
    with pytest.raises(ValueError, match="different thread counts"):
        results.paired_speed([{**_speed_row("a", 0, 1, 1), "threads": "1"}, {**_speed_row("b", 0, 1, 1), "threads": "2"}], "Hopper-v5", "a", "b")
    with pytest.raises(ValueError, match="missing round"):
        results.paired_speed([{k: v for k, v in _speed_row("a", 0, 1, 1).items() if k != "round"}], "Hopper-v5", "a", "b")
    with pytest.raises(ValueError, match="must differ"):
        results.paired_speed(rows, "Hopper-v5", "a", "a")


def test_summarize_runs_reads_the_committed_runs():
    runs = results.summarize_runs(results.read_rows("continuous_runs.csv"))
    assert runs and all(len(r["seeds"]) == len(r["finals"]) == len(r["sps"]) >= 1 for r in runs)
    assert all(r["sps"][i] > 0 for r in runs for i in range(len(r["sps"])))


def test_summarize_runs_names_a_missing_column():
    bad = _run_row("ours", 0, 4096, 1.0, 5.0)
    del bad["batch"]
    with pytest.raises(ValueError, match=r"rows\[0\] must have the columns.*missing batch"):
        results.summarize_runs([bad])
    with pytest.raises(ValueError, match="rows must be a list of dicts"):
        results.summarize_runs("rows")


def test_read_rows_names_the_argument():
    with pytest.raises(ValueError, match="name must be one of"):
        results.read_rows("../README.md")
