"""`-u USER[:GROUP]` resolved against the image's /etc/passwd and /etc/group, as Docker does:
names must exist there; numeric ids need not. A user's primary group comes from passwd, and its
supplementary groups from every group line that lists it."""
from __future__ import annotations

from node.engine import EngineError
from node.engine.runtimes import secure_join


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    try:
        with open(secure_join(rootfs, f"/etc/{name}"), errors="replace") as f:
            return [line.split(":") for line in f.read().splitlines() if line and not line.startswith("#")]
    except OSError:
        return []


def resolve(rootfs: str, spec: str | None) -> dict:
    """-> OCI process.user {uid, gid, additionalGids} plus "home" for HOME."""
    spec = spec or "0"
    user, _, group = spec.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid = gid = None
    home = "/"
    name = None
    for entry in passwd:
        if len(entry) < 6:
            continue
        if entry[0] == user or (user.isdigit() and entry[2] == user):
            try:
                uid, gid = int(entry[2]), int(entry[3])
            except ValueError:
                continue
            name, home = entry[0], entry[5] or "/"
            break
    if uid is None:
        if not user.isdigit():
            raise EngineError(f"unable to find user {user}: no matching entries in passwd file", 125)
        uid, gid = int(user), 0 if not group else None
        if uid == 0:
            home = "/root"
    if group:
        gid = None
        for entry in groups:
            if len(entry) >= 3 and (entry[0] == group or (group.isdigit() and entry[2] == group)):
                gid = int(entry[2])
                break
        if gid is None:
            if not group.isdigit():
                raise EngineError(f"unable to find group {group}: no matching entries in group file", 125)
            gid = int(group)
    extra = []
    if name is not None and not group:
        for entry in groups:
            if len(entry) >= 4 and name in entry[3].split(",") and entry[2].isdigit():
                if int(entry[2]) != gid:
                    extra.append(int(entry[2]))
    return {"uid": uid, "gid": gid or 0, "additionalGids": extra, "home": home}
