"""Every chapter runs outside a clone: from a wheel of pgbook, in a fresh environment, alone in a folder.

Usage: python tools/outside_checkout.py [--keep] [book/chXX.ipynb ...]      (``make outside``)

What a reader in Colab, on Binder or with a downloaded notebook has, rebuilt without the network
(the package registry only):

1. a wheel of ``pgbook`` is built from this checkout (``pip wheel``);
2. a fresh virtual environment outside the checkout gets ``pgbook[notebooks]`` from that wheel and
   nothing else: its declared dependencies, at the versions of ``requirements.txt`` (as pip
   constraints: they pin versions, not builds — torch is this machine's CPU wheel because pip finds
   it first here; on stock PyPI it would be the CUDA build). A dependency the chapters use but the
   package does not declare makes a chapter fail here;
3. ``pgbook`` is uninstalled again, and ch00 runs with its install cell pointed at the wheel
   instead of the repository tag: the cell must install it and the chapter must then run in the
   same kernel (the path a Colab reader takes);
4. every chapter is copied alone into an empty folder and executed there with nbclient in the
   fresh environment (pgbook now installed, so the install cell must print nothing). Nothing of
   the checkout is on the path: data the chapters read must ship inside the package.

What it does not exercise: the install cell's ``git+https`` download (no network here), the
installation of the dependencies inside a live kernel (they are in place when ch00's cell runs),
library versions other than the pinned ones (Colab's), and Binder's image build (repo2docker).

Exit status 0 when every chapter ran; the failing cell's error otherwise. About 3 minutes on
2 cores (most of it executing the chapters, two at a time).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import repository  # noqa: E402  (tools/repository.py: the install cell)

ROOT = Path(__file__).resolve().parents[1]

RUNNER = r'''
import sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path, mark = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
# the kernel must be this fresh environment's Python, not another registered "python3"
nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix"))
try:
    NotebookClient(nb, timeout=900, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
except CellExecutionError as exc:
    print(str(exc)[-3000:])
    sys.exit(1)
install = next(c for c in nb.cells[1:] if c.cell_type == "code")
if not install.source.startswith(mark):
    sys.exit("the first code cell is not the install cell")
if sys.argv[3] == "quiet" and install.outputs:
    sys.exit(f"the install cell printed something although pgbook was installed: {install.outputs}")
'''


def run(cmd: list[str], **kw) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def clean_env() -> dict[str, str]:
    """The environment without anything that points into the checkout or its .venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["MPLBACKEND"] = "Agg"
    # no user-level kernelspecs: "python3" must be the fresh environment's own kernel (ipykernel's
    # native spec, i.e. its sys.executable), not one registered under ~/.local/share/jupyter
    env["JUPYTER_DATA_DIR"] = tempfile.mkdtemp(prefix="pgbook-outside-jupyter-")
    env.pop("JUPYTER_PATH", None)
    return env


def execute(python: Path, notebook: Path, folder: Path, quiet: bool, env: dict[str, str]) -> tuple[str, float, str]:
    folder.mkdir(parents=True)
    target = folder / notebook.name
    shutil.copy(notebook, target)
    start = time.perf_counter()
    proc = subprocess.run([str(python), "-c", RUNNER, str(target), repository.INSTALL_MARK, "quiet" if quiet else "install"],
                          cwd=folder, env=env, capture_output=True, text=True)
    return notebook.name, time.perf_counter() - start, "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-4000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every book/*.ipynb")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="chapters executed at once")
    args = parser.parse_args(argv)
    notebooks = [p.resolve() for p in args.notebooks] or repository.notebooks(ROOT)
    for path in notebooks:
        if path.suffix != ".ipynb" or not path.is_file():
            parser.error(f"notebooks: {path} is not a notebook file")
    tmp = Path(tempfile.mkdtemp(prefix="pgbook-outside-"))
    env = clean_env()
    total = time.perf_counter()
    try:
        # 1. the wheel
        # (from a copy of what the wheel is made of, so that no build/ folder is left in the checkout)
        source = tmp / "source"
        shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy(ROOT / name, source / name)
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source)])
        wheel = next((tmp / "dist").glob("pgbook-*.whl"))
        # 2. a fresh environment with the wheel's declared dependencies only (versions from requirements.txt)
        venv = tmp / "venv"
        run([sys.executable, "-m", "venv", str(venv)], env=env)
        python = venv / "bin" / "python"
        constraints = ROOT / "requirements.txt"  # as constraints: versions for what is installed, nothing more
        start = time.perf_counter()
        run([str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), f"pgbook[notebooks] @ {wheel.as_uri()}"],
            cwd=tmp, env=env)
        print(f"outside: fresh environment with {wheel.name}[notebooks] in {time.perf_counter() - start:.0f} s")
        # 3. the install cell itself: pgbook absent, the cell installs it from the wheel, ch00 runs on
        run([str(python), "-m", "pip", "uninstall", "--quiet", "-y", "pgbook"], cwd=tmp, env=env)
        first = notebooks[0]
        edited = tmp / "install-cell" / first.name
        edited.parent.mkdir()
        requirement = repository.install_requirement(repository.repository_url(ROOT), repository.branch(ROOT))
        text = first.read_text(encoding="utf-8")
        if text.count(requirement) != 1:
            sys.exit(f"{first.name}: the install cell does not name {requirement}")
        edited.write_text(text.replace(requirement, f"pgbook[notebooks] @ {wheel.as_uri()}"), encoding="utf-8")
        name, seconds, error = execute(python, edited, tmp / "run-install" , quiet=False, env=env)
        if error:
            print(f"outside: {name} with pgbook absent: its install cell or the chapter failed:\n{error}")
            return 1
        print(f"outside: {name}: with pgbook absent, its install cell installed it and the chapter ran ({seconds:.0f} s)")
        # 4. every chapter alone in an empty folder
        failed = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            jobs = [pool.submit(execute, python, nb, tmp / "run" / nb.stem, True, env) for nb in notebooks]
            for job in concurrent.futures.as_completed(jobs):
                name, seconds, error = job.result()
                print(f"outside: {name}: {'ran' if not error else 'FAILED'} ({seconds:.0f} s)", flush=True)
                if error:
                    failed.append((name, error))
        for name, error in failed:
            print(f"\n--- {name} ---\n{error}")
        print(f"outside: {len(notebooks) - len(failed)} of {len(notebooks)} chapters ran outside the checkout "
              f"({time.perf_counter() - total:.0f} s)")
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"outside: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
