"""tools/pdf_check.py on deliberately bad text: each defect of a PDF edition is reported (an
unresolved "??", a chapter title missing, no CJK font or a CJK font not embedded, raw TeX or MyST
in prose, a dropped glyph, a number (equation, figure, theorem) the HTML shows and the PDF does not), and a good text
passes. The checks are pure functions of what pdftotext / pdffonts / pdftohtml print, so no PDF
(and no LaTeX) is needed here; `make pdf` runs the whole command on the real PDF."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import pdf_check  # noqa: E402

pytestmark = pytest.mark.kernel_independent

TITLES = [
    ("book/ch00_introduction", "Policy Gradients, Verified"),
    ("book/ch01_trajectories", "Trajectories and the log-derivative trick"),
    ("book/glossary", "Glossary: the notes' terms and the book's"),
    ("book/ch06", "The surrogate $L^{CPI}$ and *its* gradient"),
]

# what pdftotext prints for a good book: the headings upper-cased by the chapter style, a title
# broken over two lines, curly quotes, a ligature, math italic letters
GOOD_TEXT = """Policy Gradients, Verified
CONTENTS
CHAPTER ONE
TRAJECTORIES AND THE LOG-DERIVATIVE TRICK
Every statement is checked by enumeration, see (1.1) and (1.2).
CHAPTER SIX
THE SURROGATE 𝐿𝐶𝑃 𝐼 AND ITS
GRADIENT
APPENDIX C
GLOSSARY: THE NOTES’ TERMS AND THE BOOK’S
策略 policy 轨迹 trajectory
"""

GOOD_FONTS = """name                                 type              encoding         emb sub uni object ID
------------------------------------ ----------------- ---------------- --- --- --- ---------
LCSGMA+FreeSansBold-Identity-H       CID Type 0C       Identity-H       yes yes yes      5  0
EQZIPB+NotoSerifCJKjp-Regular-Identity-H CID Type 0C       Identity-H       yes yes yes     30  0
LVDUJQ+DejaVuSansMono                CID TrueType      Identity-H       yes yes yes    101  0
"""

XML_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<pdf2xml producer="poppler" version="22.12.0">
<page number="1" position="absolute" top="0" left="0" height="1262" width="892">
\t<fontspec id="0" size="15" family="HYPXXC+FreeSerif-Identity-H" color="#000000"/>
\t<fontspec id="1" size="13" family="LVDUJQ+DejaVuSansMono" color="#000000"/>
"""


def xml(*texts: tuple[int, str]) -> str:
    body = "".join(f'<text top="1" left="1" width="9" height="9" font="{font}">{t}</text>\n' for font, t in texts)
    return XML_HEAD + body + "</page>\n</pdf2xml>\n"


def test_a_good_text_passes():
    assert pdf_check.check_titles(GOOD_TEXT, TITLES) == []
    assert pdf_check.check_unresolved(GOOD_TEXT) == []
    assert pdf_check.check_cjk(GOOD_FONTS, GOOD_TEXT) == []
    assert pdf_check.check_numbers(GOOD_TEXT, {"(1.1)": ["a.html"], "(1.2)": ["a.html"]}) == []
    assert pdf_check.check_missing_glyphs("Overfull \\hbox (1.0pt too wide)\n") == []


def test_unresolved_reference_is_reported():
    bad = GOOD_TEXT + "as shown in (??) and Theorem ??.\n"
    problems = pdf_check.check_unresolved(bad)
    assert len(problems) == 2 and all(p.startswith("unresolved-reference:") for p in problems)
    assert "as shown in" in problems[0]


@pytest.mark.parametrize("drop", ["TRAJECTORIES AND THE LOG-DERIVATIVE TRICK\n", "GLOSSARY: THE NOTES’ TERMS AND THE BOOK’S\n"])
def test_a_missing_chapter_title_is_reported(drop):
    problems = pdf_check.check_titles(GOOD_TEXT.replace(drop, ""), TITLES)
    assert len(problems) == 1 and problems[0].startswith("missing-title:")


def test_a_title_is_not_found_by_its_words_scattered():
    text = "trajectories are sampled; and the log-derivative trick follows"
    assert pdf_check.check_titles(text, TITLES[1:2]) != []


def test_missing_or_unembedded_cjk_font_is_reported():
    no_cjk = "\n".join(line for line in GOOD_FONTS.splitlines() if "CJK" not in line)
    assert [p.split(":")[0] for p in pdf_check.check_cjk(no_cjk, GOOD_TEXT)] == ["no-cjk-font"]
    not_embedded = GOOD_FONTS.replace("Identity-H       yes yes yes     30", "Identity-H       no  no  yes     30")
    assert [p.split(":")[0] for p in pdf_check.check_cjk(not_embedded, GOOD_TEXT)] == ["no-cjk-font"]
    no_text = GOOD_TEXT.replace("策略 policy 轨迹 trajectory", "")
    assert [p.split(":")[0] for p in pdf_check.check_cjk(GOOD_FONTS, no_text)] == ["no-cjk-text"]


