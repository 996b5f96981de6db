"""`commit`: a container's changes as a new image on top of its own.

The container's overlay upper dir is the diff; it is written as one layer by the build's
differ (node/build/layers.py: whiteouts, opaque dirs, hardlinks, xattrs), less the mount points
the runtime made (/etc/hosts..., empty /proc, /sys, /dev), and stored as a blob, then unpacked
into a snapshot by the store's hostile-layer extractor: the upper dir itself stays the
container's. A running container is frozen while its upper dir is read (``pause``, docker's
default), so the layer is one moment of it.

The image config is docker's: the container's Config (its Env, Cmd, Entrypoint, WorkingDir,
User, Labels, ExposedPorts, Volumes, Hostname...) with the ``-c`` Dockerfile instructions
applied by the build's own metadata code, the base image's history plus one entry (the
container's command, the message as comment), and ``author``.
"""
from __future__ import annotations

import contextlib
import json
import os
import posixpath
import tempfile
import time
from pathlib import Path

from node.engine import EngineError, events
from node.engine.records import Container, to_json
from node.engine.status import current_state

CHANGE_COMMANDS = ("cmd", "entrypoint", "env", "expose", "label", "onbuild", "user", "volume", "workdir",
                   "stopsignal", "healthcheck")
# Container config keys that are a container's, never an image's
_NOT_IMAGE_CONFIG = ("NetworkAliases", "IPAddress")


def apply_changes(config: dict, changes: list[str]) -> dict:
    """``-c`` instructions (Dockerfile syntax, one per item) applied to an image config section."""
    from node.build.dockerfile import DockerfileError, parse
    from node.build.image import StageImage
    from node.build.instructions import interpret
    from node.build.metadata import Applier
    image = StageImage(config=json.loads(json.dumps(config)))
    applier = Applier(image, image.env, name="change")
    for text in changes:
        try:
            parsed = parse(text, name="change").instructions
        except DockerfileError as e:
            raise EngineError(f"dockerfile parse error on {text!r}: {e.reason}", 1) from None
        for inst in parsed:
            if inst.cmd not in CHANGE_COMMANDS:
                raise EngineError(f"{inst.cmd} is not a valid change command", 1)
            try:
                if inst.cmd == "workdir":
                    path = inst.args.strip()
                    image.config["WorkingDir"] = posixpath.join(image.config.get("WorkingDir") or "/", path)
                    continue
                applier.apply(interpret(inst, name="change"))
            except DockerfileError as e:
                raise EngineError(f"{inst.cmd.upper()}: {e.reason}", 1) from None
    return image.config


def _container_config(container: Container) -> dict:
    doc = to_json(container.spec.config)
    for key in _NOT_IMAGE_CONFIG:
        doc.pop(key, None)
    if doc.get("StopTimeout") is None:
        doc.pop("StopTimeout", None)
    if doc.get("StopSignal") == "SIGTERM":
        doc.pop("StopSignal", None)  # the default: docker records it only when it was set
    return doc


@contextlib.contextmanager
def _frozen(container: Container, pause: bool):
    """The container paused for the commit if it runs (and ``pause``), thawed after."""
    if not pause or current_state(container).get("Status") != "running":
        yield
        return
    from node.engine.pause import pause_container, unpause_container
    pause_container(container)
    try:
        yield
    finally:
        with contextlib.suppress(EngineError):
            unpause_container(container)


def validate_tag(repo_tag: str | None) -> str | None:
    if not repo_tag:
        return None
    from oci.reference import InvalidReference, Reference
    try:
        ref = Reference.parse(repo_tag)
    except InvalidReference as e:
        raise EngineError(f"invalid reference format: {e}", 1) from None
    if ref.digest is not None:
        raise EngineError("refusing to create a tag with a digest reference", 1)
    return ref.familiar()


def commit_container(root, container: Container, repo_tag: str | None = None, changes: list[str] = (),
                     message: str = "", author: str = "", pause: bool = True, overrides: dict | None = None):
    """The new image (node.images.store.Image). ``overrides``: Config keys that replace the
    container's before the changes apply (the engine API's commit body)."""
    from node.build.image import StageImage, iso_time, store_image
    from node.build.layers import runtime_leftovers, write_layer
    from node.images.errors import ImageNotFound
    from node.images.store import ImageStore
    from oci.manifest import chain_ids
    tag = validate_tag(repo_tag)
    spec = container.spec
    if spec.id_mappings:
        raise EngineError("committing a --userns=private container is not supported: its files belong to "
                          "shifted uids", 1)
    store = ImageStore(root)
    try:
        base = store.get(spec.image)
    except ImageNotFound:
        raise EngineError(f"the image of container {container.id[:12]} ({spec.image_ref}) is gone", 1) from None
    config = apply_changes({**_container_config(container), **(overrides or {})}, list(changes))
    upper = container.dir / "upper"
    lowers = [Path(d) for d in reversed(spec.layer_dirs)]  # topmost first
    store.content.ingest.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=store.content.ingest, prefix="commit-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with store.writing():
            with _frozen(container, pause):
                # plain, as docker stores a commit: gzip would cost more than the tar (a push compresses)
                layer = write_layer(upper, tmp, None, runtime_leftovers(upper, lowers), compress=False)
            with store.content.blob_lock(layer.digest):
                if store.content.has_blob(layer.digest):
                    tmp.unlink()
                else:
                    store.content.commit_file(layer.digest, tmp, layer.size, hashed=(layer.digest, layer.size))
            image = StageImage.from_config(base.config.raw, [dict(l) for l in base.layers], base.layer_dirs(), base.id)
            diff_ids = [*image.diff_ids, layer.diff_id]
            store.content.unpack(layer.digest, layer.diff_id, chain_ids(diff_ids)[-1])
            image.config = config
            image.author, image.comment = author or None, message or None
            now = iso_time(time.time())
            entry = {"created": now, "created_by": " ".join([spec.path, *spec.args]).strip()}
            if author:
                entry["author"] = author
            if message:
                entry["comment"] = message
            image.history.append(entry)
            image.add_layer({"digest": str(layer.digest), "size": layer.size, "media_type": layer.media_type,
                             "diff_id": str(layer.diff_id)}, Path("."))
            stored = store_image(store, image, now, [tag] if tag else [])
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    events.container_event(container, "commit", comment=message, imageID=stored.id,
                           imageRef=tag or stored.id)
    return stored
