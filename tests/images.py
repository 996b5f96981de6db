"""Test images built from Debian's busybox-static: no image ever comes from the internet.

Everything here is deterministic (fixed mtimes, uid/gid 0, gzip without a timestamp), so the same
call gives the same digests on every run and every machine with the same busybox binary.

Files and layers
    ``busybox_rootfs(dest)``            a rootfs: /bin/busybox, one symlink per applet
                                        (``busybox --list-full``), /etc/passwd, /etc/group, /tmp.
    ``tar_layer(out, root=, entries=)`` a layer tarball (gzip by default) of a directory tree plus
                                        extra ``File``/``Whiteout``/``Opaque`` entries -> ``Blob``
                                        (``digest``, ``size``, ``diff_id``, ``media_type``).
OCI image layouts (``oci:`` for skopeo/podman/umoci)
    ``build_busybox_image(dest, tag=, arch=, variant=, extra=)`` -> ``OciImage``: three layers
        (busybox base; a layer adding /etc/motd, /data/keep.txt and /data/junk.txt; a layer
        deleting /data/junk.txt with a whiteout and adding /data/added-late.txt) in an OCI
        layout at ``dest``: the final /data holds added-late.txt and keep.txt. ``extra`` (bytes)
        goes into /extra.bin in the second layer, to make distinct images on demand.
    ``build_multiplatform_image(dest, tag=)`` -> ``OciImage`` whose ``manifest`` is an OCI index
        of linux/amd64 and linux/arm64/v8 (the arm64 one is fake: the same busybox bytes, an
        arm64 config) sharing the base layer.
    ``write_dir_layout(image, dest)``  the same image in skopeo's ``dir:`` format.
    ``read_layout_manifest(layout, tag)`` -> (digest, raw bytes) of what index.json tags.
    ``push_image(image, "host:port/repo:tag")`` skopeo copy to a registry (plain HTTP); the
        registry then serves exactly ``image.manifest`` (all platforms of an index).
Docker engine (``dockerd`` fixture in tests/servers.py)
    ``docker_archive(image, out, repo_tag)`` a ``docker save``-format tar for ``docker load``.
    ``docker_build_busybox(docker, workdir, prefix)`` -> ``DockerImages``: ``prefix-base``
        (FROM scratch + ADD rootfs, with /etc/image-id = prefix so the base layer is unique to
        the prefix), ``prefix-one`` (base + 2 COPY layers) and ``prefix-two`` (base + 1 COPY
        layer), built with the classic builder; one and two share the base layer.

Session fixtures (in tests/servers.py): ``busybox_rootfs_dir`` (Path) and ``busybox_image_dir``
(an ``OciImage`` in a session tmp dir: ``.layout``, ``.tag``, ``.manifest``, ``.config``,
``.layers``; ``.ref`` is ``oci:<layout>:<tag>`` for skopeo).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

BUSYBOX = Path("/bin/busybox")
MTIME = 1_700_000_000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Blob:
    path: Path
    digest: str
    size: int
    media_type: str
    diff_id: str | None = None  # digest of the uncompressed tar (layers only)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class OciImage:
    layout: Path
    tag: str
    manifest: Blob                  # an image manifest, or an index for multi-platform images
    config: Blob | None = None      # None for an index
    layers: list[Blob] = field(default_factory=list)
    children: list["OciImage"] = field(default_factory=list)  # the platform images of an index

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


@dataclass(frozen=True)
class File:
    path: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Whiteout:
    path: str  # the deleted path; becomes <dir>/.wh.<name>


@dataclass(frozen=True)
class Opaque:
    dir: str   # hides everything lower layers put in dir; becomes <dir>/.wh..wh..opq


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# -- rootfs and layers -------------------------------------------------------------------------

def busybox_rootfs(dest: Path) -> Path:
    """A minimal runnable rootfs at ``dest``: busybox, its applet links, users, /tmp."""
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} missing: apt-get install busybox-static")
    dest = Path(dest)
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True).stdout
    for rel in applets.split():
        link = dest / rel
        if rel == "bin/busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for d in ("etc", "tmp", "root", "proc", "sys", "dev", "var/tmp"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return dest


def _tarinfo(name: str, **kw) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "root", "root"
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def _add_tree(tar: tarfile.TarFile, root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            arc = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                tar.addfile(_tarinfo(arc, type=tarfile.SYMTYPE, linkname=os.readlink(path), mode=0o777))
            elif path.is_dir():
                tar.addfile(_tarinfo(arc, type=tarfile.DIRTYPE, mode=st.st_mode & 0o7777))
            else:
                with open(path, "rb") as f:
                    tar.addfile(_tarinfo(arc, size=st.st_size, mode=st.st_mode & 0o7777), f)


def _add_entry(tar: tarfile.TarFile, entry: File | Whiteout | Opaque) -> None:
    if isinstance(entry, File):
        tar.addfile(_tarinfo(entry.path.lstrip("/"), size=len(entry.data), mode=entry.mode), io.BytesIO(entry.data))
    elif isinstance(entry, Whiteout):
        parent, _, name = entry.path.strip("/").rpartition("/")
        tar.addfile(_tarinfo(f"{parent}/.wh.{name}".lstrip("/"), mode=0o644))
    else:
        tar.addfile(_tarinfo(f"{entry.dir.strip('/')}/.wh..wh..opq", mode=0o644))


def tar_layer(out: Path, root: Path | None = None, entries: Iterable[File | Whiteout | Opaque] = (),
              compress: bool = True) -> Blob:
    """Write a layer tarball to ``out``: the tree under ``root`` (if any), then ``entries``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if root is not None:
            _add_tree(tar, Path(root))
        for entry in entries:
            _add_entry(tar, entry)
    data = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    Path(out).write_bytes(data)
    return Blob(Path(out), "sha256:" + hashlib.sha256(data).hexdigest(), len(data),
                OCI_LAYER_GZIP if compress else OCI_LAYER_TAR, diff_id)


