"""The verification ledger's parser: what counts as a claim, and what does not."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import ledger  # noqa: E402

pytestmark = pytest.mark.kernel_independent  # skipped by the portability pass (tests/conftest.py)

SOURCE = r"""
$$ a = b $$ (eq-one)

$$
c = d
$$ (eq-two)

$$ e = f $$

```{prf:theorem} A theorem
:label: thm-one

text
```

:::{prf:remark} A remark with `code` in its title
:label: rem-one
:::

```{prf:definition} Not a claim
:label: def-one
```

```{exercise}
:label: ex-one
```

```{math}
:label: eq-three

g = h
```
"""


def test_claims_are_numbered_equations_and_theorem_like_blocks(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(SOURCE)])
    path = tmp_path / "book" / "chXX.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    monkeypatch.setattr(ledger, "ROOT", tmp_path)
    found = {c.label: c.kind for c in ledger.claims_in(path)}
    assert found == {
        "eq-one": "equation",
        "eq-two": "equation",
        "thm-one": "theorem",
        "rem-one": "remark",
        "eq-three": "equation",
    }


def test_the_book_states_every_label_once():
    seen = []
    for path in ledger.toc_files(ledger.ROOT / "_toc.yml"):
        if path.name != ledger.LEDGER.name:
            seen += [c.label for c in ledger.claims_in(path)]
    assert len(seen) == len(set(seen)) and len(seen) > 100


# ---- the command line: bad input is one line and exit status 2, never a traceback or a pass ----


def _run_main(argv, capsys) -> tuple[int, str]:
    try:
        code = ledger.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def test_unknown_flag_and_flag_without_value_are_usage_errors(capsys):
    """`--chek` and `--verify-html` without a value: exit 2 (argparse), nothing written."""
    def state():  # the ledger page is generated (make ledger): on a fresh clone it does not exist yet
        return ledger.LEDGER.stat().st_mtime_ns if ledger.LEDGER.exists() else None

    before = state()
    for argv in (["--chek"], ["--verify-html"], ["--toc"]):
        code, err = _run_main(argv, capsys)
        assert code == 2 and "usage:" in err, argv
    assert state() == before


def test_toc_with_missing_pages_fails_instead_of_passing(tmp_path, capsys):
    """A table of contents naming a page that does not exist: exit 2 naming it (not '0 claims, each checked')."""
    toc = tmp_path / "toc.yml"
    toc.write_text("format: jb-book\nroot: book/ch00_introduction\nchapters:\n- file: book/no_such_chapter\n")
    code, err = _run_main(["--check", "--toc", str(toc)], capsys)
    assert code == 2 and "book/no_such_chapter" in err and "Traceback" not in err
    code, err = _run_main(["--check", "--toc", str(tmp_path / "absent.yml")], capsys)
    assert code == 2 and "does not exist" in err


def test_broken_notebook_is_named(tmp_path, capsys):
    """A chapter that is not valid notebook JSON: the error names the file."""
    bad = tmp_path / "broken.ipynb"
    bad.write_text("{ not json")
    try:
        ledger.claims_in(bad)
    except ledger.LedgerError as exc:
        assert "broken.ipynb" in str(exc) and "not a readable notebook" in str(exc)
    else:
        raise AssertionError("no LedgerError")


def test_verify_html_without_a_built_book(tmp_path, capsys):
    """--verify-html on a folder without index.html: exit 2, one line."""
    code, err = _run_main(["--verify-html", str(tmp_path)], capsys)
    assert code == 2 and "index.html missing" in err
