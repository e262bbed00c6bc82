"""The package layout and the C part of the build; metadata and dependencies are in pyproject.toml.

Layout: the import name is `fleetlog`, one distribution with one top-level name, so nothing else in
site-packages can shadow it. The source folders stay at the top of the repository (agent/,
collector/, common/, cli/), one folder a room, and `package_dir` maps each to `fleetlog.<room>`.
`fleetlog` itself is a namespace package: it has no code of its own, so it needs no folder (an
editable install maps it with setuptools' finder; a wheel lays the rooms out under fleetlog/).

C extensions, each optional: where one cannot be built, the install still succeeds and the Python
form runs (same output, slower); `make test` installs the headers and checks they are built.
- common/_chain_native.c, the writer's hash-chain step (OpenSSL's headers: libssl-dev);
- agent/_parse_native.c, the agent's hot path: split, parse, the batch's columns (agent/parse.py, the
  file source and the batcher fall back to Python; tests/unit/test_parse_native.py holds both to the
  same output);
- agent/sources/_syslog_native.c, the syslog receiver's framing and parsing of a whole read buffer
  (agent/sources/syslog_native.py falls back to Python; tests/unit/test_syslog_native.py holds both
  to the same records);
- collector/store/_blocks_native.c, the compressed column block's bloom filter, decoded rows and
  derived ids (no library; collector/store/blocks.py falls back to Python, tests/unit/test_blocks.py
  holds both to the same bytes).
"""

from setuptools import Extension, find_packages, setup

ROOMS = ("agent", "collector", "common", "cli")
FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]


def packages_of(room: str) -> list[str]:
    return [f"fleetlog.{room}", *(f"fleetlog.{room}.{sub}" for sub in find_packages(room))]


setup(
    packages=[name for room in ROOMS for name in packages_of(room)],
    package_dir={f"fleetlog.{room}": room for room in ROOMS},
    ext_modules=[
        Extension("fleetlog.common._chain_native", ["common/_chain_native.c"], libraries=["crypto"],
                  extra_compile_args=FLAGS, optional=True),
        Extension("fleetlog.agent._parse_native", ["agent/_parse_native.c"], depends=["agent/_civil_days.h"],
                  extra_compile_args=FLAGS, optional=True),
        Extension("fleetlog.agent.sources._syslog_native", ["agent/sources/_syslog_native.c"],
                  depends=["agent/_civil_days.h"], extra_compile_args=FLAGS, optional=True),
        Extension("fleetlog.collector.store._blocks_native", ["collector/store/_blocks_native.c"],
                  extra_compile_args=FLAGS, optional=True),
    ],
)