# -- OCI layouts -------------------------------------------------------------------------------

def _blobs_dir(layout: Path) -> Path:
    d = layout / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return d


def _store(layout: Path, blob: Blob) -> Blob:
    """Move a blob file into the layout under its digest."""
    target = _blobs_dir(layout) / blob.digest.split(":", 1)[1]
    if blob.path != target:
        os.replace(blob.path, target)
    return Blob(target, blob.digest, blob.size, blob.media_type, blob.diff_id)


def put_json(layout: Path, doc: dict, media_type: str) -> Blob:
    data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = _blobs_dir(layout) / digest.split(":", 1)[1]
    path.write_bytes(data)
    return Blob(path, digest, len(data), media_type)


def add_layer(layout: Path, **tar_kwargs) -> Blob:
    tmp = _blobs_dir(layout) / f".tmp-{os.getpid()}-{id(tar_kwargs)}"
    return _store(layout, tar_layer(tmp, **tar_kwargs))


def image_config(diff_ids: list[str], arch: str = "amd64", variant: str | None = None,
                 cmd: list[str] | None = None) -> dict:
    config = {
        "architecture": arch, "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"tests.images layer {i}"}
                    for i in range(len(diff_ids))],
    }
    if variant:
        config["variant"] = variant
    return config


def write_index_json(layout: Path, manifest: Blob, tag: str, platform: dict | None = None) -> None:
    """Tag ``manifest`` in index.json, keeping other tags."""
    path = layout / "index.json"
    index = json.loads(path.read_text()) if path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    desc = manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
    if platform:
        desc["platform"] = platform
    index["manifests"].append(desc)
    path.write_text(json.dumps(index, indent=1))


def make_image(layout: Path, layers: list[Blob], tag: str | None, arch: str = "amd64",
               variant: str | None = None) -> OciImage:
    config = put_json(layout, image_config([b.diff_id for b in layers], arch, variant), OCI_CONFIG)
    manifest = put_json(layout, {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                                 "layers": [b.descriptor() for b in layers]}, OCI_MANIFEST)
    if tag:
        write_index_json(layout, manifest, tag)
    return OciImage(layout, tag or "", manifest, config, list(layers))


def busybox_layers(layout: Path, extra: bytes = b"") -> list[Blob]:
    """base busybox rootfs + a layer adding files + a layer deleting one (whiteout)."""
    rootfs = layout.parent / f".rootfs-{layout.name}"
    if not rootfs.exists():
        busybox_rootfs(rootfs)
    base = add_layer(layout, root=rootfs)
    shutil.rmtree(rootfs)
    adds = [File("etc/motd", b"built by tests.images\n"), File("data/keep.txt", b"keep\n"),
            File("data/junk.txt", b"junk\n")]
    if extra:
        adds.append(File("extra.bin", extra))
    add = add_layer(layout, entries=adds)
    delete = add_layer(layout, entries=[Whiteout("data/junk.txt"), File("data/added-late.txt", b"late\n")])
    return [base, add, delete]


