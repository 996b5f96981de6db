"""Test images for the node benchmarks, built here and pushed with the bench client.

- busybox: one layer, Debian's busybox-static with its applet links (for `run ... true`);
- big: N layers, each one file of random bytes (incompressible, so gzip cannot shrink the
  transfer), gzip level 1; about N x layer_size on the wire.
Images are OCI manifests with a proper config (diff_ids checked by Docker on pull).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from bench.oci_http import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Client, file_digest

BUSYBOX = "/bin/busybox"


@dataclass
class Layer:
    path: Path      # the .tar.gz
    digest: str     # of the compressed bytes
    diff_id: str    # of the uncompressed tar
    size: int


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, kind=tarfile.REGTYPE,
         mode: int = 0o644, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1_700_000_000
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _finish(tar_path: Path, out: Path) -> Layer:
    """Hash the tar (diff_id), gzip it at level 1, hash that (digest)."""
    diff = hashlib.sha256()
    with open(tar_path, "rb") as src, gzip.open(out, "wb", compresslevel=1) as dst:
        while chunk := src.read(1 << 20):
            diff.update(chunk)
            dst.write(chunk)
    tar_path.unlink()
    return Layer(out, file_digest(out), "sha256:" + diff.hexdigest(), out.stat().st_size)


def busybox_layer(work: Path) -> Layer:
    if not os.path.exists(BUSYBOX):
        raise RuntimeError("busybox-static is not installed (/bin/busybox)")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    tar_path = work / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        for d in ("bin", "etc", "tmp", "root"):
            _add(tar, d, kind=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", Path(BUSYBOX).read_bytes(), mode=0o755)
        for applet in applets:
            if applet != "busybox":
                _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, mode=0o777, link="busybox")
        _add(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tar, "etc/group", b"root:x:0:\n")
    return _finish(tar_path, work / "busybox.tar.gz")


def random_layer(work: Path, index: int, size: int) -> Layer:
    tar_path = work / f"random{index}.tar"
    with tarfile.open(tar_path, "w") as tar:
        _add(tar, f"data{index}", kind=tarfile.DIRTYPE, mode=0o755)
        info = tarfile.TarInfo(f"data{index}/random.bin")
        info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
        with open(work / "random.tmp", "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 20)
                f.write(os.urandom(n))
                left -= n
        with open(work / "random.tmp", "rb") as f:
            tar.addfile(info, f)
        (work / "random.tmp").unlink()
    return _finish(tar_path, work / f"random{index}.tar.gz")


def push_image(client: Client, name: str, tag: str, layers: list[Layer], cmd: list[str]) -> str:
    for layer in layers:
        client.push_file(name, layer.path, layer.digest)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench"} for _ in layers],
    }).encode()
    config_digest = client.push_bytes(name, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": l.digest, "size": l.size} for l in layers],
    }).encode()
    return client.put_manifest(name, tag, manifest)


def unpack_busybox_rootfs(rootfs: Path) -> None:
    """The busybox rootfs as a plain directory, for runtime bundles."""
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", rootfs / "bin" / applet)
    for d in ("etc", "tmp", "root", "proc", "sys", "dev"):
        (rootfs / d).mkdir(exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