@pytest.mark.parametrize(
    "prose",
    [
        r"the gradient \frac{\partial J}{\partial \theta} is",  # TeX that was never typeset
        "where $J(\\theta)$ is the objective",  # math MyST did not parse
        "by {eq}`eq-traj-prob` the probability",  # a role printed as text
        "see {prf:ref}‘thm-score’ below",  # ... with TeX's curly backtick
        "```{math}",  # a directive fence
        "(eq-traj-prob)=",  # a label target
        ":label: thm-policy-gradient",  # a directive option
    ],
)
def test_raw_tex_or_myst_in_prose_is_reported(prose):
    problems = pdf_check.check_raw_markup("An ordinary line.\n" + prose + "\nAnother line.")
    assert len(problems) == 1 and problems[0].startswith("raw-markup:"), problems


def test_code_in_a_monospace_font_is_not_prose():
    page = xml(
        (0, "The label reads"),
        (1, 'ax.set_xlabel(r"$\\tau$") # {eq} `x`'),
        (0, "and the test id is"),
        (1, "tests/test_x.py::test_y"),
        (0, "5 &lt; 6 <i>ok</i>"),
    )
    prose = pdf_check.prose_from_pdftohtml_xml(page)
    assert prose.splitlines() == ["The label reads", "and the test id is", "5 < 6 ok"]
    assert pdf_check.check_raw_markup(prose) == []
    # the same text set in the serif font is a finding
    assert pdf_check.check_raw_markup(pdf_check.prose_from_pdftohtml_xml(xml((0, 'ax.set_xlabel(r"$\\tau$")')))) != []


def test_missing_glyph_in_the_log_is_reported_once():
    log = "Missing character: There is no 轨 (U+8F68) in font FreeSerif:mode=node;!\n" * 3
    # as TeX writes it: wrapped at 79 columns
    log += "Missing character: There is no 深 (U+6DF1) in font [FreeSerifItalic.otf]/OT:scri\npt=latn;!\n"
    problems = pdf_check.check_missing_glyphs(log)
    assert problems == ["missing-glyph: 轨 (U+8F68) in font FreeSerif:mode=node; (dropped from the PDF)",
                        "missing-glyph: 深 (U+6DF1) in font [FreeSerifItalic.otf]/OT:scri (dropped from the PDF)"]
    many = "".join(f"Missing character: There is no x (U+{i:04X}) in font F!\n" for i in range(25))
    assert len(pdf_check.check_missing_glyphs(many)) == 21


def test_a_number_of_the_html_missing_from_the_pdf_is_reported(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "ch01.html").write_text(
        '<span class="eqno">(1.1)<a class="headerlink"></a></span><span class="eqno">(1.3)</span>'
        '<p class="admonition-title"><span class="caption-number">Theorem 1.1 </span>(The theorem)</p>'
        '<figcaption><span class="caption-number">Fig. 1.2 </span><span class="caption-text">x</span>'
        '<span class="caption-number">Show code </span>')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.html").write_text('<span class="eqno">(9.9)</span>')
    numbers = pdf_check.html_numbers(tmp_path)
    assert sorted(numbers) == ["(1.1)", "(1.3)", "Fig. 1.2", "Theorem 1.1"]
    text = GOOD_TEXT + "Theorem 1.1 (The theorem)\nFig. 1.2: a caption\n"
    problems = pdf_check.check_numbers(text, numbers)
    assert problems == ["numbering: '(1.3)' (HTML: book/ch01.html) is not in the PDF"]
    # numbered per section in the PDF is not the HTML's number: (1.1.1) is not (1.1), Theorem 2.2.1 not 2.2
    assert pdf_check.check_numbers("see (1.1.1)", {"(1.1)": ["x"]}) != []
    assert pdf_check.check_numbers("Theorem 2.2.1 (The policy gradient theorem)", {"Theorem 2.2": ["x"]}) != []
    assert pdf_check.check_numbers("Theorem 12.1 holds", {"Theorem 2.1": ["x"]}) != []
    assert pdf_check.check_numbers("by Theorem\n2.1, and", {"Theorem 2.1": ["x"]}) == []


def test_toc_titles_are_the_first_headings(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: book/ch01\n      - file: book/notes.md\n"
    )
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("---\ntitle: x\n---\n\nsome text\n# The intro\n\n## Part\n")
    nb = {"cells": [{"cell_type": "code", "source": ["# not a heading\n"]},
                    {"cell_type": "markdown", "source": ["Lead-in\n", "\n", "# Chapter *one*\n"]}]}
    (tmp_path / "book" / "ch01.ipynb").write_text(json.dumps(nb))
    (tmp_path / "book" / "notes.md").write_text("# Notes: the 中文 terms\n")
    assert pdf_check.toc_titles(tmp_path) == [
        ("book/intro", "The intro"), ("book/ch01", "Chapter *one*"), ("book/notes.md", "Notes: the 中文 terms")]


def test_the_command_reports_a_missing_pdf(tmp_path, capsys):
    assert pdf_check.main([str(tmp_path / "nothing.pdf")]) == 2
    assert "make pdf" in capsys.readouterr().err


def test_the_pdf_preamble_defines_the_mathjax_macros_of_the_html_book():
    """The book's own TeX macros (\\E, \\grad, ...) are defined twice: for MathJax in _config.yml and for
    LaTeX in _latex/pgbook-pdf.sty. Both must give the same definitions."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    macros = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    sty = (root / "_latex" / "pgbook-pdf.sty").read_text(encoding="utf-8")
    latex = dict(re.findall(r"\\renewcommand\{\\(\w+)\}\{(.*)\}\s*$", sty, re.M))
    assert macros and set(latex) == set(macros)
    for name, body in macros.items():
        assert latex[name] == (body if isinstance(body, str) else body[0]), name
