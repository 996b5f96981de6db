"""Every error the API can return, declared once with its code and HTTP status.

Handlers raise ``ApiError`` subclasses (``raise BlobUnknown(digest)``); the middleware turns
them into the OCI envelope ``{"errors": [{"code", "message", "detail"}]}`` and adds any headers
the error carries (a 416 on an upload still tells the client the session's Range, a 401 its
WWW-Authenticate challenge).
"""
from __future__ import annotations

from typing import Any, Mapping


class ApiError(Exception):
    code = "UNKNOWN"
    status = 500
    message = "unknown error"

    def __init__(self, detail: Any = None, *, message: str | None = None, headers: Mapping[str, str] | None = None,
                 status: int | None = None) -> None:
        super().__init__(message or self.message)
        self.detail = detail
        if message:
            self.message = message
        if status:
            self.status = status
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            err["detail"] = self.detail
        return {"errors": [err]}


def _error(code: str, status: int, message: str) -> type[ApiError]:
    name = "".join(part.capitalize() for part in code.split("_"))
    return type(name, (ApiError,), {"code": code, "status": status, "message": message})


# OCI distribution spec v1.1 error codes.
BlobUnknown = _error("BLOB_UNKNOWN", 404, "blob unknown to registry")
BlobUploadInvalid = _error("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
BlobUploadUnknown = _error("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
DigestInvalid = _error("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
ManifestBlobUnknown = _error("MANIFEST_BLOB_UNKNOWN", 404, "manifest references a manifest or blob unknown to registry")
ManifestInvalid = _error("MANIFEST_INVALID", 400, "manifest invalid")
ManifestUnknown = _error("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
NameInvalid = _error("NAME_INVALID", 400, "invalid repository name")
NameUnknown = _error("NAME_UNKNOWN", 404, "repository name not known to registry")
SizeInvalid = _error("SIZE_INVALID", 400, "provided length did not match content length")
Unauthorized = _error("UNAUTHORIZED", 401, "authentication required")
Denied = _error("DENIED", 403, "requested access to the resource is denied")
Unsupported = _error("UNSUPPORTED", 405, "the operation is unsupported")
TooManyRequests = _error("TOOMANYREQUESTS", 429, "too many requests")
# Docker distribution's additions that clients know.
RangeInvalid = _error("RANGE_INVALID", 416, "invalid content range")
TagInvalid = _error("TAG_INVALID", 400, "manifest tag did not match URI")
PaginationNumberInvalid = _error("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested")
Unknown = _error("UNKNOWN", 500, "unknown error")
Unavailable = _error("UNAVAILABLE", 503, "service unavailable")
# 507 Insufficient Storage, with Docker's UNAVAILABLE code (the spec has none for a full disk).
StorageFullError = _error("UNAVAILABLE", 507, "the registry's storage is full")

ALL: tuple[type[ApiError], ...] = (
    BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, ManifestBlobUnknown, ManifestInvalid,
    ManifestUnknown, NameInvalid, NameUnknown, SizeInvalid, Unauthorized, Denied, Unsupported, TooManyRequests,
    RangeInvalid, TagInvalid, PaginationNumberInvalid, Unknown, Unavailable, StorageFullError,
)
