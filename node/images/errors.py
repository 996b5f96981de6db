"""The image side's errors, each a one-line message the CLI prints as is."""
from __future__ import annotations


class ImageError(Exception):
    """Base of every failure of node.images; ``str(e)`` is the line shown to the user."""


class ImageNotFound(ImageError):
    """No image in the local store matches the reference or ID."""


class UnpackError(ImageError):
    """A layer tar is hostile, corrupt or too large; nothing of it is left visible."""


class DigestMismatch(ImageError):
    """Bytes did not hash to the digest (or size) that named them."""


class RegistryError(ImageError):
    """The registry refused a request or could not be reached."""


class AuthError(RegistryError):
    """The registry refused the credentials (or asked for some and none were configured)."""
