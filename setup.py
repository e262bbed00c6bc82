"""Only the C part of the build; everything else is in pyproject.toml.

common/_chain_native.c is the writer's hash-chain step (needs OpenSSL's headers: libssl-dev). It is
optional: where it cannot be built, the install still succeeds and common/chain.py falls back to
its pure-Python form (same bytes, slower); `make test` installs libssl-dev and checks it is built.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("common._chain_native", ["common/_chain_native.c"], libraries=["crypto"],
              extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"], optional=True),
])
