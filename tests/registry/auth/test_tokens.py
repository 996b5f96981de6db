"""Token mode: the Docker token flow, and every way a token can be wrong."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from registry.auth import AUTH
from tests.registry.auth_helpers import Authed, auth_config, basic, bearer, start, token
from tests.registry.oci_client import push_image


@pytest.fixture
async def reg(aiohttp_client, tmp_path):
    return await start(aiohttp_client, auth_config(tmp_path))


async def _error(r, status: int, code: str) -> dict:
    assert r.status == status, await r.text()
    body = await r.json()
    assert body["errors"][0]["code"] == code
    return body["errors"][0]


async def test_challenge_on_base_and_on_resources(reg):
    app, client = reg
    r = await client.get("/v2/")
    await _error(r, 401, "UNAUTHORIZED")
    host = f"{client.server.host}:{client.server.port}"
    assert r.headers["WWW-Authenticate"] == f'Bearer realm="http://{host}/token",service="dockyard"'
    r = await client.get("/v2/team-a/app/manifests/latest")
    await _error(r, 401, "UNAUTHORIZED")
    assert 'scope="repository:team-a/app:pull"' in r.headers["WWW-Authenticate"]
    r = await client.post("/v2/team-a/app/blobs/uploads/")
    assert 'scope="repository:team-a/app:pull,push"' in r.headers["WWW-Authenticate"]
    r = await client.delete("/v2/team-a/app/manifests/sha256:" + "0" * 64)
    assert 'scope="repository:team-a/app:delete"' in r.headers["WWW-Authenticate"]
    r = await client.get("/v2/_catalog")
    assert 'scope="registry:catalog:*"' in r.headers["WWW-Authenticate"]
    r = await client.head("/v2/team-a/app/manifests/latest")
    assert r.status == 401 and await r.read() == b""
    r = await client.get("/v2/", headers={"Host": 'x",error="y'})
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="http://localhost/token",service="dockyard"'


async def test_token_contents(reg):
    app, client = reg
    r = await client.get("/token", params={"service": "dockyard", "scope": "repository:team-a/app:pull,push,delete",
                                           "account": "alice"}, headers=basic("alice", "alicepw"))
    assert r.status == 200
    assert r.headers["Cache-Control"] == "no-store"
    body = await r.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert body["issued_at"].endswith("Z") and "refresh_token" not in body
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256" and header["kid"] == app[AUTH].tokens.kid
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["iss"] == "dockyard-token-issuer" and claims["sub"] == "alice" and claims["aud"] == "dockyard"
    assert claims["nbf"] <= claims["iat"] < claims["exp"] == claims["iat"] + 300 and claims["jti"]
    assert claims["access"] == [{"type": "repository", "name": "team-a/app", "actions": ["pull", "push", "delete"]}]


async def test_push_and_pull_with_granted_token(reg):
    app, client = reg
    t = await token(client, "alice", "alicepw", "repository:team-a/app:pull,push")
    digest, _ = await push_image(Authed(client, bearer(t)), "team-a/app", "v1")
    r = await client.get("/v2/team-a/app/manifests/v1", headers=bearer(t))
    assert r.status == 200 and r.headers["Docker-Content-Digest"] == digest
    r = await client.get("/v2/", headers=bearer(t))
    assert r.status == 200


async def test_only_the_granted_subset(reg):
    app, client = reg
    t = await token(client, "root", "rootpw", "repository:team-a/app:pull,push")
    await push_image(Authed(client, bearer(t)), "team-a/app", "v1")
    # reader asked for pull and push on team-a/app, holds only pull
    t = await token(client, "reader", "readerpw", "repository:team-a/app:pull,push", "repository:team-b/x:pull")
    claims = jwt.decode(t, options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "team-a/app", "actions": ["pull"]},
                                {"type": "repository", "name": "team-b/x", "actions": []}]
    r = await client.get("/v2/team-a/app/manifests/v1", headers=bearer(t))
    assert r.status == 200
    r = await client.post("/v2/team-a/app/blobs/uploads/", headers=bearer(t))
    err = await _error(r, 403, "DENIED")
    assert err["message"] == "requested access to the resource is denied"
    r = await client.get("/v2/team-b/x/tags/list", headers=bearer(t))
    await _error(r, 403, "DENIED")
    # a repository the token does not mention: a fresh challenge for it (not a final refusal)
    r = await client.get("/v2/team-c/y/tags/list", headers=bearer(t))
    await _error(r, 401, "UNAUTHORIZED")
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert 'scope="repository:team-c/y:pull"' in r.headers["WWW-Authenticate"]


async def test_personal_namespace_and_anonymous_public_pull(reg):
    app, client = reg
    t = await token(client, "bob", "bobpw", "repository:bob/tool:pull,push", "repository:alice/tool:pull,push",
                    "repository:public/base:push")
    claims = jwt.decode(t, options={"verify_signature": False})
    assert [e["actions"] for e in claims["access"]] == [["pull", "push"], [], []]
    root = await token(client, "root", "rootpw", "repository:public/base:pull,push")
    await push_image(Authed(client, bearer(root)), "public/base", "latest")
    anon = await token(client, None, None, "repository:public/base:pull,push", "repository:team-a/app:pull")
    claims = jwt.decode(anon, options={"verify_signature": False})
    assert claims["sub"] == ""
    assert [e["actions"] for e in claims["access"]] == [["pull"], []]
    assert (await client.get("/v2/public/base/manifests/latest", headers=bearer(anon))).status == 200
    # public pulls also work with no token at all (curl), pushes never do
    assert (await client.get("/v2/public/base/manifests/latest")).status == 200
    assert (await client.post("/v2/public/base/blobs/uploads/")).status == 401


def _forge(claims: dict, key, alg: str = "ES256", kid: str | None = None) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid} if kid else None)


def _good_claims(**over) -> dict:
    now = int(time.time())
    claims = {"iss": "dockyard-token-issuer", "sub": "mallory", "aud": "dockyard", "iat": now, "nbf": now - 1,
              "exp": now + 300, "jti": "x",
              "access": [{"type": "repository", "name": "team-a/app", "actions": ["pull", "push", "delete"]}]}
    claims.update(over)
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_bad_tokens_are_refused(reg):
    app, client = reg
    svc = app[AUTH]
    key, kid = svc.tokens.key, svc.tokens.kid
    now = int(time.time())
    other_key = ec.generate_private_key(ec.SECP256R1())
    good = _forge(_good_claims(), key, kid=kid)
    h, p, s = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["access"][0]["name"] = "team-b/app"
    tampered = f"{h}.{_b64(json.dumps(payload).encode())}.{s}"
    none_token = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': kid}).encode())}.{_b64(json.dumps(_good_claims()).encode())}."
    cases = {
        "expired": _forge(_good_claims(iat=now - 1000, nbf=now - 1000, exp=now - 600), key, kid=kid),
        "not yet valid": _forge(_good_claims(nbf=now + 600), key, kid=kid),
        "wrong signature": _forge(_good_claims(), other_key, kid=kid),
        "wrong service": _forge(_good_claims(aud="other-registry"), key, kid=kid),
        "refresh audience": _forge(_good_claims(aud="dockyard#refresh"), key, kid=kid),
        "wrong issuer": _forge(_good_claims(iss="someone-else"), key, kid=kid),
        "no exp": _forge({k: v for k, v in _good_claims().items() if k != "exp"}, key, kid=kid),
        "tampered claims": tampered,
        "alg none": none_token,
        "wrong kid": _forge(_good_claims(), key, kid="AAAA:BBBB"),
        "garbage": "not.a.token",
    }
    r = await client.get("/v2/team-a/app/tags/list", headers=bearer(good))
    assert r.status == 404, "the control token must work"  # NAME_UNKNOWN: authorised, nothing pushed
    for what, bad in cases.items():
        for method, path in (("GET", "/v2/team-a/app/tags/list"), ("POST", "/v2/team-a/app/blobs/uploads/"),
                             ("GET", "/v2/")):
            r = await client.request(method, path, headers=bearer(bad))
            assert r.status == 401, (what, method, path, r.status)
            body = await r.json()
            assert body["errors"][0]["code"] == "UNAUTHORIZED", what
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], what


async def test_hs256_with_the_public_key_is_refused(reg):
    app, client = reg
    from cryptography.hazmat.primitives import serialization

    pub = app[AUTH].tokens.public_key.public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": app[AUTH].tokens.kid}).encode())
    body = _b64(json.dumps(_good_claims()).encode())
    import hashlib
    import hmac
    sig = _b64(hmac.new(pub, f"{header}.{body}".encode(), hashlib.sha256).digest())
    r = await client.get("/v2/team-a/app/tags/list", headers=bearer(f"{header}.{body}.{sig}"))
    await _error(r, 401, "UNAUTHORIZED")


async def test_wrong_credentials_and_service_at_the_token_endpoint(reg):
    app, client = reg
    r = await client.get("/token", params={"service": "dockyard"}, headers=basic("alice", "wrong"))
    await _error(r, 401, "UNAUTHORIZED")
    r = await client.get("/token", params={"service": "dockyard"}, headers=basic("nobody", "x"))
    await _error(r, 401, "UNAUTHORIZED")
    r = await client.get("/token", params={"service": "elsewhere"}, headers=basic("alice", "alicepw"))
    assert r.status == 400


async def test_oauth_password_and_refresh_grants(reg):
    app, client = reg
    r = await client.post("/token", data={"grant_type": "password", "username": "alice", "password": "alicepw",
                                          "service": "dockyard", "client_id": "docker", "access_type": "offline",
                                          "scope": "repository:team-a/app:pull,push"})
    assert r.status == 200, await r.text()
    body = await r.json()
    refresh = body["refresh_token"]
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["access"][0]["actions"] == ["pull", "push"]
    # the refresh token is not an access token
    r = await client.get("/v2/", headers=bearer(refresh))
    assert r.status == 401
    r = await client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh,
                                          "service": "dockyard", "scope": "repository:team-a/app:pull"})
    assert r.status == 200
    t = (await r.json())["access_token"]
    assert jwt.decode(t, options={"verify_signature": False})["sub"] == "alice"
    # an access token is not a refresh token
    r = await client.post("/token", data={"grant_type": "refresh_token", "refresh_token": t, "service": "dockyard"})
    await _error(r, 401, "UNAUTHORIZED")
    # a password change ends the refresh token
    from registry.auth.passwords import hash_password
    time.sleep(1.1)
    await app[AUTH].queries.set_password("alice", hash_password("new", cost=4))
    r = await client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh, "service": "dockyard"})
    await _error(r, 401, "UNAUTHORIZED")
    r = await client.post("/token", data={"grant_type": "password", "username": "alice", "password": "alicepw"})
    await _error(r, 401, "UNAUTHORIZED")
    r = await client.post("/token", data={"grant_type": "client_credentials"})
    assert r.status == 400


async def test_offline_token_on_get(reg):
    app, client = reg
    r = await client.get("/token", params={"service": "dockyard", "offline_token": "true"},
                         headers=basic("alice", "alicepw"))
    assert "refresh_token" in await r.json()
    r = await client.get("/token", params={"service": "dockyard", "offline_token": "true"})
    assert "refresh_token" not in await r.json()  # anonymous gets no refresh token


async def test_catalog_filtered_by_pull_rights(reg):
    app, client = reg
    root = Authed(client, basic("root", "rootpw"))
    for name in ("team-a/one", "team-a/two", "bob/tool", "public/base", "secret/x"):
        await push_image(root, name, "latest", layers=1)
    t = await token(client, "root", "rootpw", "registry:catalog:*")
    r = await client.get("/v2/_catalog", headers=bearer(t))
    assert (await r.json())["repositories"] == ["bob/tool", "public/base", "secret/x", "team-a/one", "team-a/two"]
    t = await token(client, "alice", "alicepw", "registry:catalog:*")
    r = await client.get("/v2/_catalog", headers=bearer(t))
    assert (await r.json())["repositories"] == ["public/base", "team-a/one", "team-a/two"]
    r = await client.get("/v2/_catalog?n=2", headers=bearer(t))
    assert (await r.json())["repositories"] == ["public/base", "team-a/one"]
    assert r.headers["Link"] == '</v2/_catalog?n=2&last=team-a%2Fone>; rel="next"'
    t = await token(client, "bob", "bobpw", "registry:catalog:*")
    r = await client.get("/v2/_catalog", headers=bearer(t))
    assert (await r.json())["repositories"] == ["bob/tool", "public/base"]
    anon = await token(client, None, None, "registry:catalog:*")
    r = await client.get("/v2/_catalog", headers=bearer(anon))
    assert (await r.json())["repositories"] == ["public/base"]
    # a token without the catalog scope
    t = await token(client, "alice", "alicepw", "repository:team-a/one:pull")
    r = await client.get("/v2/_catalog", headers=bearer(t))
    assert r.status == 401


async def test_mount_needs_pull_on_the_source(reg):
    app, client = reg
    root = Authed(client, basic("root", "rootpw"))
    from tests.registry.oci_client import blob, push_blob

    data, digest = blob(500)
    await push_blob(root, "secret/x", data)
    t = await token(client, "bob", "bobpw", "repository:bob/tool:pull,push", "repository:secret/x:pull")
    r = await client.post(f"/v2/bob/tool/blobs/uploads/?mount={digest}&from=secret/x", headers=bearer(t))
    assert r.status == 202, "no pull on the source: an ordinary upload session instead of a mount"
    assert (await client.head(f"/v2/bob/tool/blobs/{digest}", headers=bearer(t))).status == 404
    await push_blob(root, "public/base", data)
    t = await token(client, "bob", "bobpw", "repository:bob/tool:pull,push", "repository:public/base:pull")
    r = await client.post(f"/v2/bob/tool/blobs/uploads/?mount={digest}&from=public/base", headers=bearer(t))
    assert r.status == 201


def test_rsa_keys_sign_rs256_and_keys_persist(tmp_path):
    from registry.auth.tokens import TokenService

    path = tmp_path / "auth" / "key.pem"
    svc = TokenService(path, "rsa", "iss", "svc", 60, 600, 600)
    assert svc.alg == "RS256" and oct(path.stat().st_mode & 0o777) == "0o600"
    t, _, _ = svc.issue_access("alice", [])
    again = TokenService(path, "ec", "iss", "svc", 60, 600, 600)  # an existing key wins over key_type
    assert again.alg == "RS256" and again.kid == svc.kid
    assert again.verify_access(t)["sub"] == "alice"
    other = TokenService(tmp_path / "other.pem", "ec", "iss", "svc", 60, 600, 600)
    with pytest.raises(Exception, match="not signed by this registry"):
        other.verify_access(t)


def test_a_remembered_token_still_expires(tmp_path, monkeypatch):
    from registry.auth import tokens
    from registry.auth.tokens import TokenError, TokenService

    monkeypatch.setattr(tokens, "LEEWAY", 0)
    svc = TokenService(tmp_path / "key.pem", "ec", "iss", "svc", 1, 600, 600)
    t, _, _ = svc.issue_access("alice", [])
    assert svc.verify_access(t)["sub"] == "alice"
    assert svc.verify_access(t)["sub"] == "alice"  # from the cache
    time.sleep(1.2)
    with pytest.raises(TokenError, match="expired"):
        svc.verify_access(t)


def test_key_rotation_keeps_old_tokens_until_the_old_key_is_dropped(tmp_path):
    from registry.auth.tokens import TokenError, TokenService

    old = TokenService(tmp_path / "old.pem", "rsa", "iss", "svc", 60, 600, 600)
    access, _, _ = old.issue_access("alice", [])
    refresh = old.issue_refresh("alice")
    new = TokenService(tmp_path / "new.pem", "ec", "iss", "svc", 60, 600, 600, previous_keys=(str(tmp_path / "old.pem"),))
    assert new.alg == "ES256" and new.verify_access(access)["sub"] == "alice"
    assert new.verify_refresh(refresh)["sub"] == "alice"
    fresh, _, _ = new.issue_access("bob", [])
    assert jwt.get_unverified_header(fresh)["kid"] == new.kid != old.kid
    with pytest.raises(TokenError):
        old.verify_access(fresh)
    alone = TokenService(tmp_path / "new.pem", "ec", "iss", "svc", 60, 600, 600)
    with pytest.raises(TokenError, match="not signed by this registry"):
        alone.verify_refresh(refresh)
    # an old key's kid with another algorithm is still refused
    header = _b64(json.dumps({"alg": "ES256", "kid": old.kid}).encode())
    with pytest.raises(TokenError):
        new.verify_access(f"{header}.{access.split('.')[1]}.{access.split('.')[2]}")
