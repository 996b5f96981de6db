"""`rename`: a container's name changes; its id, processes and files stay. The name is claimed
under the same lock `create` claims names with, so two renames (or a create) never end with one
name on two containers. A running container on a user network is found by its new name there
at once (its peers' hosts files are rewritten) and no longer by the old one."""
from __future__ import annotations

from node.engine import EngineError, events
from node.engine.options import validate_name
from node.engine.records import Container, name_taken, names_lock


def rename_container(root, container: Container, new_name: str) -> str:
    """Returns the old name."""
    if not new_name.strip():
        raise EngineError("Neither old nor new names may be empty", 1)
    try:
        name = validate_name(new_name)
    except EngineError as e:
        raise EngineError(str(e), 1) from None
    with names_lock(root):
        spec = container.spec
        old = spec.name
        if name == old:
            raise EngineError("Renaming a container with the same name as its current name", 1)
        owner = name_taken(root, name)
        if owner:
            raise EngineError(f'Conflict. The container name "/{name}" is already in use by container '
                              f'"{owner}". You have to remove (or rename) that container to be able to reuse that name.', 1)
        spec.name = name
        container.save_spec(spec)
    if spec.host_config.network_mode not in ("none", "host"):
        from node.network import api
        api.rename(container.root, container.id, name)
    events.container_event(container, "rename", oldName=f"/{old}")
    return old
