"""The ``neurram`` command line.

Each subcommand is two small functions: ``_register_<name>(subparsers)`` adds its parser (and
sets ``func`` to its handler) and ``_cmd_<name>(args) -> int`` runs it. To add a subcommand,
write those two functions and append the register function to :data:`COMMANDS`. Handlers import
what they need themselves, so the command line starts fast and one subcommand's dependencies
never break another.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

__all__ = ["main", "build_parser", "COMMANDS"]


# -- regmap ------------------------------------------------------------------------------------

def _register_regmap(subparsers) -> None:
    p = subparsers.add_parser(
        "regmap", help="print, write or check the files generated from hdl/regmap.py",
        description="Generate the register block, driver constants, C header and docs from "
                    "hdl/regmap.py.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--format", choices=("md", "c", "json", "py", "amaranth"),
                   help="print one generated output to stdout")
    g.add_argument("--write", action="store_true", help="write every generated file into the repository")
    g.add_argument("--check", action="store_true", help="exit 1 if a committed generated file is stale")
    p.set_defaults(func=_cmd_regmap)


def _cmd_regmap(args) -> int:
    from neurram.hdl import regmap_gen

    if args.format:
        sys.stdout.write(regmap_gen.FORMATS[args.format]())
        return 0
    root = regmap_gen.repo_root()
    if args.write:
        for path in regmap_gen.write_all(root):
            print(f"wrote {path}")
        return 0
    stale = regmap_gen.check_all(root)
    for path in stale:
        print(f"stale: {path}")
    if stale:
        print("run `neurram regmap --write`", file=sys.stderr)
        return 1
    return 0


# -- registry ----------------------------------------------------------------------------------

#: Subcommand register functions, each ``fn(subparsers)``; the parser is built from this list.
COMMANDS: list[Callable] = [
    _register_regmap,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurram", description="An open, simulated NeuRRAM compute-in-memory chip.")
    subparsers = parser.add_subparsers(dest="command", metavar="command")
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
