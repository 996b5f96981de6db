"""Cache fills count toward the namespace's quota like pushes do (registry/lifecycle/quotas.py).

Before a fill stores bytes the namespace does not hold yet (a blob, a manifest, or a link to
bytes another namespace brought in), ``make_room`` checks the quota. Over it, the policy
``proxy.on_quota`` decides:

- ``evict`` (the default): the least recently pulled cached repositories of that namespace are
  evicted (registry/proxy/eviction.py; never the one being filled, never a local one) until the
  fill fits; if it still does not, the fill is refused;
- ``refuse``: the fill is refused at once.

Refused is DENIED (403) in the error envelope, with the namespace's usage and limit, before any
byte is sent to the client or stored — what a push over quota gets.
"""
from __future__ import annotations

from ..api.errors import Denied
from ..lifecycle.quotas import QuotaExceeded, namespace_of


async def make_room(svc, local: str, digest: str, size: int | None) -> None:
    from ..lifecycle import QUOTAS

    quotas = svc.cache.app.get(QUOTAS)
    if quotas is None:
        return
    namespace = namespace_of(local)
    limit = await quotas.limit(namespace)
    if limit is None:
        return
    adding = size or 0  # unknown (a chunked answer): refused only if already over, like a push
    try:
        await quotas.check(local, digest, adding)
        return
    except QuotaExceeded as e:
        refused = e
    if svc.settings.on_quota == "evict":
        from .eviction import evict

        await evict(svc, limit, namespace=namespace, adding=adding, keep=local)
        try:
            await quotas.check(local, digest, adding)
            return
        except QuotaExceeded as e:
            refused = e
    raise Denied(detail={"namespace": refused.namespace, "used": refused.used, "limit": refused.limit,
                         "adding": refused.adding},
                 message=f"cache fill refused: {refused} bytes, adding {refused.adding}"
                         + (" (nothing cached there is left to evict)" if svc.settings.on_quota == "evict" else ""))
