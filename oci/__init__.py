"""What the registry and the node agree on: digests, references, media types, manifests.

Pure code: no I/O beyond hashing bytes handed to it, no aiohttp, no SQLAlchemy.
"""
