"""Byte transports for forwarders: a TCP (optionally TLS) stream and a UDP socket.

What "delivered" means on a plain TCP stream: syslog over TCP has no application
acknowledgement, and a successful send() only means the bytes reached our own kernel. So a
stream counts what it sent as delivered only when the peer's TCP has acknowledged every byte
(the send queue, TIOCOUTQ, is empty) while the connection is still ESTABLISHED. Bytes sent into a
connection that then closes or resets are not confirmed, and the forwarder resends them from its
cursor on the next connection: at-least-once. A duplicate is possible only when the receiver
read bytes whose TCP acknowledgement never came back (it died mid-batch); a loss only when the
receiving program itself dies after its kernel acknowledged (kill -9 with data in its socket
buffer) — plain TCP cannot tell, RELP could.
"""

from __future__ import annotations

import errno
import fcntl
import select
import socket
import ssl
import struct
import termios
import time
from dataclasses import dataclass

from fleetlog.common.config import FieldError
from fleetlog.common.errors import TransportError

_TCP_ESTABLISHED = 1


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """`host` and `port` of a forwarder that connects out, flattened into its config. The port's
    default is the forwarder's (its field default); the forwarder's validate calls check_port."""

    host: str = "127.0.0.1"
    port: int

    def check_port(self) -> None:
        if not 1 <= self.port <= 65535:
            raise FieldError("port", f"expected a port number 1-65535, got {self.port}")


class DeliveryError(TransportError):
    """A destination could not be reached or dropped the connection; the batch is retried."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return exc.strerror or errno.errorcode.get(exc.errno, str(exc.errno))
    return str(exc) or type(exc).__name__


class StreamConnection:
    """One TCP or TLS connection to host:port, opened on first use and again after a failure."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                 connect_timeout: float = 5.0, send_timeout: float = 30.0, stall_timeout: float = 60.0):
        self.host, self.port, self.tls = host, port, tls
        self.connect_timeout, self.send_timeout, self.stall_timeout = connect_timeout, send_timeout, stall_timeout
        self.sock: socket.socket | None = None

    @property
    def target(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"

    def _connect(self) -> socket.socket:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise DeliveryError(f"cannot connect to {self.target}: {_describe(exc)}") from None
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            raw.settimeout(self.send_timeout)
            return raw
        try:
            wrapped = self.tls.wrap_socket(raw, server_hostname=self.host)
        except (OSError, ssl.SSLError) as exc:
            raw.close()
            raise DeliveryError(f"TLS handshake with {self.target} failed: {_describe(exc)}") from None
        wrapped.settimeout(self.send_timeout)
        return wrapped

    def _peer_closed(self, sock: socket.socket) -> bool:
        """Has the receiver closed or reset? Syslog receivers never send data, so anything
        readable is either the end of the stream or TLS housekeeping (session tickets)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        sock.setblocking(False)
        try:
            return sock.recv(4096) == b""
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False
        except OSError:
            return True
        finally:
            sock.settimeout(self.send_timeout)

    def send(self, data: bytes) -> None:
        if self.sock is not None and self._peer_closed(self.sock):
            self.close()    # nothing unconfirmed is lost: the caller resends from its cursor
            raise DeliveryError(f"{self.target} closed the connection")
        if self.sock is None:
            self.sock = self._connect()
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise DeliveryError(f"sending to {self.target} failed: {_describe(exc)}") from None

    def _unacknowledged(self, sock: socket.socket) -> int:
        """Bytes the peer's TCP has not acknowledged; raises when the connection is gone."""
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        if state != _TCP_ESTABLISHED or self._peer_closed(sock):
            raise DeliveryError(f"{self.target} closed the connection before acknowledging")
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]

    def delivered(self, wait: bool) -> bool:
        """True when every byte sent so far is acknowledged. With `wait`, keep polling while
        the peer makes progress; a peer that acknowledges nothing for stall_timeout has failed."""
        if self.sock is None:
            return True
        try:
            pending = self._unacknowledged(self.sock)
            if pending == 0 or not wait:
                return pending == 0
            pause, last_progress = 0.0005, time.monotonic()
            while pending:
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
                now_pending = self._unacknowledged(self.sock)
                if now_pending < pending:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self.stall_timeout:
                    raise DeliveryError(f"{self.target} acknowledged nothing for {self.stall_timeout:.0f} s")
                pending = now_pending
            return True
        except DeliveryError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise DeliveryError(f"{self.target}: {_describe(exc)}") from None

    def abort(self) -> None:
        """From another thread: make a blocked send or wait fail at once (used on shutdown)."""
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more: nothing is blocked on it

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass  # already broken; closing is best effort
            self.sock = None


class DatagramConnection:
    """A connected UDP socket: one datagram per message. UDP confirms nothing; a connected
    socket at least reports a closed port (ICMP unreachable) as an error on a later send."""

    MAX_DATAGRAM = 65000

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.sock: socket.socket | None = None

    @property
    def target(self) -> str:
        return f"udp://{self.host}:{self.port}"

    def send_all(self, datagrams: list[bytes]) -> None:
        try:
            if self.sock is None:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                self.sock = socket.socket(family, socket.SOCK_DGRAM)
                self.sock.connect((self.host, self.port))
            for datagram in datagrams:
                self.sock.send(datagram)
        except OSError as exc:
            self.close()
            raise DeliveryError(f"sending to {self.target} failed: {_describe(exc)}") from None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def client_tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """Verify the receiver against `ca` (or the system store); present cert+key when given."""
    from fleetlog.common.errors import ConfigError
    try:
        context = ssl.create_default_context(cafile=ca or None)
        if cert or key:
            if not (cert and key):
                raise ConfigError("tls: a client certificate needs both cert and key")
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls: cannot load certificates: {_describe(exc)}") from None
    return context
