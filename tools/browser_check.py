"""Open every page of the built book in headless Chromium and check what a reader sees.

Usage: python tools/browser_check.py [_build/html] [--screenshots DIR]

Each HTML page (served from 127.0.0.1) is loaded once, at a desktop width (1280 px), and after
MathJax has finished it is checked there and then again after resizing the same page to a phone
width (390 px). All ``<details>`` blocks (dropdowns, hidden cells) and collapsed toggles (exercise
solutions) are opened first, so that what a reader can unfold is checked too.

Once per page:

* no MathJax error node (``mjx-merror``) and no ``.math`` element left untypeset (an unbalanced
  brace is never recognised as math at all; only this catches it), and some math on the pages
  that have any;
* every ``<img>`` loaded (``complete`` with a non-zero natural width);
* no request to any host other than the local server (the book reads offline);
* no page error except the allow-listed harmless ones below;
* every same-site link target exists (no broken internal links);
* ``figure-caption``: every image in a code cell's output area (``div.cell_output``) is inside a
  ``<figure>`` with a non-empty ``<figcaption>`` (myst-nb renders a cell's image output that way when
  the cell's metadata has ``mystnb.figure.caption``); named by the image's alt text or source.

At each width (``WIDTHS``):

* ``wide-math`` (desktop only): a display equation (or an inline formula) wider than its column,
  i.e. one that needs horizontal scrolling on a desktop (MathJax 3 does not break lines: split it
  with ``aligned``, or make a long inline formula a display); the equation number's space is not
  part of the column. On a phone such math may scroll, inside its own box;
* ``clipped-math``: math cut off by a box that hides overflow (e.g. an inline formula wider than
  its line) or running off the page, instead of scrolling inside a scroll box of its own;
* ``page-wide``: the page is wider than the viewport (the reader must scroll the whole page
  sideways), with the elements that stick out;
* ``raw-tex``: visible text outside math containing ``$`` or a TeX command (``\\frac``,
  ``\\sum``, ``\\mathbb`` ...): a formula that MathJax never saw. Code (``pre``, ``code``) and
  MathJax's own containers are not text. Unparsed MyST markup counts too: a code fence
  (three backticks) or a ``{directive}``/``{role}`` name printed as text;
* ``raw-label``: a claim label (``eq-clip-dr``, ``thm-...``) printed in visible text outside code,
  where a reader expects a number such as "(7.3)" or "Theorem 6.2". What a code cell printed
  (its output area, ``div.cell_output``) counts as text here, though it is set in ``<pre>``: print a
  description of the quantity and point to the equation from the prose. The cell's source
  (``div.cell_input``) stays exempt;
* ``quote``: a curly quotation mark that faces the wrong way or has a space on its inside, in
  visible text outside code: a closing quote after a space or an opening parenthesis (Sphinx's
  smart quotes turn a straight quote before a formula into a closing one), a space after an
  opening quote or before a closing one.

A finding is named by page, kind and what it is about (an equation's label, or the first 60
characters of its TeX; the offending text); ``KNOWN_FINDINGS`` lists temporarily tolerated ones
(printed, but not failures). ``--screenshots DIR`` saves a full-page screenshot of every page at
each width (``DIR/<page>-<width>.png``).

Uses Debian's Chromium (``/usr/bin/chromium``) through Playwright's Python package; never runs
``playwright install``. A page that does not load, or whose MathJax does not finish, within
``PAGE_TIMEOUT_S`` seconds (the limit also covers its checks at both widths) is a failure of that
page (the check goes on with the next one).
Exit status 0 when every page passes, 1 when one fails, 2 when the check cannot run (no built
book, no Chromium).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urldefrag, urlparse

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
PAGE_TIMEOUT_S = 60  # per page: load, then MathJax typesetting
DESKTOP, PHONE = 1280, 390
WIDTHS = (DESKTOP, PHONE)  # the page is loaded at the first width, then resized
VIEWPORT_HEIGHT = {DESKTOP: 900, PHONE: 844}
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Page errors that are known and harmless, each with its reason.
ALLOWED_PAGE_ERRORS = {
    # Sphinx 7.4 adds the same inline thebe script twice; fixed only in Sphinx 8.2, which
    # jupyter-book 1.x cannot use. Nothing on the page depends on it.
    "Identifier 'THEBE_JS_URL' has already been declared": "duplicate inline script in Sphinx 7.4",
}
#: Findings tolerated for now: (page, kind, what) -> reason; ``what`` "*" stands for every finding
#: of that kind on that page. Each is printed as "known", not a failure; an entry that no longer
#: matches anything is reported as stale (remove it).
KNOWN_FINDINGS: dict[tuple[str, str, str], str] = {
}
#: the PDF edition, which `make pdf` copies into the built book next to the pages that link it. Until
#: it has run (`make test` builds the HTML only) links to it are counted, not failures; once any copy
#: exists, every link to it must resolve (CI runs `make pdf`, then this check again with screenshots).
PDF_NAME = "policy-gradients-verified.pdf"
REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.I)
SKIP_PAGES = {"genindex.html", "search.html"}  # generated by Sphinx, no book content
#: raw TeX in text: a dollar sign, a TeX command (backslash and letters), or \( \) \[ \]
# ... and MyST markup that was not parsed: a code fence, or a {directive}/{role} name such as
# {dropdown}, {prf:ref}, {eq} printed as text (e.g. a directive nested in a fence it cannot open)
RAW_TEX = r"\$|\\[A-Za-z]{2,}|\\[()\[\]]|```|\{[a-z]+(?::[a-z-]+)?\}"
#: a claim label as the book's sources write it (eq-clip-dr, thm-pg, err-value-target, ...)
RAW_LABEL = r"\b(?:eq|thm|prop|lem|cor|rem|err|def)-[a-z0-9]+(?:-[a-z0-9]+)*\b"

CHECK_JS = """
() => {
  const maths = Array.from(document.querySelectorAll('.math'));
  const untypeset = maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80));
  let errors = Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 80));
  if (errors.length && window.MathJax && MathJax.startup && MathJax.startup.document) {
    // name the TeX source of each failing formula, so the message says what to fix
    const bad = Array.from(MathJax.startup.document.math)
      .filter(m => m.root && m.root.toString().includes('merror'))
      .map(m => String(m.math).slice(0, 120));
    errors = errors.map((e, i) => bad[i] ? `${e} in: ${bad[i]}` : e);
  }
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  // images a code cell drew, outside a captioned figure: [alt or src, why]
  const uncaptioned = [];
  for (const img of document.querySelectorAll('.cell_output img, div.output img')) {
    const fig = img.closest('figure');
    const cap = fig ? fig.querySelector('figcaption') : null;
    const text = cap ? (cap.querySelector('.caption-text') || cap).textContent.trim() : '';
    if (!text) uncaptioned.push([img.getAttribute('alt') || img.getAttribute('src') || '(no src)',
                                 !fig ? 'not in a <figure>' : !cap ? 'its <figure> has no <figcaption>' : 'its caption is empty']);
  }
  return {n_math: maths.length, untypeset, errors, n_images: images.length, broken, links, uncaptioned};
}
"""

# What a reader sees at the current width. Returns a list of [kind, what, detail].
LAYOUT_JS = """
([rawTex, rawLabel, desktop]) => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  const short = s => String(s).replace(/\\s+/g, ' ').trim().slice(0, 60);
  const texOf = new Map();
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) if (item.typesetRoot) texOf.set(item.typesetRoot, String(item.math));
  }
  // an equation's name: its label (eq-...) if it has one, else the start of its TeX; and its
  // number and TeX for the message
  const nameOf = c => {
    const box = c.closest('div.math');
    const tex = short(texOf.get(c) || c.textContent);
    if (box && box.id) {
      const eqno = box.querySelector('.eqno');
      const num = eqno ? eqno.textContent.replace('#', '').trim() + ' ' : '';
      return [box.id.replace(/^equation-/, ''), num + 'TeX: ' + tex];
    }
    return [tex, 'TeX: ' + tex];
  };
  const scrolls = s => /(auto|scroll)/.test(s.overflowX);
  const clips = s => /(hidden|clip)/.test(s.overflowX);
  // rendered (not display: none, not inside a closed <details>, whose content keeps its boxes)
  const shown = el => (el.checkVisibility ? el.checkVisibility({visibilityProperty: true}) : el.getClientRects().length > 0);
  // the box that decides what happens to a too-wide element: the nearest one (itself included)
  // whose overflow is not visible, or null when the element's overflow goes to the page
  const overflowBox = el => {
    for (let e = el; e && e !== document.body && e !== document.documentElement; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (scrolls(s) || clips(s)) return [e, s];
    }
    return [null, null];
  };
  for (const c of document.querySelectorAll('mjx-container')) {
    if (!shown(c) || c.closest('mjx-assistive-mml')) continue;
    const math = c.querySelector('mjx-math') || c;
    const mr = math.getBoundingClientRect();
    const [name, tex] = nameOf(c);
    const [box, s] = overflowBox(c);
    if (box === null) {
      if (mr.right > vw + 1 || mr.left < -1)
        out.push(['clipped-math', name, `runs off the ${vw} px page (right edge at ${Math.round(mr.right)} px), no scroll box; ${tex}`]);
      continue;
    }
    const br = box.getBoundingClientRect();
    if (!(mr.right > br.right + 1 || mr.left < br.left - 1)) continue;  // fits its box
    if (clips(s)) {
      out.push(['clipped-math', name, `cut off: ${Math.round(mr.width)} px wide in a ${Math.round(br.width)} px ${box.tagName.toLowerCase()}.${box.classList[0] || ''} that hides overflow; ${tex}`]);
    } else if (desktop) {  // it scrolls in a box of its own: fine on a phone, not on a desktop
      const kind = c.getAttribute('display') === 'true' ? 'display' : 'inline';
      out.push(['wide-math', name, `${kind} math needs ${Math.ceil(mr.right - br.left)} px, its column has ${Math.round(br.width)} px; ${tex}`]);
    }
  }
  const docWidth = document.documentElement.scrollWidth;
  if (docWidth > vw + 1) {
    const culprits = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.right <= vw + 1) continue;
      if (overflowBox(el.parentElement)[0] !== null) continue;  // inside a box that scrolls or clips
      if (Array.from(el.children).some(k => k.getBoundingClientRect().right > vw + 1)) continue;  // a child sticks out: name it
      culprits.push(`${el.tagName.toLowerCase()}${el.classList[0] ? '.' + el.classList[0] : ''} (right edge ${Math.round(r.right)} px) "${short(el.textContent)}"`);
      if (culprits.length === 3) break;
    }
    out.push(['page-wide', 'page', `${docWidth} px wide in a ${vw} px viewport: ${culprits.join('; ')}`]);
  }
  const OUTPUT_AREAS = '.cell_output, div.output';
  const skip = 'script, style, noscript, template, textarea, pre, code, kbd, samp, tt, mjx-container, .math, .MathJax, .highlight';
  const texRe = new RegExp(rawTex), labelRe = new RegExp(rawLabel, 'g');
  // a closing quote that opens (after a space or "("), a space inside a pair of quotes
  const QUOTE_RE = /[\\s(\\uff08]\\u201d|\\u201c\\s/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.nodeValue;
    if (!t.trim()) continue;
    const el = n.parentElement;
    if (!el || el.closest(skip) || !shown(el)) continue;
    const m = texRe.exec(t);
    if (m) {
      // named by the prose around it (math left out), so that the message says where
      const block = el.closest('p, li, td, th, dd, dt, h1, h2, h3, h4, h5, h6, blockquote, div') || el;
      let prose = '', at = 0;
      const inBlock = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
      for (let b = inBlock.nextNode(); b; b = inBlock.nextNode()) {
        if (b === n) at = prose.length + m.index;
        if (b === n || !(b.parentElement && b.parentElement.closest(skip))) prose += b.nodeValue;
      }
      const what = short(prose.slice(Math.max(0, at - 24), at + 36));
      if (!seen.has(what)) { seen.add(what); out.push(['raw-tex', what, `"${m[0]}" printed as text`]); }
    }
    const qm = QUOTE_RE.exec(t);
    if (qm) {
      const what = short(t.slice(Math.max(0, qm.index - 24), qm.index + 36));
      if (!seen.has('quote ' + what)) { seen.add('quote ' + what); out.push(['quote', what, `"${qm[0].trim() || qm[0]}": a quotation mark facing the wrong way or with a space inside`]); }
    }
    for (const lm of t.matchAll(labelRe)) {
      if (!seen.has(lm[0])) { seen.add(lm[0]); out.push(['raw-label', lm[0], `printed in: "${short(t)}"`]); }
    }
  }
  // what a code cell printed (Jupyter Book's div.cell_output: streams, results, tracebacks) is text
  // the reader reads, although it is set in <pre>: a label there is raw too. The source shown above
  // it (div.cell_input) stays exempt: labels in code (glue names, test ids) are fine. innerText is
  // the rendered text, whole lines even where ANSI colours split them into spans.
  for (const o of document.querySelectorAll(OUTPUT_AREAS)) {
    if (!shown(o) || (o.parentElement && o.parentElement.closest(OUTPUT_AREAS))) continue;
    for (const line of o.innerText.split('\\n')) {
      for (const lm of line.matchAll(labelRe)) {
        if (!seen.has(lm[0])) { seen.add(lm[0]); out.push(['raw-label', lm[0], `printed in a code cell's output: "${short(line)}"`]); }
      }
    }
  }
  return out;
}
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


