"""tools/browser_check.py on tiny sites: each defect a reader would see fails its page, a good page
passes, a page whose MathJax never finishes fails within the time limit instead of hanging the
check, and a missing Chromium or site is one line with exit status 2. A claim label is a finding
in prose and in what a code cell printed, not in the code itself. An image a code cell drew must be
a figure with a caption.

The pages below imitate what MathJax leaves in the page (``mjx-container`` / ``mjx-math`` elements
and the theme's overflow rules), so the tests need neither MathJax nor the built book. All pages
are checked in one run of the checker: one browser launch for every defect kind."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import browser_check  # noqa: E402

HEAD = "<html><head><meta charset='utf-8'><script>window.MathJax = {startup: {promise: Promise.resolve()}};</script>"
HEAD += "<style>body{margin:0} article{margin:0 16px} mjx-math{display:inline-block}</style></head><body><article>"
TAIL = "</article></body></html>"
# a display equation as the theme lays it out: the number on the right, the formula in a scroll box
DISPLAY = (
    "<div class='math' id='equation-{label}' style='display:flex;flex-direction:row-reverse;overflow:hidden'>"
    "<span class='eqno' style='flex:none;width:100px'>(1.1)</span><mjx-container display='true' style='display:block;flex-grow:1;overflow:auto'>"
    "<mjx-math style='width:{width}px'>x</mjx-math></mjx-container></div>"
)
# an inline formula inside the theme's span.math, which hides overflow
INLINE_HIDDEN = (
    "<p>Text <span class='math' style='display:inline-flex;max-width:100%;overflow:hidden'><mjx-container>"
    "<mjx-math style='width:{width}px'>y</mjx-math></mjx-container></span> text.</p>"
)

GOOD = HEAD + (
    DISPLAY.format(label="eq-fits", width=300)  # fits at both widths
    + DISPLAY.format(label="eq-phone-scrolls", width=600)  # fits a desktop, scrolls in its own box on a phone
    + "<p>Prose with <code>$HOME \\frac</code> and <code>eq-in-code</code>, (1.1) and Theorem 2.1.</p>"
    + "<pre>$ echo \\sum eq-in-output</pre>"
    + "<p>A long <code style='overflow-wrap:anywhere'>tests/test_clipping.py::test_" + "x" * 80 + "</code> wraps.</p>"
) + TAIL
WIDE = HEAD + (
    DISPLAY.format(label="eq-wide", width=1500)  # needs scrolling on a desktop
    + DISPLAY.format(label="eq-beside-number", width=1200)  # fits the 1248 px column only without its number
) + TAIL
CLIPPED = HEAD + (
    INLINE_HIDDEN.format(width=600)  # fits 1280 px, cut off at 390 px
    + "<p><mjx-container><mjx-math style='width:900px'>z</mjx-math></mjx-container></p>"  # no box at all
) + TAIL
# 6 px wider than a phone: 16 px margin + 380 px
PAGE_WIDE = HEAD + "<p><span style='display:inline-block;white-space:nowrap;width:380px'>unbreakable_unbreakable</span></p>" + TAIL
RAW_TEX = HEAD + (
    "<p>The gradient is $\\nabla J$ here.</p>"  # a formula MathJax never saw
    + "<p>````{dropdown} a directive nested in a fence it could not open</p>"  # unparsed MyST
    + "<details><summary>Check</summary><p>inside a closed dropdown: \\mathbb{R} too</p></details>"
    + "<style>.toggle-hidden{visibility:hidden}</style>"  # sphinx-togglebutton's collapsed solution
    + "<div class='solution toggle toggle-hidden'><p>a collapsed solution: eq-in-solution</p></div>"
) + TAIL
# a code cell as Jupyter Book renders it: the source (labels in code are fine) and what it printed
# (a label there is raw), one line coloured by ANSI codes, which split it into spans
CELL = (
    "<div class='cell docutils container'><div class='cell_input docutils container'>"
    "<div class='highlight-ipython3 notranslate'><div class='highlight'><pre><span></span>"
    "glue(<span class='s2'>'eq-glue-name'</span>, x)\nprint(<span class='s2'>'eq-in-source: ...'</span>)</pre></div></div></div>"
    "<div class='cell_output docutils container'><div class='output stream highlight-myst-ansi notranslate'>"
    "<div class='highlight'><pre><span></span>first line\neq-in-output: max error &lt; 1e-8\n"
    "<span class='ansi-green-fg'>prop</span>-in-colour holds: True</pre></div></div></div></div>"
)
RAW_LABEL = HEAD + "<p>As shown in eq-clip-dr and (thm-pg-main), see <code>eq-in-code</code>.</p>" + CELL + TAIL
# a 1 x 1 PNG: images must load, and a data: URL is not a request to another host
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
# a code cell's image output as myst-nb renders it with mystnb.figure caption and name ...
CAPTIONED_CELL = (
    "<div class='cell docutils container'><div class='cell_output docutils container'>"
    "<figure class='align-default' id='fig-good'><img alt='captioned-plot' src='" + PNG + "'/>"
    "<figcaption><p><span class='caption-number'>Fig. 1.1 </span><span class='caption-text'>What is plotted.</span>"
    "</p></figcaption></figure></div></div>"
)
GOOD = GOOD.replace(TAIL, f"<p><a href='{browser_check.PDF_NAME}'>PDF</a></p>" + CAPTIONED_CELL + "<p><img alt='prose-image' src='" + PNG + "'/> an image outside a cell is not a figure.</p>" + TAIL)
# ... and without: a bare image output, a figure without a caption, a figure whose caption is only its number
FIGURES = HEAD + (
    "<div class='cell docutils container'><div class='cell_output docutils container'>"
    "<img alt='uncaptioned-plot' src='" + PNG + "'/></div></div>"
    "<div class='cell docutils container'><div class='cell_output docutils container'>"
    "<figure id='fig-no-caption'><img src='" + PNG + "'/></figure></div></div>"
    "<div class='cell docutils container'><div class='cell_output docutils container'>"
    "<figure id='fig-empty'><img alt='empty-caption-plot' src='" + PNG + "'/><figcaption><p>"
    "<span class='caption-number'>Fig. 1.2 </span><span class='caption-text'> </span></p></figcaption></figure></div></div>"
) + TAIL
KNOWN = HEAD + "<p>A tolerated eq-known-label.</p>" + TAIL
QUOTES = HEAD + (
    "<p>The notes say \u201cgood\u201d and (\u201cfine\u201d), and \u201c<span class='math'><mjx-container>x</mjx-container></span>\u201d.</p>"
    "<p>Wrong: (\u201d<span class='math'><mjx-container>V</mjx-container></span> is updated\u201d).</p>"
    "<p>Stray: \u201c loose\u201d and \u201ctight \u201d; in code <code>( \u201d</code> is fine.</p>"
) + TAIL
HANGS = """<html><head><script>window.MathJax = {startup: {promise: new Promise(() => {})}};</script></head>
<body><span class="math">x</span></body></html>"""
PAGES = {
    "good.html": GOOD,
    "wide.html": WIDE,
    "clipped.html": CLIPPED,
    "pagewide.html": PAGE_WIDE,
    "rawtex.html": RAW_TEX,
    "rawlabel.html": RAW_LABEL,
    "figures.html": FIGURES,
    "known.html": KNOWN,
    "quotes.html": QUOTES,
    "hangs.html": HANGS,
}
KNOWN_FINDINGS = {
    ("known.html", "raw-label", "eq-known-label"): "tolerated in this test",
    ("good.html", "wide-math", "eq-long-gone"): "fixed meanwhile",
}
TIMEOUT_S = 3

needs_chromium = pytest.mark.skipif(not Path(browser_check.CHROMIUM).is_file(), reason="no Chromium")
pytestmark = pytest.mark.kernel_independent  # skipped by the portability pass (tests/conftest.py)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One run of the checker over all the pages: (exit status, {page: [its lines]}, whole output)."""
    site = tmp_path_factory.mktemp("site")
    for name, html in PAGES.items():
        (site / name).write_text(html)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = browser_check.main(str(site), timeout_s=TIMEOUT_S, known=KNOWN_FINDINGS)
    text = out.getvalue()
    pages, current = {}, None
    for line in text.splitlines():
        head = re.match(r"^(ok|FAIL) +(\S+?):", line)
        if head:
            current = head.group(2)
            pages[current] = [line]
        elif current and line.startswith("     "):
            pages[current].append(line.strip())
    return status, pages, text


