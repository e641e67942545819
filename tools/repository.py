"""The book's public repository, named in one place, and everything that is derived from it.

Usage::

    python tools/repository.py            # check: every derived place agrees with _config.yml
    python tools/repository.py --write    # rewrite them after changing repository.url or the version

The one place is ``_config.yml``'s ``repository`` section: ``url`` and ``branch`` (Jupyter Book
builds the repository, Binder and Colab buttons from them). The package version is
``pyproject.toml``'s, the year ``_config.yml``'s ``copyright``. Derived from them:

* the first code cell of every chapter (``book/*.ipynb``), the *install cell*: when ``pgbook`` is
  not importable (Colab, a downloaded notebook) it installs ``pgbook[notebooks]`` from the
  repository at ``repository.branch`` — the branch or tag whose notebooks the launch buttons open,
  so that notebook and package agree (a release sets it to its tag, ``v<version>``); when it is (a
  clone after ``make book``, Binder, a wheel) it prints nothing — unless the installed version is
  not the book's, which it notes — so nbval still compares the notebook as stored. The cell carries
  the tag ``remove-cell``: the rendered book does not show it (ch00 explains it);
* the book's BibTeX entry, in ``README.md`` ("Citing") and in ``references.bib`` (``pgbook``);
* ``pgbook.__version__`` must equal the version in ``pyproject.toml``.

The check runs in ``make test`` (tests/test_repository.py), so a forgotten ``--write`` fails.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
import uuid
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "remove-cell"
# the first line of the install cell: how the tool recognises it
INSTALL_MARK = "# Outside a clone of the book (Colab, a downloaded notebook), install pgbook first."


def _config(root: Path) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))


def repository_url(root: Path = ROOT) -> str:
    config = _config(root)
    url = str(config["repository"]["url"]).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", url):
        raise SystemExit(f"_config.yml: repository.url must be https://github.com/OWNER/NAME, got {url!r}")
    return url


def version(root: Path = ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def branch(root: Path = ROOT) -> str:
    """``repository.branch``: where the launch buttons open the notebooks, and what the install cell installs."""
    config = _config(root)
    ref = str(config["repository"].get("branch", "main"))
    if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", ref):
        raise SystemExit(f"_config.yml: repository.branch must be a branch or tag name, got {ref!r}")
    return ref


def year(root: Path = ROOT) -> str:
    config = _config(root)
    return str(config.get("copyright", "")).strip() or "2026"


def install_requirement(url: str, ref: str) -> str:
    """The pip requirement the install cell uses: pgbook from the same branch or tag as the notebooks
    the launch buttons open (``repository.branch``), so that the notebook and the package agree."""
    return f"pgbook[notebooks] @ git+{url}@{ref}"


def install_cell_source(url: str, ver: str, ref: str) -> str:
    return "\n".join([
        INSTALL_MARK,
        "# In a clone (after `make book`), on Binder or with pgbook installed, this cell prints nothing.",
        "import importlib",
        "import importlib.metadata",
        "import importlib.util",
        "import subprocess",
        "import sys",
        "",
        'if importlib.util.find_spec("pgbook") is None:',
        f'    PGBOOK = "{install_requirement(url, ref)}"',
        '    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", PGBOOK], capture_output=True, text=True)',
        "    if pip.returncode:",
        '        raise RuntimeError(f"installing {PGBOOK} failed:\\n{pip.stdout}{pip.stderr}")',
        "    importlib.invalidate_caches()",
        f'elif importlib.metadata.version("pgbook") != "{ver}":',
        f'    print(f"note: pgbook {{importlib.metadata.version(\'pgbook\')}} is installed; this book is written for {ver}")',
    ])


def bib_entry(url: str, ver: str, yr: str) -> str:
    """The book's own BibTeX entry (README's "Citing" and references.bib)."""
    return (
        "@misc{pgbook,\n"
        "  title  = {Policy Gradients, Verified},\n"
        "  author = {{The Policy Gradients, Verified contributors}},\n"
        f"  year   = {{{yr}}},\n"
        f"  note   = {{Version {ver}}},\n"
        f"  url    = {{{url}}}\n"
        "}"
    )


def readme_citation(url: str, ver: str, yr: str) -> str:
    return "```bibtex\n" + bib_entry(url, ver, yr) + "\n```"


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "book").glob("*.ipynb"))


def settings(root: Path = ROOT) -> tuple[str, str, str, str]:
    """(repository url, package version, branch, year): what everything derived here depends on."""
    return repository_url(root), version(root), branch(root), year(root)


def _first_code(nb) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)


def check(root: Path = ROOT) -> list[str]:
    """Every place that disagrees with _config.yml / pyproject.toml, as messages (empty: all agree)."""
    url, ver, ref, yr = settings(root)
    problems = []
    want = install_cell_source(url, ver, ref)
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        i = _first_code(nb)
        cell = nb.cells[i] if i is not None else None
        if cell is None or cell.source != want:
            problems.append(f"{path.relative_to(root)}: the first code cell is not the install cell for {url}@{ref} (version {ver})")
        elif INSTALL_TAG not in cell.metadata.get("tags", []) or cell.outputs:
            problems.append(f"{path.relative_to(root)}: the install cell must be tagged {INSTALL_TAG} and have no output")
    readme = (root / "README.md").read_text(encoding="utf-8")
    if readme_citation(url, ver, yr) not in readme:
        problems.append("README.md: the citation does not name the configured repository and version")
    bib = (root / "references.bib").read_text(encoding="utf-8")
    if bib_entry(url, ver, yr) not in bib:
        problems.append("references.bib: the entry pgbook does not name the configured repository and version")
    init = (root / "src" / "pgbook" / "__init__.py").read_text(encoding="utf-8")
    if f'__version__ = "{ver}"' not in init:
        problems.append(f"src/pgbook/__init__.py: __version__ is not pyproject.toml's {ver}")
    return problems


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite the install cell of every notebook and the citations; return the files changed."""
    url, ver, ref, yr = settings(root)
    changed = []
    want = install_cell_source(url, ver, ref)
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        i = _first_code(nb)
        if i is not None and nb.cells[i].source.startswith(INSTALL_MARK):
            cell = nb.cells[i]
        else:  # insert it before the first code cell (after the chapter's title and introduction)
            cell = nbformat.v4.new_code_cell("")
            cell.id = uuid.uuid4().hex[:8]
            nb.cells.insert(len(nb.cells) if i is None else i, cell)
        before = (cell.source, list(cell.metadata.get("tags", [])), cell.execution_count)
        cell.source = want
        cell.metadata["tags"] = sorted({*cell.metadata.get("tags", []), INSTALL_TAG})
        cell.outputs = []
        cell.execution_count = cell.execution_count or 1
        if before != (cell.source, cell.metadata["tags"], cell.execution_count):
            nbformat.write(nb, path)
            changed.append(path)
    readme_path = root / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    new = re.sub(r"```bibtex\n@\w+\{pgbook,.*?```", lambda m: readme_citation(url, ver, yr), readme, flags=re.S)
    if new != readme:
        readme_path.write_text(new, encoding="utf-8")
        changed.append(readme_path)
    bib_path = root / "references.bib"
    bib = bib_path.read_text(encoding="utf-8")
    new = re.sub(r"@\w+\{pgbook,.*?\n\}", lambda m: bib_entry(url, ver, yr), bib, flags=re.S)
    if new != bib:
        bib_path.write_text(new, encoding="utf-8")
        changed.append(bib_path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the derived places")
    args = parser.parse_args(argv)
    if args.write:
        for path in write():
            print(f"wrote {path.relative_to(ROOT)}")
    problems = check()
    for p in problems:
        print(p)
    if not problems:
        print(f"repository: {repository_url()} v{version()}: every launch link, install cell and citation agrees")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
