"""The verification ledger's parser: what counts as a claim, and what does not."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import ledger  # noqa: E402

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
