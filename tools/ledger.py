"""The verification ledger: every labelled claim of the book, tied to the tests that check it.

Usage:
    python tools/ledger.py            # collect, check, write book/ledger.md
    python tools/ledger.py --check    # collect and check only
    python tools/ledger.py --toc FILE # use another table of contents (a subset of the book)
    python tools/ledger.py --verify-html _build/html
                                      # after the build: every numbered equation and labelled
                                      # theorem-like block that Sphinx rendered is a ledger claim
                                      # (guards the parser above against a syntax it misses)

A *claim* is a numbered equation (``$$ ... $$ (label)`` or a ``{math}`` directive with
``:label:``) or a labelled sphinx-proof statement (theorem, lemma, proposition, corollary,
property, observation, remark, conjecture, criterion) in a chapter listed in ``_toc.yml``.
Definitions, examples, algorithms and exercises are not claims. A test checks a claim when it
carries ``@pytest.mark.claim("label", how=...)`` (see ``tests/conftest.py``).

Exits non-zero when a claim has no test, when a test names a label that the book does not
state, or when a label is stated twice.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "book" / "ledger.md"

CLAIM_DIRECTIVES = {
    "math": "equation",
    "prf:theorem": "theorem",
    "prf:lemma": "lemma",
    "prf:proposition": "proposition",
    "prf:corollary": "corollary",
    "prf:property": "property",
    "prf:observation": "observation",
    "prf:remark": "remark",
    "prf:conjecture": "conjecture",
    "prf:criterion": "criterion",
}
DOLLAR_EQ = re.compile(r"\$\$(?P<body>.+?)\$\$[ \t]*\((?P<label>[A-Za-z][\w\-.:]*)\)", re.S)
FENCE = re.compile(r"^\s*(`{3,}|:{3,})\{(?P<kind>[\w:\-]+)\}\s*(?P<title>.*)$")
LABEL = re.compile(r"^\s*:label:\s*(?P<label>\S+)\s*$")


@dataclass
class Claim:
    label: str
    kind: str
    doc: str  # docname relative to the book root, e.g. "book/ch02_policy_gradient_theorem"
    title: str


class LedgerError(Exception):
    """A problem with the inputs (table of contents, a chapter file): one line, exit status 2."""


def toc_files(toc_path: Path) -> list[Path]:
    """The pages listed in ``toc_path``, in order; ``LedgerError`` if it or a listed page is missing."""
    if not toc_path.is_file():
        raise LedgerError(f"table of contents {toc_path} does not exist")
    try:
        toc = yaml.safe_load(toc_path.read_text())
    except yaml.YAMLError as exc:
        raise LedgerError(f"table of contents {toc_path} is not valid YAML: {exc}") from None
    files = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    files.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    if not files:
        raise LedgerError(f"table of contents {toc_path} lists no pages")
    out, missing = [], []
    for name in files:  # Jupyter Book resolves them against the book's root, wherever the toc file is
        for suffix in (".ipynb", ".md"):
            path = ROOT / (name + suffix)
            if path.exists():
                out.append(path)
                break
        else:
            if (ROOT / (name + ".md")) != LEDGER:  # the ledger page is this script's output: it may not exist yet
                missing.append(name)
    if missing:
        raise LedgerError(f"{toc_path.name} lists pages that do not exist: {', '.join(missing)} (.ipynb or .md)")
    return out


def markdown_sources(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # nbformat raises JSON, validation and key errors
            raise LedgerError(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} is not a readable notebook: {exc}") from None
        return [c.source for c in nb.cells if c.cell_type == "markdown"]
    return [path.read_text()]


def claims_in(path: Path) -> list[Claim]:
    doc = str((path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).with_suffix(""))
    found = []
    for text in markdown_sources(path):
        for m in DOLLAR_EQ.finditer(text):
            found.append(Claim(m["label"], "equation", doc, ""))
        current = None
        for line in text.splitlines():
            fence = FENCE.match(line)
            if fence:
                current = (fence["kind"], fence["title"].strip())
                continue
            lab = LABEL.match(line)
            if lab and current and current[0] in CLAIM_DIRECTIVES:
                found.append(Claim(lab["label"], CLAIM_DIRECTIVES[current[0]], doc, current[1]))
    return found


def collect_tests() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "claims.json"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", f"--claims-json={out}", "tests"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not out.exists():
            sys.exit(f"ledger: test collection failed\n{proc.stdout}\n{proc.stderr}")
        return json.loads(out.read_text())


HTML_EQUATION = re.compile(r'id="equation-([^"]+)"')
HTML_PROOF = re.compile(r'<div class="proof (\w+)[^"]*" id="([^"]+)"')


def verify_html(site: Path) -> int:
    """Compare the claims Sphinx rendered with the claims this script parses; 0 when they agree."""
    rendered: dict[str, str] = {}
    for page in site.rglob("*.html"):
        if page.name == "ledger.html":
            continue
        text = page.read_text(errors="replace")
        for label in HTML_EQUATION.findall(text):
            rendered[label] = "equation"
        for kind, label in HTML_PROOF.findall(text):
            if f"prf:{kind}" in CLAIM_DIRECTIVES:
                rendered[label] = kind
    parsed = {c.label for path in toc_files(ROOT / "_toc.yml") if path.name != LEDGER.name for c in claims_in(path)}
    missing = sorted(set(rendered) - parsed)
    if missing or not rendered:
        print(f"Verification ledger: rendered claims the ledger does not know: {missing or 'none rendered'}", file=sys.stderr)
        return 1
    print(f"Verification ledger: all {len(rendered)} rendered claims are in the ledger")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python tools/ledger.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="collect and check only; do not write book/ledger.md")
    parser.add_argument("--toc", type=Path, default=ROOT / "_toc.yml", metavar="FILE",
                        help="another table of contents (a subset of the book); default _toc.yml")
    parser.add_argument("--verify-html", type=Path, metavar="SITE",
                        help="after the build: every claim Sphinx rendered in SITE is a ledger claim")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)  # unknown flags and a flag without its value: exit status 2
    try:
        return _run(args)
    except LedgerError as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.verify_html is not None:
        site = args.verify_html.resolve()
        if not (site / "index.html").is_file():
            raise LedgerError(f"--verify-html {args.verify_html}: no built book there (index.html missing)")
        return verify_html(site)
    check_only = args.check
    toc_path = args.toc.resolve()
    claims: dict[str, Claim] = {}
    problems = []
    for path in toc_files(toc_path):
        if path.name == LEDGER.name:
            continue
        for claim in claims_in(path):
            if claim.label in claims:
                problems.append(f"label {claim.label!r} is stated twice ({claims[claim.label].doc}, {claim.doc})")
            claims[claim.label] = claim
    tests = collect_tests()
    by_label: dict[str, list[dict]] = defaultdict(list)
    for record in tests:
        for label in record["labels"]:
            by_label[label].append(record)
            if label not in claims and toc_path == ROOT / "_toc.yml":
                problems.append(f"{record['nodeid']} names claim {label!r}, which no page of the book states")
    for label, claim in claims.items():
        if not by_label.get(label):
            problems.append(f"claim {label!r} ({claim.kind} in {claim.doc}) has no test")
    mutants = _mutants_by_claim()
    if toc_path == ROOT / "_toc.yml":
        for label, ms in mutants.items():
            if label not in claims:
                problems.append(f"mutant {ms[0].name!r} (tools/mutants.py) breaks claim {label!r}, which no page states")
    if problems:
        print("Verification ledger: FAILED", file=sys.stderr)
        for p in problems:
            print("  - " + p, file=sys.stderr)
        return 1
    n_tests = len({r["nodeid"] for r in tests})
    print(f"Verification ledger: {len(claims)} claims, each checked; {n_tests} tests carry claim markers")
    if not check_only:
        LEDGER.write_text(render(claims, by_label, mutants))
        print(f"wrote {LEDGER.relative_to(ROOT)}")
    return 0


def _mutants_by_claim() -> dict[str, list]:
    """The mutation suite's wrong versions (tools/mutants.py), grouped by the claim they break."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mutants import MUTANTS

    out: dict[str, list] = defaultdict(list)
    for m in MUTANTS:
        out[m.claim].append(m)
    return out