def build_busybox_image(dest: Path, tag: str = "latest", arch: str = "amd64", variant: str | None = None,
                        extra: bytes = b"") -> OciImage:
    """A three-layer busybox image in an OCI layout at ``dest`` (see the module docstring)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return make_image(dest, busybox_layers(dest, extra), tag, arch, variant)


def build_multiplatform_image(dest: Path, tag: str = "latest") -> OciImage:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    layers = busybox_layers(dest)
    amd64 = make_image(dest, layers, None, "amd64")
    arm64 = make_image(dest, layers[:2], None, "arm64", "v8")  # fake: amd64 bytes, arm64 label
    index = put_json(dest, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        amd64.manifest.descriptor(platform={"architecture": "amd64", "os": "linux"}),
        arm64.manifest.descriptor(platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ]}, OCI_INDEX)
    write_index_json(dest, index, tag)
    return OciImage(dest, tag, index, None, [], [amd64, arm64])


def read_layout_manifest(layout: Path, tag: str) -> tuple[str, bytes]:
    index = json.loads((Path(layout) / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            raw = (Path(layout) / "blobs" / m["digest"].replace(":", "/")).read_bytes()
            return m["digest"], raw
    raise KeyError(f"{tag} not in {layout}/index.json")


def write_dir_layout(image: OciImage, dest: Path) -> Path:
    """The image in skopeo's ``dir:`` format: manifest.json, version, blobs named by hex digest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "version").write_text("Directory Transport Version: 1.1\n")
    shutil.copyfile(image.manifest.path, dest / "manifest.json")
    for blob in [image.config, *image.layers]:
        shutil.copyfile(blob.path, dest / blob.digest.split(":", 1)[1])
    return dest


# -- Docker engine -----------------------------------------------------------------------------

def docker_archive(image: OciImage, out: Path, repo_tag: str) -> Path:
    """A ``docker save``-format archive of ``image`` (gzip layers are fine for ``docker load``)."""
    with tarfile.open(out, "w") as tar:
        config_name = image.config.digest.split(":", 1)[1] + ".json"
        tar.add(image.config.path, config_name)
        names = []
        for layer in image.layers:
            name = layer.digest.split(":", 1)[1] + "/layer.tar"
            tar.add(layer.path, name)
            names.append(name)
        manifest = json.dumps([{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}]).encode()
        tar.addfile(_tarinfo("manifest.json", size=len(manifest)), io.BytesIO(manifest))
    return Path(out)


@dataclass
class DockerImages:
    base: str
    one: str   # base + two COPY layers
    two: str   # base + one COPY layer

    @property
    def tags(self) -> list[str]:
        return [self.base, self.one, self.two]


def docker_build(docker, context: Path, tag: str, dockerfile: str) -> str:
    """Build with the classic builder (DOCKER_BUILDKIT=0); returns the image ID."""
    (context / "Dockerfile").write_text(dockerfile)
    docker.run("build", "-q", "-t", tag, str(context), extra_env={"DOCKER_BUILDKIT": "0"})
    return docker.run("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def docker_build_busybox(docker, workdir: Path, prefix: str = "dockyard-test") -> DockerImages:
    workdir = Path(workdir)
    base_ctx, one_ctx, two_ctx = workdir / "base", workdir / "one", workdir / "two"
    for d in (base_ctx, one_ctx / "data", two_ctx):
        d.mkdir(parents=True, exist_ok=True)
    rootfs = busybox_rootfs(workdir / "rootfs")
    # A base layer unique to the prefix: the engine may already hold plain busybox layers from
    # other tests, and then a pull would find the base "Already exists".
    (rootfs / "etc" / "image-id").write_text(prefix + "\n")
    tar_layer(base_ctx / "rootfs.tar", root=rootfs, compress=False)
    shutil.rmtree(rootfs)
    docker_build(docker, base_ctx, f"{prefix}-base:latest", 'FROM scratch\nADD rootfs.tar /\nCMD ["sh"]\n')
    (one_ctx / "one.txt").write_text("image one\n")
    (one_ctx / "data" / "payload.bin").write_bytes(hashlib.sha256(prefix.encode()).digest() * 4096)
    docker_build(docker, one_ctx, f"{prefix}-one:latest",
                 f"FROM {prefix}-base:latest\nCOPY one.txt /one.txt\nCOPY data/ /data/\n")
    (two_ctx / "two.txt").write_text("image two\n")
    docker_build(docker, two_ctx, f"{prefix}-two:latest", f"FROM {prefix}-base:latest\nCOPY two.txt /two.txt\n")
    return DockerImages(f"{prefix}-base:latest", f"{prefix}-one:latest", f"{prefix}-two:latest")


def push_image(image: OciImage, dest: str, all_platforms: bool | None = None) -> str:
    """Copy ``image`` to ``docker://<dest>`` (``host:port/repo:tag``) with skopeo, over plain
    HTTP; indexes go with all their platforms. Returns the digest the registry now serves."""
    if all_platforms is None:
        all_platforms = image.config is None
    argv = ["skopeo", "copy", "-q", "--dest-tls-verify=false", *(["--all"] if all_platforms else []),
            image.ref, f"docker://{dest}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}:\n{r.stderr}")
    return image.manifest.digest
