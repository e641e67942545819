"""Check the PDF edition of the book (`make pdf`) the way a reader gets it: from the PDF alone.

Usage: python tools/pdf_check.py PDF [--root DIR] [--html DIR] [--log FILE]

Findings (each one line ``pdf_check: KIND: ...``; any finding makes the exit status 1):

* ``missing-title``: a page of ``_toc.yml`` (the root page and every chapter) whose title, the first
  heading of its notebook or Markdown file, is not in the text ``pdftotext`` extracts (compared after
  Unicode NFKC normalisation, with case, white space, curly quotes and hyphenation at line ends
  ignored; a ``$...$`` formula in a title matches anything short);
* ``unresolved-reference``: ``??`` in the text, LaTeX's mark of a reference or citation it could not
  resolve;
* ``raw-markup``: prose (the text not set in a monospace font, read with ``pdftohtml -xml``) that
  holds a TeX command (``\\frac``), a ``$``, or unparsed MyST (a role such as ``{eq}`...```, a
  directive fence, a ``(label)=`` target, a ``:label:`` option). Code and its output are set in a
  monospace font and may hold all of these;
* ``no-cjk-font`` / ``no-cjk-text``: ``pdffonts`` lists no embedded CJK font (Noto CJK ...), or the
  text holds no CJK character: the notes' Chinese quotes are missing or drawn as nothing;
* ``missing-glyph``: a "Missing character" line in the LaTeX log (default: the ``.log`` beside the
  PDF, when there is one): XeLaTeX drops a character its font lacks without an error;
* ``numbering`` (with ``--html DIR``, the built HTML book): a number the HTML book shows, an
  equation number (``(5.5)``) or a numbered caption (``Fig. 5.3``, ``Theorem 2.1``, ``Exercise 10.1``),
  that the PDF does not show: the two editions number differently.

The page count is printed. Exit status 2 when the PDF, a poppler tool (Debian: poppler-utils) or
``_toc.yml`` is missing.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# titles of the book's pages


def _first_heading(lines) -> str | None:
    for line in lines:
        m = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if m:
            return m.group(1)
    return None


def page_title(path: Path) -> str:
    """The first heading of a notebook (its Markdown cells) or a Markdown file."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                src = cell["source"]
                title = _first_heading(("".join(src) if isinstance(src, list) else src).splitlines())
                if title:
                    return title
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines and lines[0].strip() == "---":  # front matter
            end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
            lines = lines[end + 1 :]
        title = _first_heading(lines)
        if title:
            return title
    raise ValueError(f"{path}: no heading")


def _toc_files(entry) -> list[str]:
    files = []
    if isinstance(entry, dict):
        if "file" in entry:
            files.append(entry["file"])
        for key in ("parts", "chapters", "sections"):
            for sub in entry.get(key, []) or []:
                files.extend(_toc_files(sub))
    return files


