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