def findings(pages, page, kind):
    return [line for line in pages[page] if line.startswith(f"- {kind} ")]


def test_missing_site_and_missing_chromium_exit_2(tmp_path, capsys):
    assert browser_check.main(str(tmp_path / "absent")) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "index.html").write_text(GOOD)
    assert browser_check.main(str(tmp_path), chromium=str(tmp_path / "no-chromium")) == 2
    assert "no Chromium" in capsys.readouterr().err


@needs_chromium
def test_a_good_page_passes_at_both_widths(report):
    status, pages, text = report
    assert status == 1  # the broken pages fail the run
    assert pages["good.html"][0].startswith("ok   good.html: 2 math"), pages["good.html"]
    assert len(pages["good.html"]) == 1, pages["good.html"]  # no finding, not even a tolerated one
    assert "10 pages at 1280 px and 390 px" in text


@needs_chromium
def test_display_math_wider_than_its_column_on_a_desktop_fails(report):
    _, pages, _ = report
    assert pages["wide.html"][0].startswith("FAIL wide.html")
    wide, beside = findings(pages, "wide.html", "wide-math")
    # named by its label, at the desktop width only (on a phone it scrolls in its own box)
    assert wide.startswith("- wide-math at 1280 px: eq-wide: display math needs 1500 px")
    assert re.search(r"its column has \d+ px; \(1\.1\) TeX: x", wide)
    # the equation number's space is not part of the column
    assert beside.startswith("- wide-math at 1280 px: eq-beside-number: display math needs 1200 px, its column has 1148 px")


