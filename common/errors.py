"""One exception hierarchy for fleetlog. Errors from the layers below (grpc, sqlite3, ssl, OS)
are translated into these where they enter, so callers and the CLI handle one family.

The CLI and the daemons map them to exit codes: UsageError/ConfigError -> 2, others -> 1.
"""


class FleetlogError(Exception):
    """Base of every error fleetlog raises on purpose."""

    exit_code = 1


class UsageError(FleetlogError):
    """A wrong command-line flag or argument; the message says which and why."""

    exit_code = 2


class ConfigError(FleetlogError):
    """A configuration file is missing, unreadable or invalid; the message names file and key."""

    exit_code = 2


class AuthError(FleetlogError):
    """Authentication failed or the caller's role does not allow the operation."""


class TransportError(FleetlogError):
    """A peer could not be reached, hung up, or answered with an error."""


class StorageError(FleetlogError):
    """The event store could not be opened, read or written."""


class QueryTimeout(StorageError):
    """A search ran past the store's query deadline ([storage] query_timeout) and was stopped;
    the message tells the user to narrow it."""

    def __init__(self, seconds: float):
        super().__init__(f"the query ran longer than {seconds:g} s and was stopped; "
                         f"narrow it with --since/--until, --host or --namespace")


class VerificationError(FleetlogError):
    """Tamper evidence does not match: an event or checkpoint was changed, removed or forged."""


class MissingExtraError(FleetlogError):
    """An optional part is not installed; the message names the `pip install 'fleetlog[...]'` to run."""


# The import names that only an extra brings (pyproject.toml), and that extra.
EXTRA_OF_MODULE = {"cryptography": "cli", "psycopg": "postgresql", "xlsxwriter": "export", "fpdf": "export",
                   "aiohttp": "console", "jinja2": "console", "grpc_health": "collector",
                   "re2": "collector", "opentelemetry": "receivers"}


def the_extra(extra: str, missing: str) -> str:
    """The end of every "needs the extra" line: which extra, what is missing, the command to run."""
    return f"the '{extra}' extra ({missing} not installed): pip install 'fleetlog[{extra}]'"


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra that brings the module `exc` could not find, or None for any other."""
    top = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return f"needs {the_extra(extra, top)}"