def render(claims: dict[str, Claim], by_label: dict[str, list[dict]], mutants: dict[str, list] | None = None) -> str:
    mutants = mutants or {}
    lines = [
        "# Verification ledger",
        "",
        "Every labelled claim of this book — each numbered equation and each labelled theorem,",
        "lemma, proposition or remark — with the tests that check it and how they check it.",
        "This page is generated by `tools/ledger.py` from the book's sources and the",
        "`@pytest.mark.claim` markers of the test suite; `make test` fails when a claim has no",
        "test, or when a test names a claim that the book does not state.",
        "",
        "How a claim is checked: **exact** (an independent exact computation, e.g. a linear solve),",
        "**enumeration** (every trajectory summed), **finite difference** (central differences of an",
        "exactly computed objective), **autograd** (torch), **sympy** (a symbolic proof),",
        "**Monte Carlo** (sampled, with stated sample size, seed and confidence interval),",
        "**property** (hypothesis property test over random instances), **reproduction** (re-running",
        "code and comparing with its recorded output).",
        "",
        "**Wrong versions rejected**: the mutation suite (`tools/mutants.py`, `make mutants`, run in",
        "CI) edits the package into a plausible wrong formula — a missing discount, a transposed",
        "matrix, a flipped sign — and runs the claim's tests against it; they must fail. Listed under",
        f"each claim it applies to ({sum(len(v) for v in mutants.values())} wrong versions so far).",
        "",
    ]
    by_doc: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims.values():
        by_doc[claim.doc].append(claim)

    def title_of(doc: str) -> str:
        """The page's own title (its first ``# `` heading): a heading written as a bare {doc} role
        shows the path "/book/ch01_..." in the page's contents sidebar."""
        for suffix in (".ipynb", ".md"):
            if (ROOT / f"{doc}{suffix}").is_file():
                for text in markdown_sources(ROOT / f"{doc}{suffix}"):
                    for line in text.splitlines():
                        if line.startswith("# "):
                            return line[2:].strip()
        return doc.rsplit("/", 1)[-1]

    label_in_text = re.compile(r"\b(?:eq|thm|prop|lem|cor|rem|err|def)-[a-z0-9]+(?:-[a-z0-9]+)*\b")

    def numbered(text: str) -> str:
        """A claim label in a test's docstring becomes a reference, so the reader sees "(7.3)" or
        "Theorem 6.2", not "eq-clip-dr"; text inside backticks is left alone."""
        parts = text.split("`")
        for i in range(0, len(parts), 2):
            parts[i] = label_in_text.sub(
                lambda m: (f"{{eq}}`{m[0]}`" if claims[m[0]].kind == "equation" else f"{{prf:ref}}`{m[0]}`")
                if m[0] in claims else m[0],
                parts[i],
            )
        return "`".join(parts)

    for doc, items in by_doc.items():
        lines += [f"## {{doc}}`{title_of(doc)} </{doc}>`", ""]
        for c in items:
            ref = f"{{eq}}`{c.label}`" if c.kind == "equation" else f"{{prf:ref}}`{c.label}`"
            hows = ", ".join(sorted({r["how"] for r in by_label[c.label]}))
            # a target per claim, so that other pages can link to its ledger entry
            lines += [f"(ledger-{c.label})=", f"**{ref}** `{c.label}` ({c.kind}) — checked by *{hows}*:", ""]
            grouped: dict[str, list[dict]] = {}
            for r in by_label[c.label]:  # one line per test function, however many parameter cases
                grouped.setdefault(r["nodeid"].split("[")[0], []).append(r)
            for base, rs in grouped.items():
                cases = f" ({len(rs)} cases)" if len(rs) > 1 else ""
                lines.append(f"- `{base}`{cases}" + (f" — {numbered(rs[0]['doc'])}" if rs[0]["doc"] else ""))
            if mutants.get(c.label):
                wrong = "; ".join(f"{numbered(m.what)} (`{m.name}`)" for m in mutants[c.label])
                lines.append(f"- *Wrong versions rejected:* {wrong}.")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
