"""Secrets masked in what leaves the machine for support (common/masking.py): every form the
issue found missing, and the look-alikes that must stay readable."""

from __future__ import annotations

import pytest

from fleetlog.common.masking import mask_event, mask_text


@pytest.mark.parametrize(("text", "masked"), [
    ("dsn = postgresql://fleetlog:s3cr3t@db.example:5432/logs",
     "dsn = postgresql://fleetlog:***@db.example:5432/logs"),
    ('dsn = "postgres://u:p%40ss@db/logs?sslmode=require"', 'dsn = "postgres://u:***@db/logs?sslmode=require"'),
    ("fetching https://bob:hunter2@mirror.example/x failed", "fetching https://bob:***@mirror.example/x failed"),
    ("psql --password hunter2 -h db", "psql --password *** -h db"),
    ("tool --db-password 'x' --api-key K123 run", "tool --db-password '***' --api-key *** run"),
    ("openssl passphrase=correct-horse", "openssl passphrase=***"),
    ('{"private_key": "MIIEv..."}', '{"private_key": "***"}'),
    ("ssh_passphrase: hunter2", "ssh_passphrase: ***"),
])
def test_secrets_are_masked(text, masked):
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", [
    "GET https://example.com:8443/path ok",          # a port is not a password
    "mailto:ops@example.com and user@host:22",
    "fleetlog --password-file /etc/fleetlog/pg.pass",  # a file name, not a secret
    "--token-file /etc/fleetlog/agent.token",
    "the password was changed",
])
def test_look_alikes_stay(text):
    assert mask_text(text) == text


def test_fields_named_like_secrets_are_masked_whole():
    event, changed = mask_event({"message": "login", "fields": {"passphrase": "x", "private_key": "y", "user": "bob"}})
    assert changed and event["fields"] == {"passphrase": "***", "private_key": "***", "user": "bob"}
