"""``ADD https://...``: fetch a URL into the image, as docker does (file mode 0600, mtime from
Last-Modified), checking ``--checksum=sha256:...`` when given. Plain urllib: one GET, redirects
followed, a size bound, a timeout. The cache key is the URL and checksum (like BuildKit, a
URL without a checksum is fetched again when its step is not cached)."""
from __future__ import annotations

import email.utils
import hashlib
import posixpath
import urllib.error
import urllib.parse
import urllib.request

MAX_FETCH = 512 << 20
TIMEOUT = 60


def fetch_url(url: str, checksum: str | None) -> tuple[str, bytes, int | None]:
    """(file name, content, mtime or None)."""
    parsed = urllib.parse.urlparse(url)
    name = posixpath.basename(parsed.path) or "__unnamed__"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            data = resp.read(MAX_FETCH + 1)
            modified = resp.headers.get("Last-Modified")
    except (urllib.error.URLError, OSError) as e:
        raise ValueError(f"ADD {url}: {getattr(e, 'reason', e)}") from None
    if len(data) > MAX_FETCH:
        raise ValueError(f"ADD {url}: larger than {MAX_FETCH} bytes")
    if checksum:
        algo, _, want = checksum.partition(":")
        if algo not in ("sha256", "sha384", "sha512") or not want:
            raise ValueError(f"ADD --checksum={checksum}: expected sha256:<hex>")
        got = hashlib.new(algo, data).hexdigest()
        if got != want:
            raise ValueError(f"ADD {url}: digest mismatch {algo}:{got}: {checksum}")
    mtime = None
    if modified:
        try:
            mtime = int(email.utils.parsedate_to_datetime(modified).timestamp())
        except (TypeError, ValueError):
            mtime = None
    return name, data, mtime
