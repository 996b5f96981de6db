"""C functions of a shared library (libc, libseccomp) called from Python through `_ctypes`, the
C module under the ctypes package, without importing the package.

Why: `import ctypes` costs a one-shot runtime command 2.5-3.5 ms of its start (the package
defines some thirty C types, imports `types`, `struct` and `ctypes._endian`, and builds helper
functions at import), where `_ctypes` alone is ~0.4 ms (bench/results/PROFILE.md section 29).
The runtime needs a handful of C types, a few structures and a dozen functions. Each type below
is defined the way ctypes/__init__.py defines it (a `_SimpleCData` subclass named by its struct
type code), so argument conversion, results, structure layout and the errno saved after each
call are the C module's own, as through ctypes. Linux only: `long` and `size_t` are pointer
sized there (LP64 and ILP32 alike).
"""
import _ctypes
import os


class c_char(_ctypes._SimpleCData):  # c_char * N: a char[N] field
    _type_ = "c"


class c_short(_ctypes._SimpleCData):
    _type_ = "h"


class c_int(_ctypes._SimpleCData):
    _type_ = "i"


class c_uint(_ctypes._SimpleCData):
    _type_ = "I"


c_uint32 = c_uint  # int is 32 bits on every Linux ABI


class c_long(_ctypes._SimpleCData):
    _type_ = "l"


class c_ulong(_ctypes._SimpleCData):
    _type_ = "L"


c_size_t = c_ulong


class c_uint64(_ctypes._SimpleCData):
    _type_ = "Q"


class c_char_p(_ctypes._SimpleCData):  # bytes or None (NULL)
    _type_ = "z"


class c_void_p(_ctypes._SimpleCData):  # an address as an int, or None
    _type_ = "P"


Structure = _ctypes.Structure
POINTER = _ctypes.POINTER
byref = _ctypes.byref
sizeof = _ctypes.sizeof
addressof = _ctypes.addressof
get_errno = _ctypes.get_errno


class _Function(_ctypes.CFuncPtr):
    # cdecl, and errno copied out right after each call (ctypes' CDLL(..., use_errno=True))
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class Library:
    """A shared library opened by soname (raises OSError if it cannot be loaded)."""

    def __init__(self, name: str) -> None:
        self.name = name
        # _ctypes resolves a function by ((name, library)) and reads the handle from here
        self._handle = _ctypes.dlopen(name, os.RTLD_NOW | os.RTLD_LOCAL)

    def function(self, name: str, argtypes: list | None, restype=c_int) -> _Function:
        """The C function `name`: `argtypes` as ctypes' (None: ints and bytes passed as they
        come), `restype` the result's type (None: void). AttributeError if it is missing."""
        func = _Function((name, self))
        if argtypes is not None:
            func.argtypes = argtypes
        func.restype = restype
        return func
