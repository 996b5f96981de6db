"""A stage's image as it grows (config, history, layers), and how it is written out the way
docker writes images: a config whose ``config`` section carries Env, Cmd, WorkingDir,
Entrypoint, Labels, OnBuild, User, ExposedPorts, Volumes, StopSignal, Healthcheck, Shell (only
those set), ``history`` entries with ``created_by`` and ``empty_layer`` for metadata-only steps
(BuildKit's comment ``buildkit.dockerfile.v0``), ``rootfs.diff_ids`` matching the layers; then a
Docker schema 2 manifest. Both are serialised deterministically, so with SOURCE_DATE_EPOCH the
image ID and the manifest digest depend on nothing but the inputs.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from oci import mediatypes as mt
from oci.digest import Digest
from oci.record import Factory, record

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"
CONFIG_ORDER = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped",
                "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")


def iso_time(epoch: float) -> str:
    whole = int(epoch)
    frac = epoch - whole
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return base + (f".{int(frac * 1e9):09d}".rstrip("0") if frac else "") + "Z"


@record
class StageImage:
    """What a stage has made so far."""
    config: dict = Factory(dict)      # the image config's "config" section
    history: list[dict] = Factory(list)
    layers: list[dict] = Factory(list)  # {"digest", "size", "media_type", "diff_id"}
    layer_dirs: list[Path] = Factory(list)
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    author: str | None = None
    comment: str | None = None                       # `commit -m`, `import -m`
    key: str = ""                                    # cache key of the last layer-making step
    base_id: str | None = None

    @property
    def diff_ids(self) -> list[Digest]:
        return [Digest.parse(l["diff_id"]) for l in self.layers]

    def clone(self) -> "StageImage":
        return StageImage(config=copy.deepcopy(self.config), history=copy.deepcopy(self.history),
                          layers=[dict(l) for l in self.layers], layer_dirs=list(self.layer_dirs), os=self.os,
                          architecture=self.architecture, variant=self.variant, author=self.author, key=self.key,
                          base_id=self.base_id)

    @classmethod
    def from_config(cls, raw: bytes, layers: list[dict], layer_dirs: list[Path], base_id: str) -> "StageImage":
        doc = json.loads(raw)
        cfg = dict(doc.get("config") or {})
        env = list(cfg.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, f"PATH={DEFAULT_PATH}")
        cfg["Env"] = env
        return cls(config=cfg, history=list(doc.get("history") or []), layers=list(layers),
                   layer_dirs=list(layer_dirs), os=doc.get("os") or "linux",
                   architecture=doc.get("architecture") or "amd64", variant=doc.get("variant"),
                   author=doc.get("author"), base_id=base_id)

    @classmethod
    def scratch(cls, platform) -> "StageImage":
        return cls(config={"Env": [f"PATH={DEFAULT_PATH}"]}, os=platform.os, architecture=platform.architecture,
                   variant=platform.variant)

    # -- env ------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        out = {}
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = list(self.config.get("Env") or [])
        for i, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.config["Env"] = env

    # -- history --------------------------------------------------------------------------

    def record(self, created_by: str, created: str, empty_layer: bool) -> None:
        entry = {"created": created, "created_by": created_by, "comment": HISTORY_COMMENT}
        if empty_layer:
            entry["empty_layer"] = True
        self.history.append(entry)

    def add_layer(self, layer: dict, layer_dir: Path) -> None:
        self.layers.append(layer)
        self.layer_dirs.append(layer_dir)


def config_json(image: StageImage, created: str) -> bytes:
    cfg = {k: image.config[k] for k in CONFIG_ORDER if image.config.get(k) not in (None, "", [], {})}
    for k in sorted(image.config):  # anything else a base image carried
        if k not in cfg and k not in CONFIG_ORDER and image.config[k] not in (None, "", [], {}):
            cfg[k] = image.config[k]
    doc: dict = {"architecture": image.architecture}
    if image.author:
        doc["author"] = image.author
    if image.comment:
        doc["comment"] = image.comment
    doc["config"] = cfg
    doc["created"] = created
    doc["history"] = image.history
    doc["os"] = image.os
    doc["rootfs"] = {"type": "layers", "diff_ids": [l["diff_id"] for l in image.layers]}
    if image.variant:
        doc["variant"] = image.variant
    return json.dumps(doc, separators=(",", ":")).encode()


def manifest_json(config: bytes, layers: list[dict]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config), "digest": str(Digest.of(config))},
        "layers": [{"mediaType": l["media_type"], "size": l["size"], "digest": l["digest"]} for l in layers],
    }
    return json.dumps(doc, indent=3).encode()


def fill_times(history: list[dict], now: str) -> None:
    """Entries without a time take the next dated entry's (metadata steps are dated like the
    layer step after them), trailing ones the last known, and with none known ``now``: so a
    fully cached build of a base without history times is still the same image."""
    following = None
    for entry in reversed(history):
        if entry.get("created"):
            following = entry["created"]
        elif following:
            entry["created"] = following
    last = next((e["created"] for e in reversed(history) if e.get("created")), now)
    for entry in history:
        if not entry.get("created"):
            entry["created"] = last


def _tagged(store, tag: str, image_id: str) -> bool:
    from node.images.errors import ImageNotFound
    try:
        return store.get(tag).id == image_id
    except ImageNotFound:
        return False


def store_image(store, image: StageImage, created: str, tags: list[str]):
    """Write config and manifest into the store and record the image; tags move to it only now,
    once everything it names is in place."""
    raw = config_json(image, created)
    config_digest = store.content.write_blob(raw)
    manifest = manifest_json(raw, image.layers)
    manifest_digest = store.content.write_blob(manifest)
    from node.images.errors import ImageNotFound
    try:  # a fully cached rebuild: the image and its tags are already what they should be
        existing = store.get(str(config_digest))
        if existing.manifest_digest == str(manifest_digest) and all(_tagged(store, t, existing.id) for t in tags):
            return existing
    except ImageNotFound:
        pass
    result = None
    for tag in tags or [None]:
        result = store.add(manifest_digest=manifest_digest, manifest_media_type=mt.DOCKER_MANIFEST,
                           config_digest=config_digest, layers=image.layers, repo_tag=tag)
    return result
