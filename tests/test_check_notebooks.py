"""tools/check_notebooks.py: nbval markers well formed, ignored outputs rare and justified, no round-off digits."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import check_notebooks  # noqa: E402


pytestmark = pytest.mark.kernel_independent  # skipped by the portability pass (tests/conftest.py)

def _notebook(tmp_path, cells):
    """cells: (source, printed text) pairs for code cells, plus 90 plain compared cells."""
    nb = nbformat.v4.new_notebook()
    for source, printed in cells + [("x = 1", "")] * 90:
        cell = nbformat.v4.new_code_cell(source)
        if printed:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        nb.cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def _problems(tmp_path, cells):
    return check_notebooks.check([_notebook(tmp_path, cells)])[0]


def test_the_books_notebooks_pass():
    problems, n_code, n_ignored = check_notebooks.check(sorted((check_notebooks.ROOT / "book").glob("*.ipynb")))
    assert problems == [] and n_code > 100 and n_ignored <= 0.1 * n_code


def test_well_formed_ignored_cell_passes(tmp_path):
    src = "# NBVAL_IGNORE_OUTPUT\n# the curve of a training run depends on the CPU's kernels\nprint(curve)\nassert ok"
    assert _problems(tmp_path, [(src, "1.23e-14 and 0.5")]) == []  # ignored: its digits are not compared


@pytest.mark.parametrize(
    "source,printed,message",
    [
        ("# NBVAL_IGNORE_OUTPUT: the reason on the same line\nassert ok", "", "malformed nbval marker"),
        ("#NBVAL_IGNORE_OUTPUT because\nassert ok", "", "malformed nbval marker"),
        ("# NBVAL_IGNORE_OUTPUT\nprint(x)\nassert ok", "", "without a reason"),
        ("# NBVAL_IGNORE_OUTPUT\n# the curve depends on the kernels\nprint(x)", "", "without an assert"),
        ("# NBVAL_SKIP\nprint(x)", "", "skipped"),
        ("print(err)", "max error 9.6e-15\n", "round-off-level number 9.6e-15"),
        ("print(err)", "error 2e-10", "round-off-level number 2e-10"),
        ("print(err)", "relative error 1.2e-09 here", "round-off-level number 1.2e-09"),
        ("print(err < 1e-12)", "max |entry| < 1e-12: True\n", "tolerance check as a boolean"),
        ("print(bound(err, 1e-15))", "max |entry| < 1e-15\n", "tighter than 1e-12"),
        ("print(err < 1e-12)", "for every action (< 1e-12): False", "tolerance check as a boolean"),
        ("print(ci.contains(x))", "CI contains the exact value: True\n", "asserts nothing"),
        ("print(flag)", "intervals contain g_agent    False", "asserts nothing"),
        ("print(bound(e, 1e-9), ok)", "max |e| < 1e-9; matches: True", "asserts nothing"),  # bound() asserts e, not ok
    ],
)
def test_each_defect_is_reported(tmp_path, source, printed, message):
    problems = _problems(tmp_path, [(source, printed)])
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize("source,printed", [
    ("assert ok\nprint(ok)", "CI contains the exact value: True"),  # asserted
    ("print(cfg)", "  normalize_advantages   True\n  anneal_lr   False"),  # a configuration dump
])
def test_asserted_facts_and_settings_pass(tmp_path, source, printed):
    assert _problems(tmp_path, [(source, printed)]) == []


@pytest.mark.parametrize("printed", ["max error < 1e-12", "error ≤ 1e-10", "bound 9.21e-07, actual 5.68e-07", "x = 3.0e+12"])
def test_bounds_and_large_numbers_pass(tmp_path, printed):
    assert _problems(tmp_path, [("print(err)", printed)]) == []


def test_at_most_ten_percent_ignored(tmp_path):
    ignored = ("# NBVAL_IGNORE_OUTPUT\n# a training curve depends on the kernels\nassert ok", "")
    assert _problems(tmp_path, [ignored] * 10) == []  # 10 of 100
    problems = _problems(tmp_path, [ignored] * 11)  # 11 of 101
    assert any("at most 10%" in p for p in problems), problems
