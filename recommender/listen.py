"""Checks made before the server listens, so a start that cannot work says why in one line:
the address is taken (and by which process), or the TLS key does not belong to the certificate.
grpc itself only reports "Failed to bind to address" for both."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from pathlib import Path


class ListenError(OSError):
    """The server cannot listen as configured; the message says what to change."""


class AddressInUse(ListenError):
    pass


def split_address(address: str) -> tuple[str, int]:
    """("host", port) of HOST:PORT, [IPv6]:PORT or :PORT (all interfaces)."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError as exc:
        raise ListenError(f"{address!r} is not HOST:PORT") from exc
    return host.strip("[]") or "0.0.0.0", number


def check_free(address: str, option: str = "--address or LUBAN_ADDRESS") -> None:
    """AddressInUse naming the process that listens on `address`'s port, if one does. Other bind
    problems (an address this host does not have) are left to the server, which reports them."""
    host, port = split_address(address)
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(
                    f"{address} is already in use{holder(port)}; stop that server or choose another "
                    f"address with {option}"
                ) from exc
        except (socket.gaierror, OverflowError):
            return


def holder(port: int) -> str:
    """ " by pid N (command line)" for the local process listening on TCP `port`, or "" when it
    cannot be told (another user's process, or not Linux)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return ""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return f" by pid {pid} ({command.strip()[:200]})"
        except OSError:
            continue
    return " by another user's process"


def check_tls_pair(cert_file: Path, key_file: Path) -> None:
    """ListenError unless `key_file` is the private key of the certificate in `cert_file`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc):
            reason = "the key is not the certificate's private key"
        raise ListenError(
            f"TLS: {key_file} (LUBAN_TLS_KEY_FILE) and {cert_file} (LUBAN_TLS_CERT_FILE) do not form a pair: {reason}"
        ) from exc
    except OSError as exc:
        raise ListenError(f"TLS: cannot read {exc.filename or cert_file}: {exc.strerror or exc}") from exc
