"""The image store, registries (pull, push, login) and networks."""
from __future__ import annotations

import asyncio
from pathlib import Path

from node.api.backend.core import _mapped, _thread
from node.api.errors import ApiError, bad_request


# -- images -----------------------------------------------------------------------------------

def images(root) -> list:
    from node.images.store import ImageStore
    return _mapped(ImageStore(root).list)


def image_inspect(root, ref: str) -> dict:
    from node.images.store import ImageStore
    return _mapped(ImageStore(root).inspect, ref)


def image_tag(root, source: str, target: str) -> None:
    from node.images.store import ImageStore
    from oci.reference import InvalidReference
    try:
        _mapped(ImageStore(root).tag, source, target)
    except InvalidReference as e:
        raise bad_request(str(e)) from None


async def image_remove(root, ref: str, force: bool) -> list[str]:
    from node.engine.usage import images_in_use
    from node.images.store import ImageStore
    return await _thread(lambda: ImageStore(root).remove(ref, force=force, in_use=images_in_use(Path(root))))


async def pull(root, ref: str, platform: str | None, out) -> None:
    """Pull ``ref``; ``out.write`` receives the pull's text lines (from a thread)."""
    from node.images.pull import pull_image
    from oci.reference import InvalidReference
    try:
        await _thread(pull_image, root, ref, platform, False, out)
    except InvalidReference as e:
        raise bad_request(str(e)) from None


async def push(root, ref: str, out) -> str:
    from node.images.push import push_image
    return str(await _thread(push_image, root, ref, False, out))


async def save(root, names: list[str], path: Path) -> None:
    from node.images.archive import save as save_archive
    await _thread(save_archive, root, names, path)


async def load(root, path: Path) -> list[str]:
    from node.images.archive import load as load_archive
    return await _thread(load_archive, root, path)


def scratch_dir(root) -> Path:
    """Where uploads are spooled: the store's ingest dir, on the same disk as the blobs."""
    d = Path(root) / "images" / "content" / "ingest"
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- networks ---------------------------------------------------------------------------------

def networks(root) -> list[dict]:
    from node.network import api, networks as nets
    from node.network.state import Store
    _mapped(api.reclaim, Path(root))
    store = Store(Path(root))
    return [nets.inspect(store, n) for n in store.networks()]


def network(root, ref: str) -> dict:
    from node.network import networks as nets
    from node.network.state import Store
    store = Store(Path(root))
    return _mapped(lambda: nets.inspect(store, nets.find(store, ref, create_default=False)))


async def network_create(root, name: str, subnet: str | None, gateway: str | None) -> dict:
    from node.network import networks as nets
    from node.network.state import Store
    store = Store(Path(root))
    net = await _thread(nets.create, store, name, subnet, gateway)
    return nets.inspect(store, net)


async def network_remove(root, ref: str) -> str:
    from node.network import api, networks as nets
    from node.network.state import Store
    await _thread(api.reclaim, Path(root))
    net = await _thread(nets.remove, Store(Path(root)), ref)
    return net.id


async def network_connect(root, container_ref: str, network_name: str, aliases: list[str], ip) -> None:
    from node.network import api
    await _thread(api.connect, Path(root), container_ref, network_name, aliases, ip)


async def network_disconnect(root, container_ref: str, network_name: str) -> None:
    from node.network import api
    await _thread(api.disconnect, Path(root), container_ref, network_name)


# -- registry logins (docker login through the engine) ----------------------------------------

async def login(server: str, username: str, password: str) -> None:
    """Check the credentials against the registry, then keep them where node.images reads them."""
    from node.images import auth
    from node.images.client import RegistryClient

    def work():
        host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if host in ("index.docker.io", "registry-1.docker.io", ""):
            host = "docker.io"
        creds = auth.Credentials(username, password)

        async def verify():
            async with RegistryClient(host, credentials=creds) as client:
                await client.ping()
        asyncio.run(verify())
        auth.store(host, creds)
    try:
        await _thread(work)
    except ApiError as e:
        raise ApiError(401, f"login attempt to {server} failed: {e.message}") from None


async def image_prune(root, everything: bool) -> list[str]:
    """Remove dangling images (or, ``everything``, each one no container uses); docker's lines."""
    from node.engine.usage import images_in_use
    from node.images.store import ImageStore

    def work():
        store, in_use, lines = ImageStore(root), images_in_use(Path(root)), []
        for image in store.list():
            if image.id in in_use or (image.repo_tags and not everything):
                continue
            lines += store.remove(image.id, force=True, in_use=in_use)
        return lines
    return await _thread(work)
