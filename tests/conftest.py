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
