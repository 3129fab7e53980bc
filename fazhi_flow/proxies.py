"""Trusting a reverse proxy's X-Forwarded-* headers only when the request really comes from it."""
from __future__ import annotations

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix


def parse_networks(raw, setting: str) -> list:
    """'127.0.0.1,10.0.0.0/24' → networks; a bad item stops the start with the setting's name."""
    networks = []
    for item in str(raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise RuntimeError(f"{setting} 中的“{item[:40]}”不是 IP 地址或网段（例如 127.0.0.1,::1,10.0.0.0/24）。\n"
                               f"{setting}: {item[:40]!r} is not an address or network.") from None
    return networks


def peer_in(environ, networks) -> bool:
    try:
        address = ipaddress.ip_address((environ.get("REMOTE_ADDR") or "").split("%", 1)[0])
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class TrustedProxyFix(ProxyFix):
    """ProxyFix applied only to requests whose peer is a configured proxy address; from anyone else
    the X-Forwarded-* headers are dropped, so REMOTE_ADDR stays the real caller."""

    FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                 "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX")

    def __init__(self, app, proxy_ips, hops: int):
        super().__init__(app, x_for=hops, x_proto=hops)
        self.networks = parse_networks(proxy_ips, "FAZHI_TRUSTED_PROXY_IPS")

    def __call__(self, environ, start_response):
        if peer_in(environ, self.networks):
            return super().__call__(environ, start_response)
        for key in self.FORWARDED:
            environ.pop(key, None)
        return self.app(environ, start_response)
