"""The ``groundup`` command line: ``groundup <command> ...``.

Each command lives in its own module exposing ``add_parser(subparsers)`` (which sets
``func`` on the parser) and a function ``run(args) -> int``. User mistakes raised as
``ValueError``/``TypeError``/``FileNotFoundError``/``RuntimeError`` become one line on stderr
and exit 2, with no warning printed beside it.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
import warnings

from groundup import __version__

COMMAND_MODULES = (
    "groundup.cli.train_cmd",
    "groundup.cli.evaluate_cmd",
    "groundup.cli.predict_cmd",
    "groundup.cli.experiment_cmd",
    "groundup.cli.search_cmd",
    "groundup.cli.data_cmd",
    "groundup.cli.summary_cmd",
    "groundup.cli.report_cmd",
    "groundup.cli.serve_cmd",
)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)  # '--epoch' must not silently mean '--epochs'
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")

    def format_help(self) -> str:  # docstrings quote names as ``x``; help shows them plain
        return super().format_help().replace("``", "")

    def format_usage(self) -> str:
        return super().format_usage().replace("``", "")


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every --flag of ``parser`` and of the sub-commands below it."""
    found = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def _unrecognized(parser: argparse.ArgumentParser, command: str | None,
                  extras: list[str]) -> str:
    """argparse's message for arguments nobody took, with "did you mean" for a flag."""
    text = f"unrecognized arguments: {' '.join(extras)}"
    sub = next((a.choices.get(command) for a in parser._actions
                if isinstance(a, argparse._SubParsersAction)), None)
    flags = sorted(_option_strings(sub)) if sub is not None else []
    for extra in extras:
        if extra.startswith("--"):
            close = difflib.get_close_matches(extra.split("=")[0], flags, n=1)
            if close:
                return f"{text} (did you mean {close[0]}?)"
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="groundup", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"groundup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not written yet in this build
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.error(_unrecognized(parser, args.command, extras))
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    # a user mistake gets its one error line and nothing else: library warnings raised on
    # the way to it are dropped; after a success they are shown as usual
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = int(args.func(args) or 0)
        except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
            print(f"groundup {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"groundup {args.command}: interrupted.", file=sys.stderr)
            return 130
    shown = set()
    for w in caught:
        key = (str(w.message), w.category, w.filename, w.lineno)
        if key not in shown:  # once per place, as the default filter would
            shown.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return code
