"""The `console` forwarder: JSON lines on the collector's standard output (for containers whose
runtime collects stdout, and for trying filters out)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fleetlog.collector.forward.filters import ForwarderFilters
from fleetlog.collector.forward.transport import DeliveryError
from fleetlog.common.config import Flatten
from fleetlog.common.event import to_json


@dataclass(frozen=True)
class ConsoleForwarderConfig:
    type: Literal["console"]
    name: str
    filters: Annotated[ForwarderFilters, Flatten()] = ForwarderFilters()


class ConsoleSink:
    target = "stdout"

    def __init__(self, config: ConsoleForwarderConfig):
        self.config = config

    def send(self, events: list[dict[str, Any]]) -> None:
        try:
            sys.stdout.write("".join(to_json(e) + "\n" for e in events))
            sys.stdout.flush()
        except OSError as exc:
            raise DeliveryError(f"writing to stdout failed: {exc.strerror}") from None

    def delivered(self, wait: bool) -> bool:
        return True

    def abort(self) -> None:
        pass  # writes to local files never block for long

    def close(self) -> None:
        pass
