"""rootfs.detach_mounts_under: mountinfo's escapes decoded as before, one read when nothing is mounted."""
from __future__ import annotations

import builtins

import pytest

from node.engine import rootfs


@pytest.mark.parametrize("field", ["/a/b", "/a\\040b", "/tab\\011x", "/back\\134slash", "/é/ü", "", "/x\\"])
def test_unescaped_is_the_unicode_escape_decoding(field):
    try:
        expected = field.encode().decode("unicode_escape")
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            rootfs._unescaped(field)
        return
    assert rootfs._unescaped(field) == expected


def test_nothing_mounted_reads_mountinfo_once(tmp_path, monkeypatch):
    reads = []
    real_open = builtins.open

    def counting_open(path, *args, **kwargs):
        if path == "/proc/self/mountinfo":
            reads.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    rootfs.detach_mounts_under(tmp_path)
    assert reads == ["/proc/self/mountinfo"]
