"""The OCI `linux.seccomp` filter, loaded through libseccomp (Debian's libseccomp2, the library
runc and crun use) through node/runtime/libc.py (_ctypes without the ctypes package): no Python
binding is needed, so it works in any interpreter.

Supported: defaultAction, architectures, and syscall rules by name with actions ALLOW, ERRNO
(errnoRet), KILL, KILL_PROCESS, TRAP, LOG, with argument conditions (`args`: index, value,
valueTwo, op; all of one rule's conditions must hold; value is the mask for SCMP_CMP_MASKED_EQ,
as runc reads it). The filter is loaded last, right before exec, after no_new_privs.
"""
from __future__ import annotations

import errno

from node.runtime import libc as C

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO_BASE = 0x00050000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

_lib = None

# enum scmp_compare (seccomp.h)
COMPARE = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
           "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


class _ArgCmp(C.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", C.c_uint), ("op", C.c_int), ("datum_a", C.c_uint64), ("datum_b", C.c_uint64)]


class _Libseccomp:
    """The functions this module calls, with their C signatures (seccomp.h)."""

    def __init__(self, lib: C.Library) -> None:
        f = lib.function
        self.seccomp_init = f("seccomp_init", [C.c_uint32], C.c_void_p)
        self.seccomp_release = f("seccomp_release", [C.c_void_p], None)
        self.seccomp_load = f("seccomp_load", [C.c_void_p])
        self.seccomp_arch_add = f("seccomp_arch_add", [C.c_void_p, C.c_uint32])
        self.seccomp_arch_resolve_name = f("seccomp_arch_resolve_name", [C.c_char_p], C.c_uint32)
        self.seccomp_syscall_resolve_name = f("seccomp_syscall_resolve_name", [C.c_char_p])
        self.seccomp_rule_add_array = f("seccomp_rule_add_array",
                                        [C.c_void_p, C.c_uint32, C.c_int, C.c_uint, C.POINTER(_ArgCmp)])


def _libseccomp():
    global _lib
    if _lib is None:
        try:
            lib = C.Library("libseccomp.so.2")
        except OSError:
            raise OSError(errno.ENOSYS, "seccomp: libseccomp.so.2 is not installed (Debian: libseccomp2)") from None
        lib = _Libseccomp(lib)
        _lib = lib
    return _lib


def preload() -> None:
    """Import this module and open libseccomp now: after pivot_root or setns into a container's
    mount namespace, the host's Python modules and shared libraries are out of reach."""
    _libseccomp()


def action(name: str, errno_ret: int | None = None) -> int:
    if name == "SCMP_ACT_ALLOW":
        return ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return ACT_ERRNO_BASE | ((errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return ACT_TRAP
    if name == "SCMP_ACT_LOG":
        return ACT_LOG
    raise ValueError(f"seccomp action {name!r} is not supported")


def load(profile: dict | None) -> None:
    if not profile:
        return
    lib = _libseccomp()
    ctx = lib.seccomp_init(action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet")))
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for arch in profile.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token:
                lib.seccomp_arch_add(ctx, token)  # EEXIST for the native one: fine
        for rule in profile.get("syscalls") or []:
            act = action(rule["action"], rule.get("errnoRet"))
            conditions, count = _conditions(rule.get("args") or [])
            for name in rule.get("names") or []:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # unknown on this architecture / libseccomp version
                rc = lib.seccomp_rule_add_array(ctx, act, nr, count, conditions)
                if rc < 0 and -rc != errno.EEXIST:
                    raise OSError(-rc, f"seccomp rule for {name}: {errno.errorcode.get(-rc, rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {errno.errorcode.get(-rc, rc)}")
    finally:
        lib.seccomp_release(ctx)


def _conditions(args: list[dict]):
    """(a struct scmp_arg_cmp array, its length) for one rule's `args`."""
    array = (_ArgCmp * max(1, len(args)))()
    for i, cond in enumerate(args):
        op = COMPARE.get(cond.get("op", ""))
        if op is None:
            raise ValueError(f"seccomp comparison {cond.get('op')!r} is not supported")
        array[i] = _ArgCmp(int(cond["index"]), op, int(cond.get("value", 0)), int(cond.get("valueTwo", 0)))
    return array, len(args)
