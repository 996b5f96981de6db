"""The filesystem driver's small put (PROFILE 33): an unnamed file (O_TMPFILE) fsynced, then
linked into its fan-out directory, then that directory fsynced -- the durable order of the temp
file renamed into place it replaces, without a temp name in tmp/. And the staging area's
removal in two calls (unlink, rmdir) with rmtree kept for anything unexpected."""
from __future__ import annotations

import errno
import os

import pytest

from oci.digest import Digest
from registry.storage import filesystem
from registry.storage.filesystem import FilesystemDriver

pytestmark = pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="no O_TMPFILE here")


@pytest.fixture
def driver(tmp_path):
    d = FilesystemDriver(str(tmp_path / "fs"))
    d.layout.ensure()
    return d


def _record(monkeypatch, driver):
    """Every fsync, link and rename the put makes, in order, as what each one was about."""
    events: list[tuple] = []
    real_fsync, real_link, real_rename = os.fsync, os.link, os.rename

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", "dir" if os.path.isdir(path) else "file", path))
        real_fsync(fd)

    def link(src, dst, **kw):
        events.append(("link", dst))
        real_link(src, dst, **kw)

    def rename(src, dst, **kw):
        events.append(("rename", os.path.dirname(src), dst))
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "rename", rename)
    return events


def test_a_small_put_is_fsynced_then_named_then_its_directory_fsynced_and_leaves_no_temp_name(driver,
                                                                                             monkeypatch):
    data = os.urandom(4096)
    digest = Digest.of(data)
    events = _record(monkeypatch, driver)
    driver.put_now(digest, data)
    monkeypatch.undo()
    dest = driver._blob_file(digest)
    with open(dest, "rb") as f:
        assert f.read() == data
    fan = os.path.dirname(dest)
    assert [e[:2] for e in events] == [("fsync", "file"), ("link", os.path.basename(dest)), ("fsync", "dir")]
    assert events[2][2] == fan  # the directory that now holds the name
    assert not [e for e in events if e[0] == "rename"]  # no temp name renamed into place
    assert os.listdir(driver.layout.tmp) == [] and os.listdir(fan) == [os.path.basename(dest)]
    assert oct(os.stat(dest).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_a_put_racing_the_same_blob_keeps_the_stored_one_and_still_fsyncs_the_name(driver, monkeypatch):
    """Another put of the same digest linked it first (the link says EEXIST): the stored file
    stays, its mtime is refreshed, and the directory is fsynced before the put returns (that
    other put may not have fsynced it yet)."""
    data = os.urandom(100)
    digest = Digest.of(data)
    dest = driver._blob_file(digest)
    events = _record(monkeypatch, driver)
    recorded_link = os.link

    def other_put_first(src, dst, **kw):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)
        os.utime(dest, (1, 1))
        monkeypatch.setattr(os, "link", recorded_link)
        recorded_link(src, dst, **kw)  # EEXIST now

    monkeypatch.setattr(os, "link", other_put_first)
    driver.put_now(digest, data)
    assert os.stat(dest).st_mtime > 1
    assert [e[:2] for e in events] == [("fsync", "file"), ("link", os.path.basename(dest)), ("fsync", "dir")]
    assert os.listdir(os.path.dirname(dest)) == [os.path.basename(dest)]


def test_without_o_tmpfile_a_put_falls_back_to_the_temp_file_renamed_into_place(driver, monkeypatch):
    real_open = os.open

    def no_tmpfile(path, flags, *a, **kw):
        if flags & os.O_TMPFILE & ~os.O_DIRECTORY:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", no_tmpfile)
    events = _record(monkeypatch, driver)
    for _ in range(2):
        data = os.urandom(300)
        digest = Digest.of(data)
        driver.put_now(digest, data)
        with open(driver._blob_file(digest), "rb") as f:
            assert f.read() == data
    assert not driver._anonymous
    # (a rename into a fan-out directory not there yet is retried once it is made)
    kinds = [e[0] for i, e in enumerate(events) if not (e[0] == "rename" and events[i - 1][0] == "rename")]
    assert kinds == ["fsync", "rename", "fsync"] * 2
    assert {e[1] for e in events if e[0] == "rename"} == {str(driver.layout.tmp)}
    assert os.listdir(driver.layout.tmp) == []


def test_a_full_disk_during_the_put_leaves_no_file_and_no_name(driver, monkeypatch):
    data = os.urandom(5000)
    digest = Digest.of(data)
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, _data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(filesystem, "open", lambda p, mode="r", *a, **k: Full(real_open(p, mode, *a, **k)),
                        raising=False)
    with pytest.raises(Exception) as e:
        driver.put_now(digest, data)
    assert "full" in str(e.value)
    assert not os.path.exists(driver._blob_file(digest))
    assert os.listdir(driver.layout.tmp) == []
    fan = os.path.dirname(driver._blob_file(digest))
    assert not os.path.isdir(fan) or os.listdir(fan) == []


def test_the_staging_area_goes_in_two_calls_and_anything_unexpected_still_goes(driver, monkeypatch):
    calls: list[str] = []
    real_rmtree = filesystem.shutil.rmtree
    monkeypatch.setattr(filesystem.shutil, "rmtree", lambda p, **kw: (calls.append(p), real_rmtree(p, **kw)))
    plain, stray, lost = "a" * 32, "b" * 32, "c" * 32
    for upload_id in (plain, stray, lost):
        driver.create_upload_now(upload_id)
    with open(os.path.join(driver.layout.upload_dir(stray), "extra"), "wb") as f:
        f.write(b"x")
    os.unlink(driver.layout.upload_data(lost))
    driver.delete_upload_now(plain)
    assert calls == []  # unlink + rmdir did it
    driver.delete_upload_now(stray)
    driver.delete_upload_now(lost)
    assert len(calls) == 2
    assert os.listdir(driver.layout.uploads) == []
