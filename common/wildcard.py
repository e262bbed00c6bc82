"""Shell-style `*` wildcards and comma lists, as used by filters and config include/exclude."""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=1024)
def compile_wildcard(pattern: str) -> re.Pattern[str]:
    """`*` matches any run of characters; everything else is literal; the whole value must match."""
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)) + r"\Z",
                      re.DOTALL)


def wildcard_match(pattern: str, value: str | None) -> bool:
    return compile_wildcard(pattern).match(value or "") is not None


def split_list(value: str) -> list[str]:
    """`a,b, c` -> ["a", "b", "c"]; empty items dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]