MATHJAX_DONE_JS = """
(ms) => Promise.race([
  MathJax.startup.promise.then(() => true),
  new Promise(resolve => setTimeout(() => resolve(false), ms)),
])
"""
# what a reader can unfold: <details> (dropdowns, hidden cells) and sphinx-togglebutton's collapsed
# blocks (exercise solutions, "dropdown" admonitions)
UNFOLD_JS = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
}"""


def main(
    root: str,
    chromium: str = CHROMIUM,
    timeout_s: float = PAGE_TIMEOUT_S,
    screenshots: str | None = None,
    known: dict[tuple[str, str, str], str] | None = None,
) -> int:
    known = KNOWN_FINDINGS if known is None else known
    site = Path(root).resolve()
    if not site.is_dir():
        print(f"browser check: {root} is not a folder (build the book first: make book)", file=sys.stderr)
        return 2
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)
    pages = [p for p in pages if p.name not in SKIP_PAGES]
    if not pages:
        print(f"browser check: no pages under {site}", file=sys.stderr)
        return 2
    if not Path(chromium).is_file():
        print(f"browser check: no Chromium at {chromium} (Debian: apt-get install chromium; `make browser` does it)", file=sys.stderr)
        return 2
    shots = Path(screenshots) if screenshots else None
    pdf_built = any(site.rglob(PDF_NAME))
    pdf_links = 0
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    failures, tolerated, total_math, used_known = [], [], 0, set()
    start = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": WIDTHS[0], "height": VIEWPORT_HEIGHT[WIDTHS[0]]})
        outside = []

        def route(r):
            host = urlparse(r.request.url).hostname
            if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        for page_path in pages:
            rel = page_path.relative_to(site).as_posix()
            redirect = REDIRECT.search(page_path.read_text(errors="replace"))
            if redirect:  # e.g. the root index.html that jupyter-book writes: check its target
                target = (page_path.parent / redirect.group(1)).resolve()
                status = "ok" if target.exists() else "FAIL"
                print(f"{status:4} {rel}: redirect to {redirect.group(1)}")
                if not target.exists():
                    failures.append(f"{rel}: redirects to a missing page {redirect.group(1)}")
                continue
            page = context.new_page()
            errors: list[str] = []
            outside.clear()
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            page.set_default_timeout(timeout_s * 1000)
            problems, findings = [], {}
            try:
                page.goto(base + rel, wait_until="load")
                has_mathjax = page.evaluate("() => typeof window.MathJax !== 'undefined' && !!MathJax.startup")
                if has_mathjax and not page.evaluate(MATHJAX_DONE_JS, timeout_s * 1000):
                    problems.append(f"MathJax did not finish within {timeout_s:g} s")
                result = page.evaluate(CHECK_JS)
                page.evaluate(UNFOLD_JS)
                # no CSS transitions: after a resize the theme slides its sidebars off-canvas, and a
                # check or screenshot taken during the slide sees them half over the text (a reader who
                # loads the page at that width never does)
                page.add_style_tag(content="*, *::before, *::after { transition: none !important; animation: none !important; }")
                for width in WIDTHS:
                    if width != WIDTHS[0]:
                        page.set_viewport_size({"width": width, "height": VIEWPORT_HEIGHT[width]})
                        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                    for kind, what, detail in page.evaluate(LAYOUT_JS, [RAW_TEX, RAW_LABEL, width >= DESKTOP]):
                        findings.setdefault((kind, what), [detail, []])[1].append(width)
                    if shots:
                        stem = rel.removesuffix(".html").replace("/", "_")
                        page.screenshot(path=str(shots / f"{stem}-{width}.png"), full_page=True)
            except PlaywrightError as exc:  # includes TimeoutError
                failures.append(f"{rel}: did not load within {timeout_s:g} s ({str(exc).splitlines()[0]})")
                print(f"FAIL {rel}: {failures[-1]}")
                page.close()
                continue
            for what, why in result["uncaptioned"]:
                findings.setdefault(("figure-caption", what), [f"image in a code cell's output {why} (give the cell mystnb.figure caption and name)", []])
            total_math += result["n_math"]
            if result["n_math"] and not has_mathjax:
                problems.append("page has math but MathJax did not load")
            if result["untypeset"]:
                problems.append(f"{len(result['untypeset'])} math element(s) not typeset, e.g. {result['untypeset'][:2]}")
            if result["errors"]:
                problems.append(f"MathJax errors: {result['errors'][:3]}")
            if result["broken"]:
                problems.append(f"images not loaded: {result['broken'][:3]}")
            if outside:
                problems.append(f"requests to other hosts: {sorted(set(outside))[:3]}")
            bad_errors = [e for e in errors if not any(k in e for k in ALLOWED_PAGE_ERRORS)]
            if bad_errors:
                problems.append(f"page errors: {bad_errors[:3]}")
            for link in result["links"]:
                url, _ = urldefrag(link)
                if url.startswith(base):
                    target = site / urlparse(url).path.lstrip("/")
                    if target.is_dir():
                        target = target / "index.html"
                    if not target.exists():
                        if target.name == PDF_NAME and not pdf_built:
                            pdf_links += 1  # `make pdf` puts it there; checked when it has run
                        else:
                            problems.append(f"broken internal link: {link}")
            notes, by_wildcard = [], defaultdict(list)
            for (kind, what), (detail, widths) in findings.items():
                at = f" at {'/'.join(map(str, widths))} px" if widths else ""  # width-independent checks: no width
                line = f"{kind}{at}: {what}: {detail}"
                if (rel, kind, what) in known:
                    used_known.add((rel, kind, what))
                    notes.append(f"known ({known[(rel, kind, what)]}): {line}")
                elif (rel, kind, "*") in known:
                    used_known.add((rel, kind, "*"))
                    by_wildcard[kind].append(what)
                else:
                    problems.append(line)
            for kind, whats in by_wildcard.items():
                notes.append(f"known ({known[(rel, kind, '*')]}): {len(whats)} {kind} finding(s), e.g. {', '.join(whats[:3])}")
            status = "ok" if not problems else "FAIL"
            print(f"{status:4} {rel}: {result['n_math']} math, {result['n_images']} images")
            for p in problems:
                failures.append(f"{rel}: {p}")
                print(f"     - {p}")
            for n in notes:
                tolerated.append(f"{rel}: {n}")
                print(f"     ~ {n}")
            page.close()
        browser.close()
    server.shutdown()
    if total_math == 0:
        failures.append("no math found on any page: the check would be vacuous")
    for entry in sorted(set(known) - used_known):
        if any(p.relative_to(site).as_posix() == entry[0] for p in pages):
            print(f"note: stale KNOWN_FINDINGS entry (no longer found, remove it): {entry}")
    if pdf_links:
        print(f"note: {pdf_links} link(s) to the PDF edition, which is not built yet (make pdf)")
    print(
        f"browser check: {len(pages)} pages at {' and '.join(f'{w} px' for w in WIDTHS)}, {total_math} math elements, "
        f"{len(failures)} problem(s), {len(tolerated)} known finding(s), {time.monotonic() - start:.0f} s"
    )
    return 1 if failures else 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--screenshots", metavar="DIR", help="save a full-page screenshot of every page at each width")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    sys.exit(main(args.site, screenshots=args.screenshots))
