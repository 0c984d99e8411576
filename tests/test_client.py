"""The Python client against a live server: typed models in and out, problem details on errors."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from apiclient import ADMIN, Api, free_port

from ferryman.catalog import models as m
from ferryman.client import ApiError, Client, SyncClient, TransportError


def url(api: Api) -> str:
    return f"http://127.0.0.1:{api.port}"


def test_typed_workflow_and_errors(server: Api, tmp_path):
    async def run() -> None:
        async with Client(url(server), ADMIN) as c:
            art = await c.create_artifact(m.ArtifactCreate(name="fw"))
            assert isinstance(art, m.Artifact) and art.name == "fw"
            ver = await c.create_version(art.id, m.VersionCreate(version="1.0.0"))
            data = os.urandom(10_000)
            b = await c.create_binary(
                ver.id, m.BinaryCreate(target="x86_64-linux-gnu", size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )
            assert isinstance(b, m.Binary) and b.state == "uploadable" and b.part_count == 1
            await c.put_part(b.id, 1, data, hashlib.sha256(data).hexdigest())
            parts = await c.get_parts(b.id)
            assert parts.missing == [] and parts.parts[0].size == len(data)
            await c.patch_binary(b.id, m.BinaryPatch(state="hashable"))
            done = await c.wait_state(b.id, {"signable"})
            assert done.state == "signable"
            with pytest.raises(ApiError) as e:
                await c.create_artifact(m.ArtifactCreate(name="fw"))
            assert e.value.status == 409 and "name" in e.value.errors
            with pytest.raises(ApiError) as e:
                await c.post("/api/v1/artifacts", {"name": 5})
            assert e.value.status == 422 and e.value.errors == {"name": ["Expected `str`, got `int`"]}
            names = [a["name"] async for a in c.pages("/api/v1/artifacts")]
            assert names == ["fw"]
            dest = tmp_path / "copy.bin"
            await c.download(f"/api/v1/binaries/{b.id}/content", dest, sha256=b.sha256, size=b.size)
            assert dest.read_bytes() == data

    asyncio.run(run())


def test_sync_client(server: Api):
    c = SyncClient(url(server), ADMIN)
    ch = c.create_channel(m.ChannelCreate(name="stable"))
    assert isinstance(ch, m.Channel) and ch.latest_release_id is None
    assert [x["name"] for x in c.pages("/api/v1/channels")] == ["stable"]
    with pytest.raises(ApiError) as e:
        SyncClient(url(server), "bad").get("/api/v1/channels")
    assert e.value.status == 401


def test_unreachable_server():
    with pytest.raises(TransportError, match="cannot reach"):
        SyncClient(f"http://127.0.0.1:{free_port()}", ADMIN).get("/api/v1/channels")
