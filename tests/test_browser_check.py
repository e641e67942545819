"""tools/browser_check.py on tiny sites: a page whose MathJax never finishes fails within the time
limit instead of hanging the check, and a missing Chromium or site is one line with exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import browser_check  # noqa: E402

GOOD = """<html><head><script>window.MathJax = {startup: {promise: Promise.resolve()}};</script></head>
<body><span class="math"><mjx-container>x</mjx-container></span></body></html>"""
HANGS = """<html><head><script>window.MathJax = {startup: {promise: new Promise(() => {})}};</script></head>
<body><span class="math">x</span></body></html>"""

needs_chromium = pytest.mark.skipif(not Path(browser_check.CHROMIUM).is_file(), reason="no Chromium")


def test_missing_site_and_missing_chromium_exit_2(tmp_path, capsys):
    assert browser_check.main(str(tmp_path / "absent")) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "index.html").write_text(GOOD)
    assert browser_check.main(str(tmp_path), chromium=str(tmp_path / "no-chromium")) == 2
    assert "no Chromium" in capsys.readouterr().err


@needs_chromium
def test_hanging_mathjax_fails_that_page_in_time_and_the_check_goes_on(tmp_path, capsys):
    (tmp_path / "hangs.html").write_text(HANGS)
    (tmp_path / "index.html").write_text(GOOD)
    assert browser_check.main(str(tmp_path), timeout_s=1) == 1
    out = capsys.readouterr().out
    assert "FAIL hangs.html" in out and "MathJax did not finish within 1 s" in out
    assert "ok   index.html: 1 math" in out and "2 pages" in out
