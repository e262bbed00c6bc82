"""`fleetlog [GLOBAL OPTIONS] SUBCOMMAND ...` — the global options are accepted before or after
the subcommand. Each family of subcommands lives in its own module with a `register(subparsers,
parents)` that adds its parsers and sets `handler` on them.

Exit codes: 0 ok, 1 runtime failure, 2 usage error — one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from fleetlog.common import __version__
from fleetlog.common.errors import FleetlogError, missing_extra_message

# Modules that register subcommands, in the order `fleetlog --help` lists them.
COMMAND_MODULES = ("fleetlog.cli.search", "fleetlog.cli.export", "fleetlog.cli.admin", "fleetlog.cli.settings",
                   "fleetlog.cli.alerts", "fleetlog.cli.verify", "fleetlog.cli.support")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}\n")
        sys.exit(2)


def global_options() -> argparse.ArgumentParser:
    """Global options; SUPPRESS defaults so a value given after the subcommand is not overwritten
    by the default of the top-level parser (and vice versa)."""
    parent = ArgumentParser(add_help=False)
    group = parent.add_argument_group("collector connection")
    group.add_argument("--collector", metavar="HOST:PORT", default=argparse.SUPPRESS,
                       help="collector address (default 127.0.0.1:7433, env FLEETLOG_COLLECTOR)")
    group.add_argument("--token-file", metavar="PATH", default=argparse.SUPPRESS,
                       help="file holding the bearer token (env FLEETLOG_TOKEN_FILE)")
    group.add_argument("--ca", metavar="PEM", default=argparse.SUPPRESS, help="CA certificate for TLS")
    group.add_argument("--cert", metavar="PEM", default=argparse.SUPPRESS, help="client certificate (mTLS)")
    group.add_argument("--key", metavar="PEM", default=argparse.SUPPRESS, help="client key (mTLS)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parents = [global_options()]
    parser = ArgumentParser(prog="fleetlog", parents=parents,
                            description="Search, export and verify what a fleetlog collector stored.")
    parser.add_argument("--version", action="version", version=f"fleetlog {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, parents)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("collector", "token_file", "ca", "cert", "key"):
        if not hasattr(args, name):
            setattr(args, name, None)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args) or 0
    except FleetlogError as exc:
        sys.stderr.write(f"fleetlog {args.command}: {exc}\n")
        return exc.exit_code
    except ModuleNotFoundError as exc:
        # The base install is an agent node's: a subcommand that needs an extra says which.
        message = missing_extra_message(exc)
        if message is None:
            raise
        sys.stderr.write(f"fleetlog {args.command}: {message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader (e.g. `head`) went away; not an error worth reporting
        return 0


if __name__ == "__main__":
    sys.exit(main())
