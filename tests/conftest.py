"""Pytest configuration: the ``claim`` marker that ties tests to the book's labelled claims.

``@pytest.mark.claim("eq-pg-theorem", how="finite difference")`` says that the test checks the
claim labelled ``eq-pg-theorem`` in the book, and how. ``tools/ledger.py`` collects these
markers (``pytest --collect-only --claims-json=FILE``) to build the *Verification ledger* page
and to fail when a labelled claim has no test or a test names a label the book lacks.

``@pytest.mark.kernel_independent`` marks a test whose outcome cannot depend on the
floating-point kernels (argument checking, the command line, the tools; also every test whose
claims are all checked ``how="sympy"``, exact symbolic algebra): the portability pass
(``tools/portability.py``, which sets ``PGBOOK_PORTABILITY_PASS``) skips it, since the main pass
already ran it. ``@pytest.mark.main_pass_only(reason=...)`` does the same for a costly test whose
kernel dependence a cheaper sibling already covers in the portability pass.

``--claim LABEL`` (repeatable) keeps only the tests that carry one of the labels; the mutation
suite (``tools/mutants.py``) runs a claim's tests against a wrongly edited copy of the package,
and ``--mutant-check`` makes sure that copy, not ``src/pgbook``, is the one imported.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not depend on luck); the examples
# still cover the ranges each strategy states. HYPOTHESIS_PROFILE=explore draws fresh ones.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: How a test checks its claim; the ledger shows this vocabulary.
HOW = {
    "exact",  # exact linear algebra against an independent exact computation
    "enumeration",  # exhaustive enumeration of all trajectories / outcomes
    "finite difference",  # central differences of an exactly computed objective
    "autograd",  # torch autograd
    "sympy",  # symbolic proof
    "Monte Carlo",  # sampled, with a stated n, seed and confidence interval
    "property",  # hypothesis property test
    "reproduction",  # re-running code and comparing with stored / printed results
}


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small tensors are slower with several threads (and results less reproducible)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_addoption(parser):
    parser.addoption("--claims-json", default=None, help="write the claim markers of collected tests to this file")
    parser.addoption("--claim", action="append", default=[], help="run only the tests that check this claim label")
    parser.addoption("--mutant-check", default=None, help="fail unless pgbook is imported from outside src/ (mutation runs)")


def pytest_configure(config):
    if config.getoption("--mutant-check"):
        import pgbook

        src = pathlib.Path(__file__).resolve().parents[1] / "src"
        if pathlib.Path(pgbook.__file__).resolve().is_relative_to(src):
            raise pytest.UsageError(f"--mutant-check: pgbook was imported from {pgbook.__file__}, not the mutated copy")


def _claims(item):
    out = []
    for mark in item.iter_markers(name="claim"):
        how = mark.kwargs.get("how")
        if how not in HOW:
            raise pytest.UsageError(f"{item.nodeid}: claim marker needs how= one of {sorted(HOW)}, got {how!r}")
        if not mark.args or not all(isinstance(a, str) for a in mark.args):
            raise pytest.UsageError(f"{item.nodeid}: claim marker needs one or more label strings")
        out.append({"labels": list(mark.args), "how": how})
    return out


def pytest_collection_modifyitems(session, config, items):
    path = config.getoption("--claims-json")
    records = []
    for item in items:
        for claim in _claims(item):
            doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines()
            records.append({"nodeid": item.nodeid, "doc": doc[0] if doc else "", **claim})
    if path:
        pathlib.Path(path).write_text(json.dumps(records, indent=1))
    if os.environ.get("PGBOOK_PORTABILITY_PASS"):  # set by tools/portability.py
        for item in items:
            claims = _claims(item)
            if item.get_closest_marker("kernel_independent") or (claims and all(c["how"] == "sympy" for c in claims)):
                item.add_marker(pytest.mark.skip(reason="no floating-point result to compare: checked once, in the main pass"))
            elif item.get_closest_marker("main_pass_only"):
                item.add_marker(pytest.mark.skip(reason=item.get_closest_marker("main_pass_only").kwargs.get("reason", "main pass only")))
    wanted = set(config.getoption("--claim"))
    if wanted:
        keep = [item for item in items if any(wanted & set(c["labels"]) for c in _claims(item))]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
