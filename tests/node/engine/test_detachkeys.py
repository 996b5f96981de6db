"""Detach keys as docker parses them, and the scanner that finds them in a stdin stream."""
from __future__ import annotations

import json

import pytest

from node.engine import EngineError
from node.engine.attach import FrameReader, encode
from node.engine.detachkeys import DetachScanner, configured, parse, resolve


@pytest.mark.parametrize("spec, keys", [
    ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a,x", b"\x01x"), ("ctrl-@", b"\x00"),
    ("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([27, 28, 29, 30, 31])), ("a,b,c", b"abc"),
    ("CTRL-Z", b"\x1a"),
])
def test_parse(spec, keys):
    assert parse(spec) == keys


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-1", "ab", "ctrl-pp", ""])
def test_parse_refuses(spec):
    with pytest.raises(EngineError, match="Invalid detach keys"):
        parse(spec)


def test_the_default_and_config_json(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKYARD_CONFIG", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert configured() == "ctrl-p,ctrl-q" and resolve(None) == b"\x10\x11"
    (tmp_path / "config.json").write_text(json.dumps({"detachKeys": "ctrl-e,e"}))
    assert resolve(None) == b"\x05e"
    assert resolve("ctrl-x") == b"\x18"  # the flag wins


def test_scanner_holds_a_prefix_and_releases_it():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)
    assert s.feed(b"c") == (b"\x10c", False)  # not the sequence: the held key goes on
    assert s.feed(b"\x10\x10") == (b"\x10", False)
    assert s.feed(b"\x11rest") == (b"", True)  # the rest after a detach is dropped
    assert DetachScanner(b"\x01x").feed(b"hi\x01x") == (b"hi", True)


def test_frames_split_across_reads():
    data = encode(1, b"hello") + encode(3, b"7") + encode(0)
    reader = FrameReader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i:i + 1])
    assert got == [(1, b"hello"), (3, b"7"), (0, b"")]


def test_hub_survives_a_handover(tmp_path):
    """What an exec'd monitor gets: the listener, the pre-connected client, the stdin pipe."""
    import os
    import socket

    from node.engine.attach import STDIN, STDOUT, AttachHub, connect
    ours, theirs = socket.socketpair()
    stdin_r, stdin_w = os.pipe()
    hub = AttachHub(tmp_path, False, stdin_w, True, first_clients=[theirs.detach()])
    hub.listen()
    word = hub.handover()
    again = AttachHub.resume(tmp_path, word)
    assert sorted(again.clients) == sorted(hub.clients) and again.stdin_fd == stdin_w
    ours.sendall(encode(STDIN, b"typed"))
    fd = next(iter(again.clients))
    assert again.readable(fd)
    assert os.read(stdin_r, 100) == b"typed"
    later = connect(tmp_path, {"stdout": True})
    assert again.readable(again.listener.fileno())  # accepts
    for fd in list(again.clients):
        again.readable(fd)  # the hello
    again.output("stdout", b"out")
    assert FrameReader().feed(ours.recv(100)) == [(STDOUT, b"out")]
    assert FrameReader().feed(later.recv(100)) == [(STDOUT, b"out")]
    again.close(0)
    later.close()
    ours.close()
    os.close(stdin_r)
