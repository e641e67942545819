"""The committed benchmark results that chapters 9 and 10 plot, shipped inside the package.

``benchmarks/solve_cartpole.py`` writes two small CSV files into ``src/pgbook/data/``; they are
package data (read with :mod:`importlib.resources`), so a chapter finds them wherever ``pgbook`` is
installed — in a clone, in Colab or Binder, or from a wheel — not only in a checkout of the
repository. The columns are documented in ``benchmarks/solve_cartpole.py``:

* ``cartpole_solve.csv`` — one row per (agent, variant, seed): steps to solve CartPole-v1
  (ch. 9, Table 9.1; ch. 10, the ablation table);
* ``cartpole_curves.csv`` — every greedy evaluation of every run, and a final one per run
  (ch. 9–10's learning curves; ch. 10's entropy diagnostics).
"""

from __future__ import annotations

import csv
import io
from importlib import resources

__all__ = ["RESULT_FILES", "read_rows"]

#: the result files shipped with the package
RESULT_FILES = ("cartpole_solve.csv", "cartpole_curves.csv")


def read_rows(name: str) -> list[dict[str, str]]:
    """The rows of the committed result file ``name`` (one of :data:`RESULT_FILES`), as strings.

    Every value is a string, exactly as stored (an empty string for "never", e.g. a run that did
    not solve): the chapters convert what they use.
    """
    if not isinstance(name, str) or name not in RESULT_FILES:
        raise ValueError(f"name must be one of {', '.join(RESULT_FILES)}, got {name!r}")
    text = resources.files("pgbook").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))
