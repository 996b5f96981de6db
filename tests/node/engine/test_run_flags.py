"""Parsing of the run flags that shape /etc/hosts, resolv.conf and capabilities (no root needed)."""
from __future__ import annotations

import pytest

from node.engine import EngineError
from node.engine.etcfiles import rewrite_resolv_conf
from node.engine.options import effective_caps, parse_add_host, parse_caps, parse_dns, parse_dns_search

DEFAULT = ["CAP_CHOWN", "CAP_KILL", "CAP_MKNOD"]


def test_add_host_forms():
    assert parse_add_host("db:10.0.0.1") == "db:10.0.0.1"
    assert parse_add_host("db=10.0.0.1") == "db:10.0.0.1"
    assert parse_add_host("v6:fd00::1") == "v6:fd00::1"
    assert parse_add_host("v6:[fd00::1]") == "v6:fd00::1"
    for bad in ("db", "db:", ":10.0.0.1", "db:nope"):
        with pytest.raises(EngineError):
            parse_add_host(bad)


def test_dns_and_search_validation():
    assert parse_dns("192.0.2.1") == "192.0.2.1"
    with pytest.raises(EngineError, match="is not an ip address"):
        parse_dns("dns.example")
    assert parse_dns_search("corp.example") == "corp.example" and parse_dns_search(".") == "."
    with pytest.raises(EngineError):
        parse_dns_search("bad domain")


def test_resolv_conf_rewrite_keeps_options():
    text = "nameserver 1.1.1.1\nsearch old.example\noptions ndots:2\n"
    out = rewrite_resolv_conf(text, ["192.0.2.9"], [])
    assert out.splitlines() == ["nameserver 192.0.2.9", "search old.example", "options ndots:2"]
    assert rewrite_resolv_conf(text, [], ["."]).splitlines() == ["nameserver 1.1.1.1", "options ndots:2"]


def test_caps_names_and_rules():
    assert parse_caps(["net_admin", "CAP_SYS_TIME", "all", "NET_ADMIN"], "CapAdd") == \
        ["CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"]
    with pytest.raises(EngineError, match="unknown capability"):
        parse_caps(["FLY"], "CapAdd")
    assert effective_caps(DEFAULT, ["CAP_NET_ADMIN"], ["CAP_MKNOD"], False) == ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"]
    assert effective_caps(DEFAULT, ["CAP_KILL"], ["ALL"], False) == ["CAP_KILL"]
    everything = effective_caps(DEFAULT, [], [], True)
    assert "CAP_CHOWN" in everything and len(everything) > len(DEFAULT)
    assert effective_caps(DEFAULT, ["ALL"], ["CAP_CHOWN"], False) == [c for c in everything if c != "CAP_CHOWN"]