@needs_chromium
def test_math_cut_off_or_running_off_the_page_fails(report):
    _, pages, _ = report
    lines = findings(pages, "clipped.html", "clipped-math")
    assert any(line.startswith("- clipped-math at 390 px: y: cut off: 600 px wide") and "span.math that hides overflow" in line for line in lines), lines
    assert any(line.startswith("- clipped-math at 390 px: z: runs off the 390 px page") for line in lines), lines
    assert not any("clipped-math at 1280" in line for line in lines), lines  # both fit a desktop... except
    assert findings(pages, "clipped.html", "page-wide")  # ... the 900 px one, which also widens the phone page


@needs_chromium
def test_a_page_wider_than_a_phone_fails_and_names_what_sticks_out(report):
    _, pages, _ = report
    (line,) = findings(pages, "pagewide.html", "page-wide")
    assert line.startswith("- page-wide at 390 px: page: 396 px wide in a 390 px viewport: span")
    assert "unbreakable_unbreakable" in line


@needs_chromium
def test_raw_tex_in_text_fails_including_closed_dropdowns_and_solutions_but_not_code(report):
    _, pages, _ = report
    lines = findings(pages, "rawtex.html", "raw-tex")
    assert len(lines) == 3, lines
    assert any("{dropdown}" in line or "```" in line for line in lines)
    assert any("The gradient is $\\nabla J$ here." in line and '"$" printed as text' in line for line in lines)
    assert any("a closed dropdown: \\mathbb{R} too" in line and '"\\mathbb" printed as text' in line for line in lines)
    assert not findings(pages, "good.html", "raw-tex")  # $ and \frac in <code> and <pre> are code
    assert [line.split(":")[1].strip() for line in findings(pages, "rawtex.html", "raw-label")] == ["eq-in-solution"]


