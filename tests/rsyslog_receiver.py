"""A real rsyslogd as a syslog receiver for tests: its own config, work directory and pid file
in a temp folder, listening on free loopback ports (TCP, UDP and optionally TLS via the gtls
netstream driver). Each input writes what rsyslog parsed — hostname, app-name, procid, msgid,
structured data, message — as one JSON object per line to its own file, which tests read.
Stops only the process it started."""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import socket
import subprocess
from typing import Any

from tests.certs import CertFiles
from tests.harness import free_port, wait_for

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"

_TEMPLATE = """
template(name="parsed" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="syslogtag" name="syslogtag" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
"""


class RsyslogReceiver:
    __test__ = False

    def __init__(self, folder: pathlib.Path, tls: CertFiles | None = None, client_auth: bool = True,
                 udp: bool = True, tcp_inputs: tuple[str, ...] = ("tcp",)):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "work").mkdir(exist_ok=True)
        self.tcp_ports = {name: free_port() for name in tcp_inputs}    # input name -> port
        self.tcp_port = self.tcp_ports[tcp_inputs[0]]
        self.udp_port = free_port() if udp else 0
        self.tls_port = free_port() if tls else 0
        self.tls = tls
        self.client_auth = client_auth
        self.conf = folder / "rsyslog.conf"
        self.pidfile = folder / "rsyslog.pid"
        self.log_path = folder / "rsyslogd.log"
        self.process: subprocess.Popen | None = None
        self._write_config()

    def output(self, input_name: str) -> pathlib.Path:
        return self.folder / f"{input_name}.jsonl"

    def _ruleset(self, name: str) -> str:
        return (f'ruleset(name="{name}") {{ action(type="omfile" file="{self.output(name)}" '
                f'template="parsed") }}\n')

    def _write_config(self) -> None:
        text = (f'global(workDirectory="{self.folder / "work"}" maxMessageSize="64k"\n'
                f'       parser.escapeControlCharactersOnReceive="off")\n')
        text += _TEMPLATE
        text += 'module(load="imtcp" maxSessions="50")\n'
        for name, port in self.tcp_ports.items():
            text += f'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="{name}")\n'
            text += self._ruleset(name)
        if self.udp_port:
            text += 'module(load="imudp")\n'
            text += f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}" ruleset="udp")\n'
            text += self._ruleset("udp")
        if self.tls:
            auth = "x509/certvalid" if self.client_auth else "anon"
            text += (f'input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" ruleset="tls"\n'
                     f'      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="{auth}"\n'
                     f'      streamDriver.CAFile="{self.tls.ca}" streamDriver.certFile="{self.tls.cert}"\n'
                     f'      streamDriver.keyFile="{self.tls.key}")\n')
            text += self._ruleset("tls")
        self.conf.write_text(text)

    def start(self) -> RsyslogReceiver:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                                            stdout=log, stderr=subprocess.STDOUT)
        ports = list(self.tcp_ports.values()) + ([self.tls_port] if self.tls_port else [])

        def listening() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"rsyslogd exited with {self.process.returncode}: {self.log()}")
            for port in ports:
                with socket.socket() as probe:
                    probe.settimeout(0.5)
                    if probe.connect_ex(("127.0.0.1", port)) != 0:
                        return False
            return True
        wait_for(listening, 15, "rsyslogd listening")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def received(self, input_name: str) -> list[dict[str, Any]]:
        path = self.output(input_name)
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
        # Whole lines only: rsyslog may be writing the last one as it is read.
        complete = text[:text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait_received(self, input_name: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        try:
            wait_for(lambda: len(self.received(input_name)) >= count, timeout,
                     f"{count} messages at rsyslog's {input_name} input")
        except AssertionError as exc:
            raise AssertionError(f"{exc} (have {len(self.received(input_name))})") from None
        return self.received(input_name)
