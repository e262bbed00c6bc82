"""The settings layer's refusals; each front end maps them onto its statuses (HTTP, gRPC)."""

from __future__ import annotations

from fleetlog.collector.identity import Caller
from fleetlog.common.errors import FleetlogError


class SettingsNotFound(FleetlogError):
    """No such entry (or not one the caller may see): HTTP 404, gRPC NOT_FOUND."""

    exit_code = 2


class SettingsClash(FleetlogError):
    """The entry exists already, or is defined in collector.toml: HTTP 409, gRPC ALREADY_EXISTS."""

    exit_code = 2


class SettingsRefused(Exception):
    """The caller's role may not do this: HTTP 403, gRPC PERMISSION_DENIED, and an audit event."""

    def __init__(self, message: str, caller: Caller):
        super().__init__(message)
        self.caller = caller
