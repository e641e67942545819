"""Check the notebooks' nbval markers and stored outputs before nbval runs them.

Usage: python tools/check_notebooks.py [book/*.ipynb ...]   (default: every notebook in book/)

nbval compares every code cell's outputs with the stored ones, except where a cell opts out. It
recognises a marker only as a comment line that is *exactly* the marker (``# NBVAL_IGNORE_OUTPUT``);
``# NBVAL_IGNORE_OUTPUT: because ...`` is silently not a marker, and the cell is compared. This
check fails (exit status 1, one line per problem) when

* a line of a code cell mentions ``NBVAL_`` and is not exactly one of nbval's markers;
* a cell is skipped (``NBVAL_SKIP`` or the ``nbval-skip`` tag): a cell that does not run checks
  nothing;
* an ignored cell (``NBVAL_IGNORE_OUTPUT`` or the ``nbval-ignore-output`` tag) lacks the reason — a
  comment line right after the marker — or lacks an ``assert`` of what must hold;
* more than 10% of the code cells are ignored: a verified book's outputs are compared;
* a compared cell's stored output prints a round-off-level number (a number in e-notation of
  1e-9 or smaller, not preceded by ``<`` or ``≤``): its digits depend on the machine's
  floating-point kernels, so print ``pgbook.reproducibility.bound(error, tol)`` instead;
* a compared cell prints a bound as a boolean (``< 1e-12: True``): the check is not asserted, so
  print ``bound(error, tol)``, which asserts, instead;
* a compared cell prints a finding as ``True``/``False`` and its source has no ``assert`` (a
  ``bound(...)`` in the same cell asserts its own bound, not the printed verdict): the verdict would
  be compared, but a wrong result on another machine would only change the text; a configuration
  dump (``name   True``) is not a finding;
* a printed bound is tighter than ``1e-12`` (``< 1e-15``): other CPUs sum in another order (numpy's
  SIMD reductions, torch's kernels), so such a bound can fail there although nothing is wrong.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKERS = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP"}
MAX_IGNORED_SHARE = 0.10
# e-notation with exponent <= -9, e.g. 9.6e-15, 2e-10; not "< 1e-12" or "≤ 1e-9" (a bound)
ROUND_OFF = re.compile(r"(?<![\w.])(?P<num>[-+]?\d(?:\.\d+)?e-(?:0?9|[1-9]\d))\b")
BOUND_BEFORE = re.compile(r"(<|≤|<=)\s*$")
# "< 1e-12: True", "(< 1e-12): False": a tolerance check printed as a boolean instead of asserted
TOO_TIGHT = re.compile(r"(<|≤|<=)\s*\d(?:\.\d+)?e-(1[3-9]|[2-9]\d)\b")
# a True/False printed as a finding ("CI contains the exact value: True"); a configuration dump
# ("  normalize_advantages   True": a name, spaces, the value) is a setting, not a finding
BOOLEAN_WORD = re.compile(r"\b(True|False)\b")
SETTING = re.compile(r"^\s*[A-Za-z_][\w.]*\s+(True|False)\s*$")
BOOLEAN_BOUND = re.compile(r"(<|≤|<=)\s*\d(?:\.\d+)?e-\d+\)?\s*:\s*(True|False)\b")


def _markers(source: str) -> tuple[list[str], list[str]]:
    """(markers found, malformed lines) — nbval's rule: ``line.strip()`` is ``# <MARKER>``."""
    found, bad = [], []
    for line in source.splitlines():
        if "NBVAL" not in line:
            continue
        stripped = line.strip()
        comment = stripped[1:].strip() if stripped.startswith("#") else None
        if comment in MARKERS and stripped in (f"# {comment}", f"#{comment}"):
            found.append(comment)
        else:
            bad.append(stripped)
    return found, bad


def _output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append("".join(out["text"]))
        elif "text/plain" in out.get("data", {}):
            parts.append("".join(out["data"]["text/plain"]))
    return "".join(parts)


def check(paths: list[Path]) -> tuple[list[str], int, int]:
    """Return (problems, number of code cells, number of ignored cells)."""
    problems: list[str] = []
    n_code = n_ignored = 0
    for path in paths:
        nb = json.loads(path.read_text())
        code_index = -1
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            code_index += 1
            n_code += 1
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} code cell {code_index}"
            source = "".join(cell["source"])
            found, bad = _markers(source)
            tags = set(cell.get("metadata", {}).get("tags", []))
            for line in bad:
                problems.append(f"{where}: malformed nbval marker {line!r} (nbval needs the exact line '# NBVAL_...'; put the reason on the next line)")
            if "NBVAL_SKIP" in found or "nbval-skip" in tags:
                problems.append(f"{where}: skipped by nbval — a cell that does not run checks nothing")
            ignored = "NBVAL_IGNORE_OUTPUT" in found or "nbval-ignore-output" in tags
            if ignored:
                n_ignored += 1
                lines = [ln.strip() for ln in source.splitlines()]
                at = next((i for i, ln in enumerate(lines) if ln.endswith("NBVAL_IGNORE_OUTPUT")), None)
                reason_ok = at is not None and at + 1 < len(lines) and lines[at + 1].startswith("#") and len(lines[at + 1]) > 12
                if "nbval-ignore-output" in tags and at is None:
                    reason_ok = False
                if not reason_ok:
                    problems.append(f"{where}: ignored output without a reason (a comment line right after '# NBVAL_IGNORE_OUTPUT')")
                if not re.search(r"^\s*assert\b", source, re.MULTILINE):
                    problems.append(f"{where}: ignored output without an assert of what must hold on every machine")
                continue
            text = _output_text(cell)
            tight = TOO_TIGHT.search(text)
            if tight:
                problems.append(
                    f"{where}: prints a bound tighter than 1e-12 ({tight.group(0)!r}) — round-off on another CPU "
                    "may exceed it; use 1e-12 or looser"
                )
            fact = next((line for line in text.splitlines() if BOOLEAN_WORD.search(line) and not SETTING.match(line)), None)
            if fact is not None and not re.search(r"\bassert\b", source):
                problems.append(
                    f"{where}: prints a fact as True/False ({fact.strip()[:70]!r}) but asserts nothing — "
                    "assert what the line states, so that a wrong result fails nbval on every machine"
                )
            boolean = BOOLEAN_BOUND.search(text)
            if boolean:
                problems.append(
                    f"{where}: prints a tolerance check as a boolean ({boolean.group(0)!r}) — print "
                    "pgbook.reproducibility.bound(error, tol), which asserts it"
                )
            for m in ROUND_OFF.finditer(text):
                if not BOUND_BEFORE.search(text[max(0, m.start() - 4) : m.start()]):
                    problems.append(
                        f"{where}: prints the round-off-level number {m.group('num')} — its digits depend on the "
                        "machine; print pgbook.reproducibility.bound(error, tol) instead"
                    )
                    break
    if n_code and n_ignored > MAX_IGNORED_SHARE * n_code:
        problems.append(f"{n_ignored} of {n_code} code cells ignore their output: at most {MAX_IGNORED_SHARE:.0%} may")
    return problems, n_code, n_ignored


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or sorted((ROOT / "book").glob("*.ipynb"))
    problems, n_code, n_ignored = check(paths)
    for p in problems:
        print(p)
    status = "FAILED" if problems else "ok"
    print(f"check_notebooks: {len(paths)} notebooks, {n_code} code cells, {n_ignored} with ignored output: {status}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
