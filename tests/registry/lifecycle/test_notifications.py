"""Webhooks: distribution's envelope to a local receiver that goes away and comes back (every
event arrives, in order per repository), and a hanging receiver never slows a push."""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from registry.app import create_app
from tests.helpers import free_port
from tests.registry.oci_client import push_image


class Receiver:
    def __init__(self, port: int) -> None:
        self.port, self.events, self.hang, self.runner = port, [], False, None
        self.content_types: set[str] = set()
        self.auth: set[str] = set()

    async def _post(self, request: web.Request) -> web.Response:
        if self.hang:
            await asyncio.sleep(3600)
        self.content_types.add(request.content_type)
        self.auth.add(request.headers.get("Authorization", ""))
        self.events.extend((await request.json())["events"])
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self._post)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()


async def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for events"
        await asyncio.sleep(0.05)


async def test_events_arrive_in_order_after_the_receiver_comes_back(aiohttp_client, config):
    port = free_port()
    receiver = Receiver(port)
    await receiver.start()
    config.notifications = {"endpoints": [
        {"name": "ci", "url": f"http://127.0.0.1:{port}/events", "headers": {"Authorization": ["Bearer ci-token"]},
         "timeout": "1s"},
        {"name": "team-only", "url": f"http://127.0.0.1:{port}/events", "actions": ["delete"], "repositories": "team/*"},
    ]}
    client = await aiohttp_client(create_app(config))
    first, _ = await push_image(client, "team/web", "v1")
    await client.get("/v2/team/web/manifests/v1")
    await _wait(lambda: len(receiver.events) >= 2)
    push, pull = receiver.events[:2]
    assert (push["action"], push["target"]["repository"], push["target"]["tag"], push["target"]["digest"]) == \
        ("push", "team/web", "v1", first)
    assert set(push) >= {"id", "timestamp", "action", "target", "request", "actor", "source"}
    assert push["request"]["method"] == "PUT" and push["request"]["addr"]
    assert pull["action"] == "pull" and pull["target"]["digest"] == first
    assert receiver.content_types == {"application/vnd.docker.distribution.events.v1+json"}
    assert "Bearer ci-token" in receiver.auth

    await receiver.stop()  # the receiver is gone: pushes go on, events wait in the index
    pushed: dict[str, list[str]] = {"team/web": [first], "other/app": []}
    started = time.monotonic()
    for i in range(3):
        for repo in pushed:
            digest, _ = await push_image(client, repo, f"t{i}")
            pushed[repo].append(digest)
    assert (await client.delete(f"/v2/team/web/manifests/{pushed['team/web'][1]}")).status == 202
    assert time.monotonic() - started < 15
    await asyncio.sleep(1.5)  # a few failed deliveries, backing off
    receiver.events.clear()
    await receiver.start()
    await _wait(lambda: sum(e["action"] == "delete" for e in receiver.events) >= 2)
    for repo, digests in pushed.items():
        seen = [e["target"]["digest"] for e in receiver.events if e["action"] == "push" and e["target"]["repository"] == repo]
        assert seen == (digests[1:] if repo == "team/web" else digests), repo
    await receiver.stop()


async def test_a_hanging_endpoint_never_slows_a_push(aiohttp_client, tmp_path):
    from registry.config import RegistryConfig

    config = RegistryConfig(data_dir=str(tmp_path / "data")).finish()  # the backend does not matter here
    port = free_port()
    receiver = Receiver(port)
    receiver.hang = True
    await receiver.start()
    config.notifications = {"endpoints": [{"name": "slow", "url": f"http://127.0.0.1:{port}/events", "timeout": "30s"}]}
    client = await aiohttp_client(create_app(config))
    await push_image(client, "h", "warm")
    started = time.monotonic()
    for i in range(5):
        await push_image(client, "h", f"t{i}")
    assert time.monotonic() - started < 10
    await receiver.stop()
