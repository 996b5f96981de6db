"""The one adapter between the Engine API and the rest of the node: every call into
node.engine, node.images, node.network (and node.build) is in this package, so a reshaped seam
costs one edit. Everything else in node/api speaks Docker's JSON and calls only ``backend.X``.

    core.py     library errors as moby's statuses; containers, volumes, files in containers
    stores.py   images, registries (pull, push, login), networks
    workers.py  what runs in a launcher worker: start, exec, attached starts, builds
    attaching.py  a running container's attach socket (attach with stdin, resize)

Blocking work (locks, sleeps, registry I/O) runs in threads (``_thread``). Anything that forks
runs in a worker of node.api.launcher (the ``*_in_worker`` functions).
"""
from __future__ import annotations

from node.api.backend.attaching import *  # noqa: F401,F403
from node.api.backend.core import *  # noqa: F401,F403
from node.api.backend.stores import *  # noqa: F401,F403
from node.api.backend.workers import *  # noqa: F401,F403
from node.api.errors import ApiError  # noqa: F401 - handlers raise backend.ApiError
from node.api.backend.lifecycle import *  # noqa: F401,F403,E402
