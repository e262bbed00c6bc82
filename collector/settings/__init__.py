"""Settings managed live (contract §9): forwarders, namespaces (minimum level, retention per tier,
and the defaults for new namespaces) and access tokens, kept in the store and applied by every
collector of a cluster within seconds, without a restart.

One layer for the three front ends (the console's API in collector/web/settings_api.py, the
gRPC `Admin/Settings` call behind the CLI's `forwarder`, `namespace` and `token` verbs):
- entries.py   the bodies (collector.toml's key names), read by the same code as collector.toml;
- effective.py collector.toml + the store's entries = the running configuration (precedence);
- access.py    who may see and change what (roles);
- layer.py     list, get, create, update, delete, test, with the audit events;
- watcher.py   polls the store's version and applies a change (CollectorApp's reload paths).
The precedence rule and the bodies are documented in docs/settings.md.
"""
