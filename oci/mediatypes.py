"""Every media type the project knows, in one place."""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# The empty JSON object `{}` that artifact manifests use as config (image-spec "empty descriptor").
EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFESTS = IMAGE_MANIFESTS | INDEXES
SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json"})
CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})

LAYERS_GZIP = frozenset({OCI_LAYER_GZIP, DOCKER_LAYER_GZIP, OCI_LAYER_NONDIST_GZIP, DOCKER_LAYER_FOREIGN})
LAYERS_ZSTD = frozenset({OCI_LAYER_ZSTD, OCI_LAYER_NONDIST_ZSTD})
LAYERS_PLAIN = frozenset({OCI_LAYER, OCI_LAYER_NONDIST})
LAYERS = LAYERS_GZIP | LAYERS_ZSTD | LAYERS_PLAIN


def layer_compression(media_type: str) -> str:
    """'gzip', 'zstd' or 'none' for a layer media type; ValueError for anything else."""
    if media_type in LAYERS_GZIP:
        return "gzip"
    if media_type in LAYERS_ZSTD:
        return "zstd"
    if media_type in LAYERS_PLAIN:
        return "none"
    raise ValueError(f"not a layer media type: {media_type!r}")
