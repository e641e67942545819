# Policy Gradients, Verified — two commands do everything on a fresh machine with python3:
#   make book   create .venv, install, build the HTML book (prints the path of index.html)
#   make test   the same set-up, then unit tests, the ledger check, the notebook marker check, nbval
#               over every notebook, the book build with warnings as errors, the browser check, and
#               the portability pass (unit tests and nbval again under other floating-point kernels)
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
MATHJAX  := _mathjax/mathjax/tex-chtml.js
MATHJAX_VERSION := 3.2.2
NOTEBOOKS := $(wildcard book/*.ipynb)
INDEX    := _build/html/index.html
# test workers (pytest-xdist): one per core, at most 4; `make unit JOBS=1` runs in one process
JOBS     ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
XDIST    = $(if $(filter-out 1,$(JOBS)),-n $(JOBS),-p no:xdist)
XDIST_NB = $(if $(filter-out 1,$(JOBS)),-n $(JOBS) --dist loadfile,-p no:xdist)

.PHONY: book test setup unit ledger markers nbval build-strict browser screenshots pdf portability mutants lab bench clean

setup: $(STAMP) $(MATHJAX)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# MathJax 3 from the npm registry, served from the built book: no CDN at reading time.
$(MATHJAX):
	tmp=$$(mktemp -d)
	(cd $$tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz)
	rm -rf _mathjax/mathjax && mkdir -p _mathjax
	mv $$tmp/package/es5 _mathjax/mathjax
	rm -rf $$tmp
	test -f $@

ledger: $(STAMP)
	$(PY) tools/ledger.py

book: setup ledger
	$(VENV)/bin/jupyter-book build . --builder html --quiet
	@echo "The book: $(CURDIR)/$(INDEX)"

unit: $(STAMP)
	$(PY) -m pytest tests -q $(XDIST)

# every NBVAL_* marker well formed, ignored outputs rare and justified, no round-off digits stored
markers: $(STAMP)
	$(PY) tools/check_notebooks.py

nbval: $(STAMP)
	$(PY) -m pytest -q $(XDIST_NB) --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg $(NOTEBOOKS)

build-strict: setup ledger
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . --builder html -W -n --keep-going --quiet
	$(PY) tools/ledger.py --verify-html _build/html
	@echo "The book: $(CURDIR)/$(INDEX)"

# Chromium for the check, and a CJK font so that screenshots show the notes' Chinese quotes
CHROMIUM_READY = { test -x /usr/bin/chromium && fc-list :lang=zh 2>/dev/null | grep -q .; } || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

browser: $(STAMP)
	$(CHROMIUM_READY)
	$(PY) tools/browser_check.py _build/html

# the same check, also saving a full-page screenshot of every page at 1280 and 390 px into
# _build/screenshots/ (CI keeps them; about 80 s, so not part of make test)
screenshots: $(STAMP)
	$(CHROMIUM_READY)
	$(PY) tools/browser_check.py _build/html --screenshots _build/screenshots

# The PDF edition: XeLaTeX, the LaTeX packages, xeCJK with Noto CJK (the notes' Chinese quotes), the
# text fonts and poppler (pdftotext & co., for the check), installed from Debian when missing
PDF_READY = { command -v xelatex && command -v latexmk && command -v xindy && command -v pdftotext && command -v pdftohtml \
	&& kpsewhich xeCJK.sty ctexhook.sty mathrsfs.sty fncychap.sty tabulary.sty \
	&& test -n "$$(fc-list 'Noto Serif CJK SC')" && test -n "$$(fc-list FreeSerif)" && test -n "$$(fc-list 'DejaVu Sans Mono')"; } >/dev/null 2>&1 \
	|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	texlive-xetex texlive-latex-extra texlive-lang-chinese texlive-fonts-recommended latexmk xindy \
	fonts-noto-cjk fonts-freefont-otf fonts-dejavu-core poppler-utils >/dev/null; }

# the whole book as one PDF with Jupyter Book's LaTeX builder (about a minute): _build/latex/
# policy-gradients-verified.pdf, checked by tools/pdf_check.py (titles, references, raw markup, CJK
# font, and equation/figure/theorem numbers against the HTML book when it is built), then copied into
# the HTML book next to its pages, where the navbar's PDF icon links it (so run it after `make book`
# or `build-strict`: browser_check.py reports the link as broken until the PDF is there)
pdf: $(STAMP) ledger
	$(PDF_READY)
	rm -rf _build/latex
	start=$$(date +%s)
	LATEXMKOPTS=-silent $(VENV)/bin/jupyter-book build . --builder pdflatex --quiet || {
	  grep -h -A10 '^!' _build/latex/*.log 2>/dev/null | head -40 || true
	  echo "make pdf: the LaTeX build failed (log: _build/latex/policy-gradients-verified.log)" >&2; exit 1; }
	echo "make pdf: built in $$(( $$(date +%s) - start )) s"
	$(PY) tools/pdf_check.py _build/latex/policy-gradients-verified.pdf $(if $(wildcard $(INDEX)),--html _build/html)
	if [ -f $(INDEX) ]; then
	  for dir in $$(find _build/html -name '*.html' -not -path '*/_*' -printf '%h\n' | sort -u); do
	    cp _build/latex/policy-gradients-verified.pdf $$dir/
	  done
	  echo "make pdf: copied into the HTML book ($(CURDIR)/_build/html)"
	fi
	@echo "The PDF: $(CURDIR)/_build/latex/policy-gradients-verified.pdf"

# every chapter executed outside the checkout: a wheel of pgbook in a fresh virtual environment, each
# notebook alone in an empty folder, ch00's install cell installing the wheel (tools/outside_checkout.py;
# about 2-3 minutes, so CI runs it after make test)
.PHONY: outside
outside: $(STAMP)
	$(PY) tools/outside_checkout.py

# unit tests and nbval again with OPENBLAS_CORETYPE / ATEN_CPU_CAPABILITY switched (tools/portability.py)
portability: $(STAMP)
	$(PY) tools/portability.py

test: setup unit ledger markers nbval build-strict browser portability
	@echo "make test: all checks passed"

# the mutation suite: every plausible wrong formula in tools/mutants.py must fail its claim's tests
# (about 2 minutes; CI runs it after `make test`)
mutants: $(STAMP)
	$(PY) tools/mutants.py

lab: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-lab.txt
	$(VENV)/bin/jupyter lab book/

# Benchmarks (slow: under an hour on 2 cores). SB3 is a benchmark-only dependency.
bench: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) benchmarks/solve_cartpole.py
	$(PY) benchmarks/sps_vs_sb3.py --steps 50000 --repeats 5
	$(PY) benchmarks/exact_scaling.py

clean:
	rm -rf _build book/ledger.md
