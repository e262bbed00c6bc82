"""Masking secrets in events that leave the collector for support (`fleetlog bundle`).

What counts as a secret: the value after `password=`, `passwd=`, `pwd=`, `passphrase=`, `secret=`,
`token=`, `api_key=`/`apikey=`/`api-key=`, `private_key=` (also with `:` and quotes, as in JSON,
and as a command-line option: `--password X`), the password of a URL (`scheme://user:PASS@host`,
as in a PostgreSQL dsn), the credential after `Authorization: Bearer` / `Basic`, and PEM private
key blocks. In `fields`, a key whose name
contains one of those words has its whole value masked. The key names stay, so a reader still
sees that a secret was there.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_SECRET_WORDS = (r"(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
                 r"|client[_-]?secret)")
_KEY_VALUE = re.compile(
    r"(?i)(\b[\w.-]*" + _SECRET_WORDS + r"[\w.-]*[\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s\"',;&]+)")
_AUTHORIZATION = re.compile(r"(?i)(\b(?:authorization|proxy-authorization)\s*[=:]\s*[\"']?\s*(?:bearer|basic|token)\s+)"
                            r"([^\s\"',;]+)")
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})")
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL)
_SECRET_KEY = re.compile(r"(?i)" + _SECRET_WORDS)
# `postgresql://user:PASS@host`: the password of a URL's user info.
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@\"']*:)([^\s/@\"']+)(@)")
# `--password X` (with `=`, _KEY_VALUE has it); `--password-file PATH` names a file, not a secret.
_OPTION = re.compile(r"(?i)((?<![\w-])--?[\w-]*" + _SECRET_WORDS + r"(?![\w-]*[_-]file\b)[\w-]*\s+)"
                     r"(\"[^\"]*\"|'[^']*'|[^\s\"'-][^\s\"']*)")


def _quoted_mask(match: re.Match[str]) -> str:
    value = match.group(2)
    if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
        return match.group(1) + value[0] + MASK + value[0]
    return match.group(1) + MASK


def mask_text(text: str) -> str:
    if not text:
        return text
    text = _PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY----- {MASK} -----END {m.group(1)}PRIVATE KEY-----",
                            text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    text = _OPTION.sub(_quoted_mask, text)
    return _KEY_VALUE.sub(_quoted_mask, text)


def _mask_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(key, v) for v in value]
    return value


def mask_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of a fields object with secrets masked (keys naming a secret, secrets in text)."""
    return {k: _mask_value(str(k), v) for k, v in fields.items()}


def mask_event(event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A copy of the event with secrets masked in message and fields; True when anything was."""
    out = dict(event)
    out["message"] = mask_text(event.get("message") or "")
    fields = event.get("fields")
    if isinstance(fields, dict) and fields:
        out["fields"] = {k: _mask_value(str(k), v) for k, v in fields.items()}
    changed = out["message"] != (event.get("message") or "") or out.get("fields") != fields
    return out, changed
