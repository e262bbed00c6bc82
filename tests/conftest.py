import faulthandler
import pathlib

import pytest

from tests.harness import Cluster


@pytest.fixture
def cluster(tmp_path: pathlib.Path):
    """Daemons started in this test; all of them (and only them) are stopped afterwards."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the whole run (tests/pg.py), stopped at the end with a bound."""
    from tests.pg import PgServer
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_dsn(pg_server):
    """A database of its own for each test, dropped afterwards."""
    dsn = pg_server.create_database()
    try:
        yield dsn
    finally:
        if pg_server.proc is not None:
            pg_server.drop_database(dsn)


# pytest-timeout (180 s, pyproject) fails a slow test with a signal, but a test stuck where a
# signal cannot end it (asyncio.run's cleanup waiting on a task that ignores cancellation, a
# thread join) would still hang the run. This bound fires from a C thread: it dumps every stack
# and ends the run, which CI reports as a failure instead of running into its time limit.
HARD_TEST_BOUND = 300


@pytest.fixture(autouse=True)
def _hard_bound_per_test():
    faulthandler.dump_traceback_later(HARD_TEST_BOUND, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def browser(request):
    """Headless Chromium for a browser test module (tests/web_console.py); the screenshots the
    module names in SCREENSHOT_NAMES are removed first."""
    from tests.web_console import chromium
    with chromium(getattr(request.module, "SCREENSHOT_NAMES", ())) as launched:
        yield launched


@pytest.fixture
def page(browser):
    """A page of its own (no cookies); dialogs accepted and recorded in `page.dialogs`."""
    from tests.web_console import browser_page
    with browser_page(browser, accept_downloads=True) as fresh:
        yield fresh
