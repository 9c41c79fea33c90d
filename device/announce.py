"""The Wyoming service announced on the local network, so Home Assistant finds it by itself.

Home Assistant's Wyoming integration listens for mDNS (zeroconf) services of type
``_wyoming._tcp``: one that answers ``describe`` with a wake program shows up under *Settings ->
Devices & services -> Discovered*, and a click adds it (no host or port to type). The integration
keys the service by the announced name, so the name must stay the same across restarts: by
default ``wakeword-<hostname>`` (``[wyoming] zeroconf_name``).

What is announced: the listening port, and the address the service listens on -- for
``tcp://0.0.0.0:PORT`` every IPv4 address of the machine but loopback (one that listens on
``127.0.0.1`` is announced on loopback only, which is what the tests use). A unix socket is never
announced. The addresses are looked at again every :data:`REFRESH_S`: a Pi whose network comes up
after the service (or whose DHCP lease changes) is announced anew. Announcing is a convenience:
when it fails (port 5353 refused, no address yet), the service says so in one line and serves
anyway; Home Assistant can still add it by host and port. On stop the announcement is withdrawn
(mDNS goodbye packets).

The mDNS work is python-zeroconf's (LGPL-2.1+), a well-kept pure-Python responder; the machine's
addresses come from ifaddr (MIT), which it uses too.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("wakeword.wyoming")

SERVICE_TYPE = "_wyoming._tcp.local."
REFRESH_S = 30.0
"""How often the machine's addresses are compared with what was announced (s)."""
MAX_NAME_BYTES = 63
"""An mDNS instance name is one DNS label."""


def _hostname() -> str:
    """This machine's name, the part before any dot ("pi" if it has none)."""
    return socket.gethostname().split(".")[0] or "pi"


def default_name() -> str:
    """``wakeword-<hostname>``."""
    return check_name(f"wakeword-{_hostname()}"[:MAX_NAME_BYTES])


def check_name(name: str) -> str:
    """``name`` if it can be announced, else ValueError (one line)."""
    if not name or len(name.encode()) > MAX_NAME_BYTES or "." in name or not name.isprintable():
        raise ValueError(f"zeroconf_name {name!r} must be 1-{MAX_NAME_BYTES} bytes of printable text without dots")
    return name


@dataclass(frozen=True)
class Where:
    """What to announce: the addresses and port, and which interfaces to answer on."""

    addresses: tuple[str, ...]
    port: int
    interfaces: tuple[str, ...] | None
    """None: every interface."""


def where(uri: str) -> Where | None:
    """Where a service listening on ``uri`` can be reached; None for a unix socket."""
    parsed = urlparse(uri)
    if parsed.scheme != "tcp" or parsed.port is None:
        return None
    host = parsed.hostname or "0.0.0.0"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # a host name: what it resolves to here
        try:
            ip = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            return Where((), parsed.port, None)
    if ip.version != 4:
        return Where((), parsed.port, None)
    if ip.is_unspecified:
        return Where(machine_addresses(), parsed.port, None)
    return Where((str(ip),), parsed.port, (str(ip),))


def machine_addresses() -> tuple[str, ...]:
    """This machine's IPv4 addresses but loopback, in interface order; () when they cannot be read."""
    import ifaddr

    try:
        adapters = ifaddr.get_adapters()
    except OSError as exc:  # e.g. netlink sockets refused by a sandbox
        log.debug("cannot list network addresses: %s", exc)
        return ()
    found = [str(a.ip) for adapter in adapters for a in adapter.ips if a.is_IPv4 and isinstance(a.ip, str)]
    return tuple(dict.fromkeys(a for a in found if not ipaddress.ip_address(a).is_loopback))


class Announcer:
    """Keeps a service announced while the machine's addresses come and go: :meth:`refresh` at
    start and every :data:`REFRESH_S`, :meth:`stop` at the end. Never raises."""

    def __init__(self, uri: str, name: str, keywords: list[str], version: str):
        self.uri = uri
        self.wanted = name
        self.properties = {"wake": ",".join(keywords), "version": version}
        self.name: str | None = None
        """The name announced now (mDNS may have added a suffix), None while not announced."""
        self.next_refresh = 0.0
        self._zc: Any = None  # zeroconf.asyncio.AsyncZeroconf, imported when first announcing
        self._info: Any = None  # its AsyncServiceInfo
        self._tried: tuple[str, ...] | None = None  # the addresses of the last attempt

    async def refresh(self, now: float = 0.0) -> None:
        """Announce on the machine's current addresses, if they changed since the last attempt."""
        self.next_refresh = now + REFRESH_S
        place = where(self.uri)
        if place is None or place.addresses == self._tried:
            return
        self._tried = place.addresses
        await self._withdraw()
        if not place.addresses:
            log.warning(
                "not announced to Home Assistant yet: no IPv4 address for %s (looked at again every %.0f s)",
                self.uri,
                REFRESH_S,
            )
            return
        try:
            from zeroconf import IPVersion
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            if place.interfaces:
                zc = AsyncZeroconf(interfaces=list(place.interfaces), ip_version=IPVersion.V4Only)
            else:
                zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
            info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{self.wanted}.{SERVICE_TYPE}",
                addresses=[socket.inet_aton(a) for a in place.addresses],
                port=place.port,
                properties=self.properties,
                server=f"{_hostname()}.local.",
            )
            self._zc = zc
            await zc.async_register_service(info, allow_name_change=True)
        except Exception as exc:  # noqa: BLE001 -- whatever mDNS refuses, the service itself goes on
            log.warning(
                "not announced to Home Assistant (mDNS: %s); add it by host and port", exc or type(exc).__name__
            )
            await self._withdraw()
            return
        self._info = info
        self.name = info.name.removesuffix(f".{SERVICE_TYPE}")
        log.info(
            "announced as %r (%s) on %s port %d: Home Assistant lists it under Settings -> Devices & services",
            self.name,
            SERVICE_TYPE.rstrip("."),
            ", ".join(place.addresses),
            place.port,
        )

    async def stop(self) -> None:
        """Withdraw the announcement (goodbye packets)."""
        await self._withdraw()

    async def _withdraw(self) -> None:
        zc, info = self._zc, self._info
        self._zc = self._info = None
        self.name = None
        try:
            if zc is not None and info is not None:
                await zc.async_unregister_service(info)
            if zc is not None:
                await zc.async_close()
        except Exception as exc:  # noqa: BLE001 -- withdrawing must finish
            log.debug("mDNS goodbye failed: %s", exc)
