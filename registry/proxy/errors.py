"""How upstream failures are told to clients: one place for the wording and the statuses."""
from __future__ import annotations

from ..api.errors import ApiError, Unavailable
from .upstream import UpstreamUnavailable


def unavailable(e: UpstreamUnavailable) -> ApiError:
    """Never cached and the upstream cannot give it now: UNAVAILABLE. Retryable failures (down,
    timeout, 5xx, 429) answer 503 with the upstream's Retry-After; a refusal of our credentials
    is not going to pass by retrying: 502."""
    headers = {"Retry-After": e.retry_after or "10"} if e.retryable else {}
    return Unavailable(detail={"upstream": e.upstream, "status": e.status}, message=str(e),
                       status=503 if e.retryable else 502, headers=headers)


def stale_warning(e: UpstreamUnavailable) -> str:
    # RFC 7234's 110 "Response is Stale", with the reason the upstream could not confirm it.
    text = f"{e}; serving the cached copy, which may be stale".replace('"', "'")
    return f'110 dockyard "{text}"'