@needs_chromium
def test_raw_claim_labels_in_text_and_code_output_fail_but_not_in_code(report):
    _, pages, _ = report
    lines = findings(pages, "rawlabel.html", "raw-label")
    # eq-in-code, and eq-glue-name / eq-in-source in the cell's source, are code: not findings
    assert [line.split(":")[1].strip() for line in lines] == ["eq-clip-dr", "thm-pg-main", "eq-in-output", "prop-in-colour"], lines
    assert all("at 1280/390 px" in line for line in lines)
    output = "printed in a code cell's output: "
    assert lines[2].endswith(output + '"eq-in-output: max error < 1e-8"'), lines[2]
    assert lines[3].endswith(output + '"prop-in-colour holds: True"'), lines[3]  # one line across colour spans


@needs_chromium
def test_quotes_facing_the_wrong_way_or_with_a_space_inside_fail(report):
    _, pages, _ = report
    lines = findings(pages, "quotes.html", "quote")
    assert len(lines) == 2, lines  # the closing quote that opens; the paragraph with two stray spaces (first one named)
    assert any('"(\u201d"' in line for line in lines), lines
    assert any('Stray: \u201c loose' in line for line in lines), lines
    assert not findings(pages, "good.html", "quote")


@needs_chromium
def test_an_image_output_without_a_caption_fails(report):
    _, pages, _ = report
    assert pages["figures.html"][0].startswith("FAIL figures.html"), pages["figures.html"]
    lines = [line for line in pages["figures.html"] if line.startswith("- figure-caption:")]
    assert len(lines) == 3, lines
    assert lines[0].startswith("- figure-caption: uncaptioned-plot: image in a code cell's output not in a <figure>"), lines[0]
    assert lines[1].startswith("- figure-caption: " + PNG + ": image in a code cell's output its <figure> has no <figcaption>"), lines[1]
    assert lines[2].startswith("- figure-caption: empty-caption-plot: image in a code cell's output its caption is empty"), lines[2]
    # the captioned output figure and the image in prose on the good page are fine
    assert not [line for line in pages["good.html"] if "figure-caption" in line]


@needs_chromium
def test_known_findings_are_printed_but_do_not_fail_and_stale_ones_are_named(report):
    _, pages, text = report
    assert pages["known.html"][0].startswith("ok   known.html")
    assert pages["known.html"][1].startswith("~ known (tolerated in this test): raw-label at 1280/390 px: eq-known-label")
    assert "stale KNOWN_FINDINGS entry (no longer found, remove it): ('good.html', 'wide-math', 'eq-long-gone')" in text
    assert "1 known finding(s)" in text


@needs_chromium
def test_hanging_mathjax_fails_that_page_in_time_and_the_check_goes_on(report):
    _, pages, _ = report
    assert pages["hangs.html"][0].startswith("FAIL hangs.html")
    assert f"- MathJax did not finish within {TIMEOUT_S} s" in pages["hangs.html"]
    assert pages["rawlabel.html"]  # pages after it were checked


@needs_chromium
def test_the_pdf_link_is_counted_until_make_pdf_ran_then_it_must_resolve(report, tmp_path, capsys):
    _, pages, text = report
    assert "link(s) to the PDF edition, which is not built yet" in text  # GOOD links it; not a problem
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "page.html").write_text(GOOD)
    (tmp_path / browser_check.PDF_NAME).write_bytes(b"%PDF-1.5")  # built, but not next to book/page.html
    assert browser_check.main(str(tmp_path), timeout_s=TIMEOUT_S) == 1
    assert f"broken internal link: " in capsys.readouterr().out
    (tmp_path / "book" / browser_check.PDF_NAME).write_bytes(b"%PDF-1.5")
    assert browser_check.main(str(tmp_path), timeout_s=TIMEOUT_S) == 0
