"""Layer extraction: what a layer may do (keep metadata, whiteouts) and what it may not (escape).

Every hostile layer is unpacked through the store (ContentStore.unpack), next to a canary
directory; each must fail with a clear error, write nothing outside its snapshot, and leave
no snapshot (nor temp dir) visible.
"""
from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from node.images.content import ContentStore
from node.images.errors import DigestMismatch, UnpackError
from node.images.unpack import OPAQUE_XATTR, unpack_layer
from oci.digest import Digest
from tests.helpers import need_root


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = kw.pop("mtime", 1_600_000_000)
    info.mode = kw.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def make_tar(entries, compression: str = "gzip", pax: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    raw = buf.getvalue()
    if compression == "gzip":
        return gzip.compress(raw, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def diff_id_of(blob: bytes) -> Digest:
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    elif blob[:4] == b"\x28\xb5\x2f\xfd":
        blob = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return Digest.of(blob)


@pytest.fixture
def env(tmp_path):
    """A store with a canary dir beside it: nothing may ever appear in the canary."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "victim").write_text("original")
    store = ContentStore(tmp_path / "images")
    return store, canary


def unpack_via_store(store: ContentStore, blob: bytes, diff_id: Digest | None = None, **kw) -> Path:
    digest = store.write_blob(blob)
    diff = diff_id or diff_id_of(blob)
    chain = Digest.of(diff.hex.encode() + os.urandom(4))  # a fresh snapshot key per call
    return store.unpack(digest, diff, chain, **kw)


def assert_untouched(store: ContentStore, canary: Path) -> None:
    assert sorted(p.name for p in canary.iterdir()) == ["victim"]
    assert (canary / "victim").read_text() == "original"
    visible = [p.name for p in store.snapshots.iterdir()] if store.snapshots.exists() else []
    assert visible == [], f"half-visible snapshot left: {visible}"


# -- the malicious corpus ----------------------------------------------------------------

def corpus(canary: Path) -> dict[str, tuple[bytes, str]]:
    c = str(canary)
    return {
        "dotdot": (make_tar([entry("../../canary/evil", data=b"x")]), "'..'"),
        "dotdot-inner": (make_tar([entry("a/../../canary/evil", data=b"x")]), "'..'"),
        "absolute-dotdot": (make_tar([entry(f"/..{c}/evil", data=b"x")]), "'..'"),
        "symlink-then-write": (make_tar([entry("link", tarfile.SYMTYPE, linkname=c),
                                         entry("link/evil", data=b"x")]), "symlink"),
        "symlink-then-overwrite": (make_tar([entry("link", tarfile.SYMTYPE, linkname=f"{c}/victim"),
                                             entry("dir", tarfile.DIRTYPE),
                                             entry("dir/x", tarfile.SYMTYPE, linkname="../link"),
                                             entry("dir/x/y", data=b"x")]), "symlink"),
        "symlink-relative-escape": (make_tar([entry("up", tarfile.SYMTYPE, linkname="../../../../../../.."),
                                              entry(f"up{c}/evil", data=b"x")]), "symlink"),
        "hardlink-outside": (make_tar([entry("h", tarfile.LNKTYPE, linkname=f"../canary/victim")]), "'..'"),
        "hardlink-absolute": (make_tar([entry("h", tarfile.LNKTYPE, linkname=f"{c}/victim")]), "not in this layer"),
        "hardlink-via-symlink": (make_tar([entry("s", tarfile.SYMTYPE, linkname=c),
                                           entry("h", tarfile.LNKTYPE, linkname="s/victim")]), "symlink"),
        "whiteout-outside": (make_tar([entry("../.wh.victim")]), "'..'"),
        "whiteout-through-symlink": (make_tar([entry("s", tarfile.SYMTYPE, linkname=c),
                                               entry("s/.wh.victim")]), "symlink"),
        "opaque-through-symlink": (make_tar([entry("s", tarfile.SYMTYPE, linkname=c),
                                             entry("s/.wh..wh..opq")]), "symlink"),
        "whiteout-empty-name": (make_tar([entry("d/.wh.")]), "names no entry"),
        "not-a-tar": (gzip.compress(b"this is not a tar archive at all" * 40), "not a valid tar"),
    }


@pytest.mark.parametrize("case", sorted(corpus(Path("/x")).keys()))
def test_malicious_layer_is_refused(env, case):
    need_root()
    store, canary = env
    blob, message = corpus(canary)[case]
    with pytest.raises(UnpackError) as e:
        unpack_via_store(store, blob)
    assert message in str(e.value)
    assert_untouched(store, canary)


def test_decompression_bomb_is_bounded(env):
    store, canary = env
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    blob = gzip.compress(raw.getvalue(), compresslevel=9)
    assert len(blob) < 200_000  # a small blob ...
    with pytest.raises(UnpackError, match="larger than"):
        unpack_via_store(store, blob, max_size=8 << 20)  # ... that would expand to 64 MiB
    assert_untouched(store, canary)


def test_sparse_bomb_is_bounded(env):
    """A GNU sparse entry: a few KiB of tar that would expand to 1 GiB of zeros on disk."""
    store, canary = env
    sparse = tarfile.TarInfo("holes")
    sparse.type = tarfile.GNUTYPE_SPARSE
    sparse.size = 512
    sparse.mtime = 0
    sparse.mode = 0o644
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(sparse, io.BytesIO(b"x" * 512))
    raw = bytearray(buf.getvalue())
    # GNU sparse header: one map entry (offset 1 GiB - 512, 512 bytes), realsize 1 GiB, at the
    # offsets the GNU format defines (sparse map at 386, realsize at 483); fix the checksum.
    def octal(n: int, width: int) -> bytes:
        return f"{n:0{width - 1}o}".encode() + b"\0"
    raw[386:398], raw[398:410] = octal((1 << 30) - 512, 12), octal(512, 12)
    raw[483:495] = octal(1 << 30, 12)
    raw[148:156] = b"        "
    raw[148:156] = f"{sum(raw[:512]):06o}".encode() + b"\0 "
    blob = gzip.compress(bytes(raw))
    with pytest.raises(UnpackError, match="more than"):
        unpack_via_store(store, blob, max_size=64 << 20)
    assert_untouched(store, canary)


def test_wrong_diff_id_is_refused(env):
    store, canary = env
    blob = make_tar([entry("f", data=b"x")])
    with pytest.raises(DigestMismatch, match="diff_id"):
        unpack_via_store(store, blob, diff_id=Digest.of(b"something else"))
    assert_untouched(store, canary)


# -- what a layer keeps ------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_metadata_is_kept(tmp_path, compression):
    need_root()
    entries = [
        entry("etc", tarfile.DIRTYPE, mode=0o750, mtime=1_500_000_000, uid=12, gid=34),
        entry("etc/secret", data=b"s3cret", mode=0o4755, uid=1000, gid=1001, mtime=1_400_000_000,
              pax_headers={"SCHILY.xattr.user.note": "hello", "SCHILY.xattr.trusted.overlay.redirect": "/x"}),
        entry("etc/hard", tarfile.LNKTYPE, linkname="etc/secret"),
        entry("etc/sym", tarfile.SYMTYPE, linkname="/etc/secret", uid=5, gid=6, mtime=1_300_000_000),
        entry("dev", tarfile.DIRTYPE),
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        entry("fifo", tarfile.FIFOTYPE, mode=0o600),
        entry("/abs/file", data=b"absolute names are placed inside the root"),
    ]
    blob = make_tar(entries, compression)
    dest = tmp_path / "fs"
    dest.mkdir()
    with io.BytesIO(blob) as src:
        result = unpack_layer(src, dest, diff_id_of(blob))
    assert result.diff_id == diff_id_of(blob)
    st = os.stat(dest / "etc/secret")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert st.st_mtime == 1_400_000_000
    assert os.getxattr(dest / "etc/secret", "user.note") == b"hello"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "etc/secret")
    assert os.stat(dest / "etc/hard").st_ino == st.st_ino
    lst = os.lstat(dest / "etc/sym")
    assert os.readlink(dest / "etc/sym") == "/etc/secret" and (lst.st_uid, lst.st_gid) == (5, 6)
    assert lst.st_mtime == 1_300_000_000
    d = os.stat(dest / "etc")
    assert stat.S_IMODE(d.st_mode) == 0o750 and (d.st_uid, d.st_gid) == (12, 34) and d.st_mtime == 1_500_000_000
    null = os.stat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_ISFIFO(os.stat(dest / "fifo").st_mode)
    assert (dest / "abs/file").read_bytes().startswith(b"absolute")


def test_whiteouts_become_overlay_form(tmp_path):
    need_root()
    blob = make_tar([entry("data", tarfile.DIRTYPE), entry("data/.wh.gone"),
                     entry("opaque", tarfile.DIRTYPE), entry("opaque/.wh..wh..opq"), entry("opaque/new", data=b"n")])
    dest = tmp_path / "fs"
    dest.mkdir()
    unpack_layer(io.BytesIO(blob), dest)
    st = os.lstat(dest / "data/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(dest / "opaque", OPAQUE_XATTR) == b"y"
    assert not any(p.name.startswith(".wh.") for p in dest.rglob("*"))


def test_later_entry_replaces_earlier(tmp_path):
    need_root()
    blob = make_tar([entry("x", tarfile.DIRTYPE), entry("x/inner", data=b"1"), entry("x", data=b"now a file"),
                     entry("y", data=b"old"), entry("y", tarfile.SYMTYPE, linkname="x")])
    dest = tmp_path / "fs"
    dest.mkdir()
    unpack_layer(io.BytesIO(blob), dest)
    assert (dest / "x").read_bytes() == b"now a file"
    assert os.readlink(dest / "y") == "x"


def test_concurrent_unpacks_converge(tmp_path):
    """Two processes unpacking the same layer: one snapshot, complete, no temp dirs left."""
    need_root()
    store = ContentStore(tmp_path / "images")
    blob = make_tar([entry(f"d/f{i}", data=os.urandom(20_000)) for i in range(200)])
    digest = store.write_blob(blob)
    diff = diff_id_of(blob)
    code = ("import sys; from pathlib import Path; from node.images.content import ContentStore;"
            "from oci.digest import Digest; s = ContentStore(Path(sys.argv[1]));"
            "d = Digest.parse(sys.argv[2]); s.unpack(Digest.parse(sys.argv[3]), d, d)")
    procs = [subprocess.Popen([os.sys.executable, "-c", code, str(store.dir), str(diff), str(digest)])
             for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert [p.name for p in store.snapshots.iterdir()] == [diff.hex]
    assert len(list((store.snapshot_dir(diff) / "fs" / "d").iterdir())) == 200


# -- whiteouts through a real overlay mount ----------------------------------------------

def test_overlay_mount_applies_whiteouts(tmp_path):
    need_root()
    lower = make_tar([entry("data", tarfile.DIRTYPE), entry("data/keep", data=b"k"), entry("data/gone", data=b"g"),
                      entry("opq", tarfile.DIRTYPE), entry("opq/old", data=b"o")])
    upper = make_tar([entry("data/.wh.gone"), entry("opq", tarfile.DIRTYPE), entry("opq/.wh..wh..opq"),
                      entry("opq/new", data=b"n")])
    store = ContentStore(tmp_path / "images")
    dirs = []
    for blob in (lower, upper):
        diff = diff_id_of(blob)
        dirs.append(store.unpack(store.write_blob(blob), diff, diff))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = f"lowerdir={dirs[1]}:{dirs[0]}"  # topmost first
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        assert sorted(os.listdir(mnt / "data")) == ["keep"]
        assert sorted(os.listdir(mnt / "opq")) == ["new"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
