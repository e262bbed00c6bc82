"""Only the C part of the build; everything else is in pyproject.toml.

common/_chain_native.c is the writer's hash-chain step (needs OpenSSL's headers: libssl-dev). It is
optional: where it cannot be built, the install still succeeds and common/chain.py falls back to
its pure-Python form (same bytes, slower); `make test` installs libssl-dev and checks it is built.
agent/_parse_native.c is the agent's hot path: split, parse, the batch's columns (agent/parse.py,
the file source and the batcher fall back to Python the same way; tests/unit/test_parse_native.py
holds both to the same output).
collector/store/_sqlite_native.c is the storage writer's batch insert with the GIL let go (needs
SQLite's headers: libsqlite3-dev; collector/store/sqlite_bulk.py falls back to executemany).
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]

setup(ext_modules=[
    Extension("common._chain_native", ["common/_chain_native.c"], libraries=["crypto"],
              extra_compile_args=FLAGS, optional=True),
    Extension("agent._parse_native", ["agent/_parse_native.c"], extra_compile_args=FLAGS, optional=True),
    Extension("collector.store._sqlite_native", ["collector/store/_sqlite_native.c"], libraries=["sqlite3"],
              extra_compile_args=FLAGS, optional=True),
])
