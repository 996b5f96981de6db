"""GET /v2/<name>/referrers/<digest>: an OCI index of the manifests whose subject is <digest>."""
from __future__ import annotations

import json

from aiohttp import web

from oci import mediatypes as mt

from .common import index, parse_digest, repo_name


async def list_referrers(request: web.Request) -> web.Response:
    name = repo_name(request)
    subject = parse_digest(request.match_info["digest"])
    artifact_type = request.query.get("artifactType") or None
    if artifact_type is not None and (len(artifact_type) > 255 or "\x00" in artifact_type):
        rows = []  # no stored manifest can have such an artifact type
    else:
        rows = await index(request).referrers(name, str(subject), artifact_type)
    manifests = []
    for row in rows:
        desc = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
        if row.artifact_type:
            desc["artifactType"] = row.artifact_type
        if row.annotations:
            desc["annotations"] = row.annotations
        manifests.append(desc)
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}).encode()
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return web.Response(body=body, content_type=mt.OCI_INDEX, headers=headers)
