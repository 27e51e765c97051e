"""Finding the CPythons of this machine and running the benchmark in each.

The page shows every CPython the machine has, from 3.11 on, one minor version each. They are
looked for where people keep them: pyenv's versions (``pyenv root``, or ``$PYENV_ROOT``),
then ``python3.X`` and ``python3`` on ``PATH``, beside the interpreter running this. Each is
asked, in a process of its own, what it is and whether it can run the suite as it stands
(tocsin imported from this checkout, the bench extra installed): such an interpreter is
used as it is (a virtual environment a user made, say); any other gets a throwaway virtual
environment with ``pip install -e '.[bench]'``, removed afterwards. The measurement itself
runs in a child process, ``python -m benchmarks --json FILE``, one interpreter after the
other so that no two runs share the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench import CHECKOUT, REQUIREMENTS, Result

MINIMUM = (3, 11)
_PROBE_SECONDS = 60
_INSTALL_SECONDS = 900

# Run by each candidate: what it is, and whether it could run the suite as it is.
_PROBE = """\
import importlib.util, json, os, platform, sys, sysconfig
checkout, requirements = sys.argv[1], sys.argv[2].split(",")
spec = importlib.util.find_spec("tocsin")
origin = os.path.realpath(spec.origin) if spec is not None and spec.origin else ""
source = os.path.realpath(os.path.join(checkout, "src", "tocsin"))
missing = [name for name in requirements if importlib.util.find_spec(name) is None]
if not origin.startswith(source + os.sep):
    missing.insert(0, "tocsin from this checkout")
gil = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
print(json.dumps({
    "implementation": platform.python_implementation(),
    "version": list(sys.version_info[:3]),
    "key": f"{platform.python_implementation()} {sys.version_info[0]}.{sys.version_info[1]}{gil}",
    "missing": missing,
}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A Python that can run the benchmark, and whether it needs a throwaway environment."""

    path: str
    key: str  # "CPython 3.12", as results are keyed
    version: tuple[int, int, int]
    implementation: str
    missing: tuple[str, ...]  # what it lacks to run the suite as it is

    @property
    def ready(self) -> bool:
        return not self.missing


def probe(path: str) -> Interpreter | None:
    """Ask the interpreter at ``path`` what it is; None if it does not answer sensibly."""
    try:
        answer = subprocess.run(
            [path, "-I", "-c", _PROBE, str(CHECKOUT), ",".join(REQUIREMENTS)],
            capture_output=True,
            text=True,
            timeout=_PROBE_SECONDS,
            check=True,
            cwd=tempfile.gettempdir(),  # -I aside, nothing of the checkout must be importable
        ).stdout
        data = json.loads(answer)
        major, minor, micro = (int(part) for part in data["version"])
        return Interpreter(
            path=path,
            key=str(data["key"]),
            version=(major, minor, micro),
            implementation=str(data["implementation"]),
            missing=tuple(str(name) for name in data["missing"]),
        )
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def _pyenv_root() -> Path | None:
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        try:
            root = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
        if root:
            return Path(root)
    variable = os.environ.get("PYENV_ROOT")
    return Path(variable) if variable else None


def candidates() -> list[str]:
    """Paths that may be Pythons, the running one first, each once."""
    found = [sys.executable]
    root = _pyenv_root()
    if root is not None and (root / "versions").is_dir():
        for version in sorted((root / "versions").iterdir()):
            for name in ("python3", "python"):
                if (version / "bin" / name).is_file():
                    found.append(str(version / "bin" / name))
                    break
    for minor in range(MINIMUM[1], 30):
        on_path = shutil.which(f"python3.{minor}")
        if on_path is not None:
            found.append(on_path)
    found += [path for path in [shutil.which("python3")] if path is not None]
    return list(dict.fromkeys(found))


def choose(interpreters: Iterable[Interpreter]) -> list[Interpreter]:
    """One CPython >= 3.11 per minor version, oldest version first: the first one that is
    ready to run the suite, or else the newest release of that version."""
    by_key: dict[str, list[Interpreter]] = {}
    for interpreter in interpreters:
        if interpreter.implementation == "CPython" and interpreter.version[:2] >= MINIMUM:
            by_key.setdefault(interpreter.key, []).append(interpreter)
    chosen = []
    for group in by_key.values():
        ready = [interpreter for interpreter in group if interpreter.ready]
        chosen.append(ready[0] if ready else max(group, key=lambda i: i.version))
    return sorted(chosen, key=lambda interpreter: (interpreter.version, interpreter.key))


def find_pythons() -> list[Interpreter]:
    """Every CPython >= 3.11 this machine has, one per minor version."""
    return choose(
        interpreter for interpreter in map(probe, candidates()) if interpreter is not None
    )


def given_pythons(paths: Iterable[str]) -> list[Interpreter]:
    """The interpreters a user named, in their order; a path that is no Python is an error."""
    interpreters = []
    for path in paths:
        interpreter = probe(path)
        if interpreter is None:
            raise ValueError(f"{path!r} is not a Python this suite can run (it did not answer)")
        if interpreter.version[:2] < MINIMUM:
            raise ValueError(f"{path!r} is Python {interpreter.version}; tocsin needs 3.11+")
        interpreters.append(interpreter)
    return interpreters


def _environment(interpreter: Interpreter, directory: Path, say: Callable[[str], None]) -> str:
    """A Python that can run the suite: ``interpreter`` itself when ready, else a new virtual
    environment made from it in ``directory``, with this checkout and its bench extra."""
    if interpreter.ready:
        say(f"{interpreter.key}: using {interpreter.path} as it is")
        return interpreter.path
    say(
        f"{interpreter.key}: {interpreter.path} lacks {', '.join(interpreter.missing)}; "
        f"making a throwaway virtual environment"
    )
    subprocess.run(
        [interpreter.path, "-m", "venv", str(directory)], check=True, timeout=_INSTALL_SECONDS
    )
    scripts = "Scripts" if os.name == "nt" else "bin"
    python = str(directory / scripts / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "-e", f"{CHECKOUT}[bench]"],
        check=True,
        timeout=_INSTALL_SECONDS,
    )
    return python


def measure_in(
    interpreters: Iterable[Interpreter], *, quick: bool, say: Callable[[str], None]
) -> list[Result]:
    """Run the suite in each interpreter, one after the other, and return their results."""
    results = []
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-") as scratch:
        for number, interpreter in enumerate(interpreters):
            python = _environment(interpreter, Path(scratch) / f"venv{number}", say)
            output = Path(scratch) / f"result{number}.json"
            command = [python, "-m", "benchmarks", "--json", str(output)]
            say(f"{interpreter.key}: measuring ({' '.join(command[1:])})")
            subprocess.run([*command, *(["--quick"] if quick else [])], check=True, cwd=CHECKOUT)
            results.append(Result.from_json(json.loads(output.read_text(encoding="utf-8"))))
    return results
