"""SHA-256 whose running state can be saved and resumed in another process.

Python's hashlib cannot export a hash's state, yet an upload's PATCHes may each reach another
replica. OpenSSL's low-level ``SHA256_Init/Update/Final`` work on a plain ``SHA256_CTX`` struct
(eight state words, the bit count, the unhashed tail block: 112 bytes, unchanged for twenty
years): its bytes *are* the resumable state. We call them through ctypes on the libcrypto that
Python's own hashlib links, so the speed is hashlib's (ctypes releases the GIL during the call).

``AVAILABLE`` is False when that library or symbol is missing or the self-test at import fails;
callers then fall back to re-hashing the staged bytes at commit.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib

CTX_SIZE = 112          # sizeof(SHA256_CTX) in OpenSSL 1.x and 3.x
_BUFFER = 256           # room to spare: OpenSSL only ever touches the first CTX_SIZE bytes
STATE_TAG = b"ossl-sha256-v1:"


def _load():
    name = ctypes.util.find_library("crypto")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        for fn in ("SHA256_Init", "SHA256_Update", "SHA256_Final"):
            getattr(lib, fn)
    except (OSError, AttributeError):
        return None
    lib.SHA256_Init.argtypes = [ctypes.c_void_p]
    lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    for fn in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
        fn.restype = ctypes.c_int
    return lib


_LIB = _load()


class ResumableSha256:
    """``update`` like hashlib; ``state()`` bytes restore an equal hasher anywhere."""

    def __init__(self, state: bytes | None = None) -> None:
        if _LIB is None:
            raise RuntimeError("libcrypto's SHA256_* functions are not available")
        self._ctx = ctypes.create_string_buffer(_BUFFER)
        if state is None:
            _LIB.SHA256_Init(self._ctx)
        else:
            if not state.startswith(STATE_TAG) or len(state) != len(STATE_TAG) + CTX_SIZE:
                raise ValueError("not a saved SHA-256 state")
            ctypes.memmove(self._ctx, state[len(STATE_TAG):], CTX_SIZE)

    def update(self, data: bytes) -> None:
        if data:
            _LIB.SHA256_Update(self._ctx, bytes(data), len(data))

    def state(self) -> bytes:
        return STATE_TAG + self._ctx.raw[:CTX_SIZE]

    def hexdigest(self) -> str:
        # Final destroys the context: finish a copy so this hasher stays usable.
        ctx = ctypes.create_string_buffer(self._ctx.raw, _BUFFER)
        out = ctypes.create_string_buffer(32)
        _LIB.SHA256_Final(out, ctx)
        return out.raw.hex()


def _self_test() -> bool:
    if _LIB is None:
        return False
    try:
        data = bytes(range(256)) * 5 + b"tail"
        h = ResumableSha256()
        h.update(data[:77])
        h = ResumableSha256(h.state())
        h.update(data[77:])
        return h.hexdigest() == hashlib.sha256(data).hexdigest()
    except Exception:  # noqa: BLE001 - any failure means: do not trust it, re-hash instead
        return False


AVAILABLE = _self_test()
