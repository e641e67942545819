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


def test_read_rows_names_the_argument():
    with pytest.raises(ValueError, match="name must be one of"):
        results.read_rows("../README.md")