def toc_titles(root: Path) -> list[tuple[str, str]]:
    """(file, title) for the root page and every chapter (and section) listed in _toc.yml."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]] + [f for part in toc.get("parts", []) for f in _toc_files(part)]
    files += [f for f in _toc_files({"chapters": toc.get("chapters", [])})]
    out = []
    for name in files:
        candidates = [root / name] if Path(name).suffix else [root / f"{name}{ext}" for ext in (".ipynb", ".md")]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise FileNotFoundError(f"_toc.yml lists {name}, which is neither .ipynb nor .md under {root}")
        out.append((name, page_title(path)))
    return out


# ---------------------------------------------------------------------------------------------
# checks on extracted text (pure functions: the unit tests feed them text)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    for a, b in (("\u2018", "'"), ("\u2019", "'"), ("\u201c", '"'), ("\u201d", '"'), ("\u00ad", "")):
        text = text.replace(a, b)
    return text.lower()


def _title_regex(title: str) -> re.Pattern:
    """A title as a pattern: Markdown emphasis and code marks dropped, white space flexible, a
    formula ($...$) matching up to 60 characters of anything."""
    pieces = re.split(r"\$[^$]*\$", _normalise(title))
    parts = []
    for piece in pieces:
        piece = re.sub(r"[*`]|(?<!\w)_|_(?!\w)", "", piece).strip()
        words = piece.split()
        parts.append(r"\s+".join(re.escape(w) for w in words))
    return re.compile(r".{0,60}?".join(p for p in parts if p) or re.escape(title), re.DOTALL)


def check_titles(text: str, titles: list[tuple[str, str]]) -> list[str]:
    norm = _normalise(text)
    # a word hyphenated at a line end: try both "log-derivative" and "reward-\nto-go" joined
    variants = [norm, re.sub(r"-\s*\n\s*", "-", norm), re.sub(r"(?<=\w)-\s*\n\s*(?=\w)", "", norm)]
    problems = []
    for name, title in titles:
        pattern = _title_regex(title)
        if not any(pattern.search(v) for v in variants):
            problems.append(f"missing-title: {name}: the title {title!r} is not in the PDF's text")
    return problems


def check_unresolved(text: str) -> list[str]:
    problems = []
    for m in re.finditer(r"\?\?", text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.end())
        line = text[line_start : line_end if line_end >= 0 else len(text)].strip()
        problems.append(f"unresolved-reference: '??' in: {line[:120]!r}")
    return problems


RAW_MARKUP = [
    (re.compile(r"\\[A-Za-z]{2,}"), "a TeX command"),
    (re.compile(r"\$"), "a dollar sign (unparsed math)"),
    (re.compile(r"\{[a-z][\w-]*(?::[\w-]+)*\}\s*[`\u2018']"), "a MyST role"),
    (re.compile(r"(```|~~~|:::)\s*\{"), "a MyST directive fence"),
    (re.compile(r"```"), "a code fence"),
    (re.compile(r"(?m)^\s*\([A-Za-z][\w-]*\)=\s*$"), "a MyST label target"),
    (re.compile(r"(?m)^\s*:(label|name|class|nowrap):"), "a directive option"),
]


def check_raw_markup(prose: str) -> list[str]:
    """Prose (no code) must not show TeX or MyST source."""
    problems = []
    for line in prose.splitlines():
        for pattern, what in RAW_MARKUP:
            m = pattern.search(line)
            if m:
                problems.append(f"raw-markup: {what} {m.group(0)!r} in: {line.strip()[:120]!r}")
                break
    return problems


CJK_FONT = re.compile(r"CJK|SourceHan|Source\s*Han|WenQuanYi|Fandol|SimSun|SimHei|MingLiU|Droid\s*Sans\s*Fallback", re.I)
CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def pdffonts_table(output: str) -> list[dict]:
    """The rows of `pdffonts` output: name and whether the font is embedded."""
    rows = []
    for line in output.splitlines()[2:]:
        tokens = line.split()
        if len(tokens) < 7:
            continue
        # the last five columns are emb, sub, uni, object number, generation
        rows.append({"name": tokens[0], "emb": tokens[-5] == "yes"})
    return rows


def check_cjk(pdffonts_output: str, text: str) -> list[str]:
    problems = []
    cjk = [row["name"] for row in pdffonts_table(pdffonts_output) if CJK_FONT.search(row["name"])]
    if not cjk:
        problems.append("no-cjk-font: pdffonts lists no CJK font: the notes' Chinese quotes have no glyphs")
    elif not any(row["emb"] for row in pdffonts_table(pdffonts_output) if row["name"] in cjk):
        problems.append(f"no-cjk-font: the CJK fonts {', '.join(cjk)} are not embedded")
    if not CJK_CHAR.search(text):
        problems.append("no-cjk-text: the text holds no CJK character (the notes' quotes are missing)")
    return problems


def check_missing_glyphs(log: str) -> list[str]:
    """TeX wraps its log at 79 columns, so the font name may be cut: the character and its code
    point are what counts. One finding per character, with the first font named."""
    seen: dict[str, str] = {}
    for m in re.finditer(r"Missing character: There is no (.+?) \((U\+[0-9A-Fa-f]+)\) in font ([^!\n]*)", log):
        seen.setdefault(f"{m.group(1)} ({m.group(2)})", m.group(3).strip())
    problems = [f"missing-glyph: {char} in font {font} (dropped from the PDF)" for char, font in list(seen.items())[:20]]
    if len(seen) > 20:
        problems.append(f"missing-glyph: ... and {len(seen) - 20} more characters")
    return problems


def html_numbers(html_dir: Path) -> dict[str, list[str]]:
    """The numbers the HTML book shows, per page: equation numbers (``span.eqno``, "(5.5)") and the
    numbered captions of figures, tables and sphinx-proof / exercise blocks (``span.caption-number``,
    "Fig. 5.3", "Theorem 2.1", "Exercise 10.1"): {"(5.5)": ["book/ch05_....html"], ...}."""
    numbers: dict[str, list[str]] = {}
    pattern = re.compile(r'class="(?:eqno|caption-number)">\s*([^<]*?)\s*<')
    for page in sorted(html_dir.rglob("*.html")):
        rel = str(page.relative_to(html_dir))
        if rel.startswith("_") or "/_" in rel:
            continue
        for m in pattern.finditer(page.read_text(encoding="utf-8", errors="replace")):
            number = " ".join(m.group(1).split())
            if re.search(r"\d", number):
                numbers.setdefault(number, []).append(rel)
    return numbers


def check_numbers(text: str, numbers: dict[str, list[str]]) -> list[str]:
    """Every number of the HTML book must appear in the PDF (the same equation, figure or theorem
    numbered the same in both editions)."""
    norm = " ".join(unicodedata.normalize("NFKC", text).split())
    problems = []
    for number, pages in sorted(numbers.items()):
        if not re.search(r"(?<![\w.])" + re.escape(number).replace(r"\ ", r"\s*") + r"(?![\w]|\.\d)", norm):
            problems.append(f"numbering: {number!r} (HTML: {pages[0]}) is not in the PDF")
    return problems


def prose_from_pdftohtml_xml(xml: str) -> str:
    """The text of `pdftohtml -xml` output without what is set in a monospace font (code, outputs,
    inline literals), one text element per line."""
    fonts = {m.group(1): m.group(2) for m in re.finditer(r'<fontspec id="(\d+)"[^>]*family="([^"]*)"', xml)}
    mono = {fid for fid, family in fonts.items() if re.search(r"mono|courier|typewriter|code|cmtt|lmtt", family, re.I)}
    lines = []
    for m in re.finditer(r'<text [^>]*font="(\d+)"[^>]*>(.*?)</text>', xml, re.DOTALL):
        if m.group(1) in mono:
            continue
        lines.append(html.unescape(re.sub(r"<[^>]+>", "", m.group(2))))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the command


def _run(args: list[str]) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, errors="replace").stdout


def page_count(pdf: Path) -> int:
    m = re.search(r"^Pages:\s+(\d+)", _run(["pdfinfo", str(pdf)]), re.M)
    return int(m.group(1)) if m else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pdf", type=Path)
    ap.add_argument("--root", type=Path, default=ROOT, help="the book's folder (with _toc.yml)")
    ap.add_argument("--html", type=Path, help="the built HTML book: compare equation numbers")
    ap.add_argument("--log", type=Path, help="the LaTeX log (default: the .log beside the PDF, if any)")
    args = ap.parse_args(argv)

    if not args.pdf.is_file():
        print(f"pdf_check: no PDF at {args.pdf} (run `make pdf`)", file=sys.stderr)
        return 2
    missing = [t for t in ("pdftotext", "pdffonts", "pdfinfo", "pdftohtml") if shutil.which(t) is None]
    if missing:
        print(f"pdf_check: {', '.join(missing)} not found (Debian: apt-get install poppler-utils)", file=sys.stderr)
        return 2
    if not (args.root / "_toc.yml").is_file():
        print(f"pdf_check: no _toc.yml in {args.root}", file=sys.stderr)
        return 2

    text = _run(["pdftotext", "-enc", "UTF-8", str(args.pdf), "-"])
    prose = prose_from_pdftohtml_xml(_run(["pdftohtml", "-xml", "-i", "-q", "-stdout", str(args.pdf)]))
    fonts = _run(["pdffonts", str(args.pdf)])
    titles = toc_titles(args.root)

    problems = check_titles(text, titles) + check_unresolved(text) + check_raw_markup(prose) + check_cjk(fonts, text)
    log = args.log or args.pdf.with_suffix(".log")
    if log.is_file():
        problems += check_missing_glyphs(log.read_text(encoding="utf-8", errors="replace"))
    elif args.log:
        problems.append(f"missing-log: no LaTeX log at {log}")
    n_eq = 0
    if args.html:
        numbers = html_numbers(args.html)
        if not numbers:
            problems.append(f"numbering: no numbers found in the HTML book at {args.html}")
        n_eq = len(numbers)
        problems += check_numbers(text, numbers)

    pages = page_count(args.pdf)
    for p in problems:
        print(f"pdf_check: {p}")
    if problems:
        print(f"pdf_check: FAILED: {len(problems)} finding(s) in {args.pdf} ({pages} pages)")
        return 1
    cjk = len(set(CJK_CHAR.findall(text)))
    eq = f", {n_eq} equation/figure/theorem numbers as in the HTML" if args.html else ""
    print(f"pdf_check: OK: {args.pdf}: {pages} pages, {len(titles)} titles, {cjk} distinct CJK characters{eq}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
