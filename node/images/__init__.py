"""The node's images: registry client, content store, layer snapshots, archives.

Interface for the rest of the node (kept stable; the engine relies on it)::

    from node.images.store import ImageStore, ImageNotFound
    store = ImageStore(root)            # root: the global --root (str or Path)
    image = store.get("busybox")        # name[:tag], host:port/name:tag, name@sha256:...,
                                        # full/short image ID with or without "sha256:",
                                        # a bare manifest digest. Raises ImageNotFound.
    image.id            # "sha256:<config digest>"
    image.config        # oci.manifest.ImageConfig (Entrypoint, Cmd, Env... in .config)
    image.repo_tags     # ["busybox:latest", ...] (docker's familiar form)
    image.repo_digests  # ["127.0.0.1:5000/web@sha256:...", ...]
    image.size          # uncompressed bytes of all layers
    image.created       # the config's "created" string (or None)
    image.layer_dirs()  # [Path], LOWEST layer first; each a plain dir usable as an overlayfs
                        # lowerdir, whiteouts already in overlay's form (0/0 char devices,
                        # trusted.overlay.opaque=y)
    store.inspect(ref)  # dict shaped like `docker image inspect`
    store.list(), store.tag(src, dst), store.remove(ref, force, in_use)

    from node.images.pull import pull_image
    pull_image(root, "busybox", platform=None, quiet=False, out=None) -> Image
        # progress and docker's lines go to `out` (stderr by default)

    from node.images.push import push_image          # push_image(root, ref) -> Digest
    from node.images.archive import save, load       # save(root, refs, path); load(root, path)

State under ``<root>/images`` (drawn in content.py and store.py): ``content/blobs/sha256/<hex>``,
``content/ingest/``, ``snapshots/<chain-id-hex>/{fs,meta.json}``, ``images.json`` (+ ``.lock``),
``locks/``. Credentials: ``$DOCKYARD_CONFIG/config.json``, else ``$DOCKER_CONFIG/config.json``,
else ``~/.docker/config.json`` (auth.py). Environment: ``DOCKYARD_INSECURE_REGISTRIES``,
``DOCKYARD_TLS_REGISTRIES``, ``DOCKYARD_CA_FILE``, ``DOCKYARD_MAX_LAYER_SIZE``.

Errors are node.images.errors.ImageError subclasses whose message is one line for the user.
"""
