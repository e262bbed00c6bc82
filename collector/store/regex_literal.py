"""A text every match of a `--message-regex` must contain, found without understanding the whole
regex: what lets a block search for it as a plain substring of its message column (C speed)
before any row is built, instead of running RE2 on every message (10M messages took over the
query timeout).

Only what is certainly required is taken: runs of plain characters at the pattern's top level,
outside groups, classes and alternatives, without a quantifier on their last character. Anything
this scan does not fully understand (an alternation, `\\Q`, a flag group, case-insensitive
matching, whose folding RE2 and Python do not share) gives no literal, and every message goes to
RE2 as before. Too few literals cost speed; a wrong one would hide matches, so the rule is: when
in doubt, none.
"""

from __future__ import annotations

_SPECIAL = set("\\.^$*+?{}[]()|\x00")    # a NUL: no joined column holds one
_QUANTIFIERS = set("*+?{")
MIN_LITERAL = 3     # shorter ones find too much to pay for the search


def required_literal(pattern: str) -> str | None:
    """The longest text every match of `pattern` (RE2 syntax) contains, or None."""
    runs: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0

    def end_run() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    while i < len(pattern):
        char = pattern[i]
        if char == "|" and depth == 0:
            return None                     # an alternative: no text is required of all
        if char == "(":
            if pattern.startswith("(?", i) and not pattern.startswith(("(?:", "(?P<", "(?<"), i):
                return None                 # a flag group ((?i), (?s) ...): not worth the doubt
            depth += 1
            end_run()
            i += 1
            continue
        if char == ")":
            depth -= 1
            if depth < 0:
                return None
            i += 1
            continue
        if depth > 0:                       # inside a group: it may repeat zero times or alternate
            if char == "\\":
                i += 2
                continue
            if char == "[":
                i = _class_end(pattern, i)
                if i < 0:
                    return None
                continue
            i += 1
            continue
        if char == "[":
            end_run()
            i = _class_end(pattern, i)
            if i < 0:
                return None
            continue
        if char in _QUANTIFIERS:
            # The character before may occur zero times (or the brace is a repeat): it is not
            # required, and what follows is another run.
            if current:
                current.pop()
            end_run()
            if char == "{":
                close = pattern.find("}", i)
                i = close + 1 if close > 0 else len(pattern)
            else:
                i += 1
            continue
        if char == "\\":
            following = pattern[i + 1:i + 2]
            if following == "Q":
                return None
            if following and not following.isalnum() and following.isascii():
                current.append(following)   # an escaped punctuation character stands for itself
            else:
                end_run()                   # \d, \b, \x41, \pL ...: not one known character
            i += 2
            continue
        if char in _SPECIAL:                # . ^ $
            end_run()
            i += 1
            continue
        current.append(char)
        i += 1
    if depth != 0:
        return None
    end_run()
    best = max(runs, key=len, default="")
    return best if len(best) >= MIN_LITERAL else None


def _class_end(pattern: str, start: int) -> int:
    """The index after the `]` closing the class opened at `start`; -1 when it is not closed."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):          # a leading ] is a member
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern.startswith("[:", i):     # [:alpha:]
            close = pattern.find(":]", i + 2)
            if close < 0:
                return -1
            i = close + 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    return -1
