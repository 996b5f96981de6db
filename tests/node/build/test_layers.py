"""The differ and layer writer: an upper dir in overlay's form -> a reproducible layer tar.gz."""
from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile

import pytest

from node.build.layers import clean_runtime_leftovers, write_layer

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts (0/0 devices) and trusted xattrs need root")


def upper_dir(tmp_path):
    up = tmp_path / "upper"
    (up / "etc").mkdir(parents=True)
    (up / "b").write_text("bee")
    os.link(up / "b", up / "a-link")
    os.symlink("b", up / "sym")
    (up / "suid").write_text("x")
    os.chown(up / "suid", 1000, 1000)
    os.chmod(up / "suid", 0o4755)
    os.mknod(up / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (up / "opq").mkdir()
    os.setxattr(up / "opq", "trusted.overlay.opaque", b"y")
    os.setxattr(up / "b", "user.note", b"kept")
    return up


def entries(blob):
    with gzip.open(blob) as g, tarfile.open(fileobj=io.BytesIO(g.read())) as tar:
        return {m.name: m for m in tar.getmembers()}


@needs_root
def test_differ_entries(tmp_path):
    layer = write_layer(upper_dir(tmp_path), tmp_path / "l.tgz", epoch=None)
    got = entries(tmp_path / "l.tgz")
    names = list(got)  # the upper dir's sorted walk: parents first
    assert names.index("opq") < names.index("opq/.wh..wh..opq") and names.index("a-link") < names.index("b")
    assert got["a-link"].isreg() and got["b"].islnk() and got["b"].linkname == "a-link"
    assert got["sym"].issym() and got["sym"].linkname == "b"
    assert got[".wh.gone"].isreg() and got[".wh.gone"].size == 0
    assert got["opq"].isdir() and "opq/.wh..wh..opq" in got
    assert got["suid"].mode == 0o4755 and (got["suid"].uid, got["suid"].gid) == (1000, 1000)
    assert got["a-link"].pax_headers.get("SCHILY.xattr.user.note") == "kept"
    assert all(m.uname == "" and m.gname == "" for m in got.values())
    assert not any("trusted.overlay" in k for m in got.values() for k in m.pax_headers)
    assert layer.size == (tmp_path / "l.tgz").stat().st_size


@needs_root
def test_reproducible_with_epoch_and_no_gzip_time(tmp_path):
    up = upper_dir(tmp_path)
    one = write_layer(up, tmp_path / "1.tgz", epoch=1000)
    os.utime(up / "b", (5000, 5000))
    two = write_layer(up, tmp_path / "2.tgz", epoch=1000)
    assert one.digest == two.digest and one.diff_id == two.diff_id
    assert (tmp_path / "1.tgz").read_bytes()[4:8] == b"\0\0\0\0"  # gzip MTIME
    assert all(m.mtime <= 1000 for m in entries(tmp_path / "1.tgz").values())


def test_runtime_files_never_reach_a_layer(tmp_path):
    up = tmp_path / "upper"
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (up / "etc").mkdir(parents=True)
    for name in ("resolv.conf", "hosts", "hostname"):
        (up / "etc" / name).write_text("")
    (up / ".dockerenv").write_text("")
    (up / "proc").mkdir()
    (up / "etc" / "kept").write_text("mine")
    clean_runtime_leftovers(up, [lower])
    assert sorted(os.listdir(up)) == ["etc"] and os.listdir(up / "etc") == ["kept"]
