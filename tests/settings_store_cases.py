"""What every settings store (collector/store/settings_rows.py) must do, run against SQLite
(tests/unit/test_settings_layer.py) and PostgreSQL (tests/postgres/test_pg_settings.py) with two
connections to the same store: a version per change, conflicts refused, token uses kept newest."""

from __future__ import annotations

import pytest

from fleetlog.collector.store.settings_rows import SettingsConflict, SettingsRow, SettingsStore


def check_settings_store(one: SettingsStore, two: SettingsStore) -> None:
    assert one.rows() == (0, [])
    assert one.change("forwarders", "x", '{"type": "console"}', "root", "api", 10, exists=False) == 1
    with pytest.raises(SettingsConflict, match="exists already"):
        two.change("forwarders", "x", "{}", "root", "api", 11, exists=False)
    assert two.change("forwarders", "x", '{"type": "file"}', "ann", "web", 12, exists=True) == 2
    assert two.change("namespaces", "web", '{"levels": "error"}', "ann", "cli", 12, exists=False) == 3
    assert one.rows() == (3, [SettingsRow("forwarders", "x", '{"type": "file"}', 10, 12, "ann", "web"),
                              SettingsRow("namespaces", "web", '{"levels": "error"}', 12, 12, "ann", "cli")])
    assert one.change("forwarders", "x", None, "ann", "cli", 13, exists=True) == 4
    with pytest.raises(SettingsConflict, match="does not exist"):
        two.change("forwarders", "x", None, "ann", "cli", 14, exists=True)
    assert two.version() == 4
    one.touch_tokens({"ops": 5})
    two.touch_tokens({"ops": 3, "web-1": 7})
    assert one.token_uses() == {"ops": 5, "web-1": 7}
