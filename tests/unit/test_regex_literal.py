"""regex_literal.required_literal: the text it gives is in every message the regex matches (RE2
decides, on messages made to match), and none is given where one could be wrong."""

from __future__ import annotations

import random

import pytest
import re2

from fleetlog.collector.store.regex_literal import required_literal


@pytest.mark.parametrize(("pattern", "literal"), [
    (r"code=5\d\d\b", "code=5"),
    (r"code=50[0-3]\b", "code=50"),
    (r"GET /api/v1/orders/\d+ code", "GET /api/v1/orders/"),
    (r"upstream reset", "upstream reset"),
    (r"failed\.? login", "failed"),             # the dot may be absent; both runs are required
    (r"colou?r matched", "r matched"),
    (r"a{2}bcd", "bcd"),
    (r"^Accepted password for \w+ from", "Accepted password for "),
    (r"user=(alice|bob) denied", " denied"),
    (r"[Ee]rror: disk full", "rror: disk full"),
    (r"x\.y\.z", "x.y.z"),
    (r"ab", None),                              # too short to pay
    (r"timeout|refused", None),                 # an alternative at the top
    (r"(?i)timeout", None),                     # case folding: RE2's is not Python's
    (r"\Qa.b\E", None),
    (r"(unclosed", None),
    (r"[unclosed", None),
    (r"", None),
    (r"\d+\s+\w*", None),
    ("nul\x00byte here", "byte here"),
])
def test_the_literal_of_each_form(pattern, literal):
    assert required_literal(pattern) == literal


_PIECES = ["code", "=", "5", r"\d", r"\d+", "[0-9]", "(a|b)", "x?", "y*", "z+", r"\.", ".", "-", " ", "ab{2}",
           "(?:cd)?", r"\b", "^", "$", "[^x]", "é", "Ünï", r"\w", "(foo)", "[]a]", "|", r"\-"]


def _sample(rng: random.Random, pattern: str) -> list[str]:
    """Messages around strings the regex matches (and some it need not)."""
    alphabet = "abcdxyz=5-. éÜnï0123456789foo"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(200)]
    return texts + [t[:i] + m + t[i:] for t in texts[:50] for i in (0, len(t) // 2)
                    for m in ("code=5", "code=500", "ab", "abb", "cd", "foo", "a.b", "x-y")]


def test_every_message_the_regex_matches_holds_the_literal():
    rng = random.Random(30)
    checked = 0
    for _ in range(3000):
        pattern = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 6)))
        try:
            compiled = re2.compile(pattern)
        except re2.error:
            continue        # not a pattern RE2 takes: the CLI refuses it before any search
        literal = required_literal(pattern)
        if literal is None:
            continue
        for message in _sample(rng, pattern):
            if compiled.search(message) is not None:
                assert literal in message, (pattern, literal, message)
                checked += 1
    assert checked > 1000
