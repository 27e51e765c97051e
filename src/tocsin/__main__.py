"""The command line: ``python -m tocsin [command]``.

Each command is a small function below that takes the parsed arguments and returns an exit
status; ``main`` wires them into argparse. Commands import what they need lazily so that
``python -m tocsin --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tocsin import __version__

_SUMMARY = """\
tocsin {version}: Django's signals for any Python program.

  Signal, @receiver          connect, disconnect, send, send_robust, asend, asend_robust
  tocsin.catalogue           every Django builtin signal, with its declared arguments
  tocsin.emit                send the model signals around your own saves and deletes
  tocsin.on_commit           send only once the work is committed
  tocsin.contrib             WSGI and ASGI middleware, sqlite3 and SQLAlchemy as senders
  tocsin.autodiscover        import the modules that connect receivers, once, at start-up
  tocsin.testing             mute, capture and assert sends in tests (and a pytest plugin)
  tocsin.bridge              carry sends to other processes through Redis or PostgreSQL

Commands:
{commands}

Run 'python -m tocsin COMMAND --help' for the options of a command.
"""

Command = Callable[[argparse.Namespace], int]


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = argparse.ArgumentParser(
        prog="python -m tocsin",
        description="tocsin: Django's signals for any Python program.",
    )
    parser.add_argument("--version", action="version", version=f"tocsin {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps: dict[str, str] = {}
    for register in _COMMANDS:
        name, help_text = register(commands)
        helps[name] = help_text
    return parser, helps


def _summary(helps: dict[str, str]) -> str:
    width = max((len(name) for name in helps), default=0)
    lines = [f"  {name.ljust(width)}  {text}" for name, text in helps.items()]
    return _SUMMARY.format(version=__version__, commands="\n".join(lines) or "  (none yet)")


# Each entry adds one subcommand to the parser and returns its name and one-line help.
_COMMANDS: list[
    Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], tuple[str, str]]
] = []


def _catalogue(args: argparse.Namespace) -> int:
    import json
    import shutil

    from tocsin import _catalogue_views as views

    if args.update_page is not None:
        return _update_catalogue_page(args.update_page)
    try:
        descriptions = views.describe(args.group)
    except ValueError as error:
        print(f"python -m tocsin catalogue: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(descriptions, indent=2))
    else:
        width = shutil.get_terminal_size().columns
        print(views.format_table(descriptions, width), end="")
    return 0


def _update_catalogue_page(page_path: str) -> int:
    from pathlib import Path

    from tocsin import _catalogue_views as views

    path = Path(page_path)
    try:
        page = path.read_text(encoding="utf-8")
        updated = views.update_page(page)
    except (OSError, ValueError) as error:
        print(f"python -m tocsin catalogue: {path}: {error}", file=sys.stderr)
        return 2
    if updated != page:
        path.write_text(updated, encoding="utf-8")
    print(f"{path}: {'regenerated' if updated != page else 'already up to date'}")
    return 0


def _register_catalogue(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> tuple[str, str]:
    help_text = "list Django's builtin signals: group, arguments, when each is sent"
    parser = commands.add_parser("catalogue", help=help_text, description=help_text + ".")
    parser.add_argument(
        "--group",
        metavar="G",
        help="only the signals of group G: auth, model, management, request, test, db, "
        "tasks or autoreload",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list, one object per signal"
    )
    parser.add_argument(
        "--update-page",
        metavar="PAGE",
        help="regenerate the reference part of a Markdown page (docs/catalogue.md) in place",
    )
    parser.set_defaults(handler=_catalogue)
    return "catalogue", help_text


_COMMANDS.append(_register_catalogue)


def _bench(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    import tocsin

    # The suite is not part of the package: it lives in benchmarks/ of a source checkout,
    # beside src/, and runs as ``python -m benchmarks`` from the checkout's root. This only
    # launches it there, in a process of its own, passing every argument on.
    checkout = Path(tocsin.__file__).resolve().parent.parent.parent
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        print(
            "python -m tocsin bench: the benchmark suite is not installed with the package; "
            "it lives in benchmarks/ of the source repository.\n"
            "Run it from the root of a checkout:  pip install -e '.[bench]'  then  "
            "python -m benchmarks --quick",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, "-m", "benchmarks", *args.arguments]
    return subprocess.run(command, cwd=checkout, check=False).returncode


def _register_bench(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> tuple[str, str]:
    help_text = "run the benchmark of a source checkout: python -m benchmarks"
    parser = commands.add_parser(
        "bench",
        help=help_text,
        description=help_text + ", from the checkout's root, with every argument passed on "
        "(python -m tocsin bench --help shows its options).",
        # Every argument, --help included, belongs to python -m benchmarks.
        prefix_chars="+",
        add_help=False,
    )
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=_bench)
    return "bench", help_text


_COMMANDS.append(_register_bench)


def _receivers(args: argparse.Namespace) -> int:
    import json
    import os

    from tocsin import _wiring

    # Like ``python -m``, so that the console script finds the application's own packages.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    modules, errors = _wiring.import_targets(args.targets, args.entry_points)
    for error in errors:
        print(f"python -m tocsin receivers: {error}", file=sys.stderr)
    described = _wiring.describe(_wiring.find_signals(modules), include_idle=args.all)
    if args.json:
        print(json.dumps(described, indent=2))
    elif args.mermaid:
        print(_wiring.format_mermaid(described), end="")
    else:
        print(_wiring.format_text(described), end="")
    return 1 if errors else 0


def _register_receivers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> tuple[str, str]:
    help_text = "import an application's modules and show which receivers listen to which signal"
    parser = commands.add_parser(
        "receivers",
        help=help_text,
        description=help_text + ". Lists the catalogue's signals and the signals defined at "
        "module level or as class attributes in what the targets import, each with its live "
        "connections: receiver, file and line, sender, weak or strong, dispatch_uid, sync or "
        "async. Exits with status 1 if a target fails to import.",
    )
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="a dotted module or package name; a package's signals modules are imported too, "
        "in every subpackage",
    )
    parser.add_argument(
        "--entry-points",
        action="store_true",
        help="also load what installed distributions declare under the tocsin.receivers "
        "entry-point group",
    )
    parser.add_argument(
        "--all", action="store_true", help="also list the signals nobody listens to"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print one JSON list, one object per signal"
    )
    output.add_argument(
        "--mermaid",
        action="store_true",
        help="print a Mermaid flowchart: signal -> receiver, receivers grouped by module",
    )
    parser.set_defaults(handler=_receivers)
    return "receivers", help_text


_COMMANDS.append(_register_receivers)


def _demo(args: argparse.Namespace) -> int:
    from tocsin.demo.run import main as run_demo

    return run_demo(port=args.port)


def _register_demo(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> tuple[str, str]:
    help_text = "run a small sqlite-backed WSGI shop and print each signal it fires"
    parser = commands.add_parser(
        "demo",
        help=help_text,
        description=help_text + ". Without --port it drives a few requests against itself "
        "(create, update, delete, a failing request) and exits.",
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="N",
        help="keep serving on 127.0.0.1:N for a browser until Ctrl-C (0: any free port)",
    )
    parser.set_defaults(handler=_demo)
    return "demo", help_text


_COMMANDS.append(_register_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m tocsin`` (and the ``tocsin`` console script) with ``argv`` (the command
    line's when None); return the exit status."""
    parser, helps = _build_parser()
    args = parser.parse_args(argv)
    handler: Command | None = getattr(args, "handler", None)
    try:
        if handler is None:
            print(_summary(helps), end="")
            return 0
        return handler(args)
    except BrokenPipeError:
        # The reader went away (``... | head -1``): stop quietly, as Unix tools do. Point
        # stdout at nothing, so that flushing it at exit does not raise again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1


if __name__ == "__main__":
    sys.exit(main())
