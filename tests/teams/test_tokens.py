"""Bearer tokens: HS256 secrets in rotation, and RS256/ES256 tokens from an identity
provider's JWKS (issuer, audience, kid, algorithm; the key cache and its refresh)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from app.config import Settings
from app.main import create_app
from app.teams import tokens
from tests.support.api import Api
from tests.support.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey

NEW_SECRET = "new-secret-for-the-rotation-test-0123456789"
OLD_SECRET = "old-secret-for-the-rotation-test-0123456789"


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1", "RS256")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", "ES256")


@pytest.fixture
async def idp(rsa_key: SigningKey, ec_key: SigningKey) -> AsyncIterator[JwksServer]:
    server = JwksServer([rsa_key, ec_key])
    await server.start()
    yield server
    await server.stop()


def _verifier(
    server: JwksServer, *, refresh: float = 300.0, cooldown: float = 30.0
) -> tokens.Verifier:
    keys = tokens.JwksKeys(server.url, refresh_seconds=refresh, min_refresh_seconds=cooldown)
    return tokens.Verifier((NEW_SECRET,), keys, ISSUER, AUDIENCE)


def _segment(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


async def _refused(verifier: tokens.Verifier, token: str) -> str:
    """Why the token is refused, in lower case."""
    with pytest.raises(tokens.InvalidToken) as refused:
        await verifier.verify(token)
    return str(refused.value).lower()


async def test_rs256_and_es256_tokens_from_the_jwks_are_accepted(
    idp: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    verifier = _verifier(idp)
    claims = await verifier.verify(rsa_key.token("Ada@Example.com", operator=True))
    assert (claims.subject, claims.email, claims.operator) == (
        "idp|Ada@Example.com",
        "ada@example.com",
        True,
    )
    assert (await verifier.verify(ec_key.token("bob@example.com"))).email == "bob@example.com"
    # One fetch serves both keys and every later token.
    await verifier.verify(rsa_key.token())
    assert idp.fetches == 1
    # HS256 tokens of the service's own secret still verify beside them.
    own = tokens.mint(NEW_SECRET, subject="email:c@example.com", email="c@example.com")
    assert (await verifier.verify(own)).email == "c@example.com"


async def test_tokens_the_provider_did_not_issue_for_us_are_refused(
    idp: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    verifier = _verifier(idp)
    past = int(time.time()) - 3600
    assert "issuer" in (await _refused(verifier, rsa_key.token(iss="https://evil.example/")))
    assert "audience" in (await _refused(verifier, rsa_key.token(aud="another-app")))
    assert "expired" in (await _refused(verifier, ec_key.token(exp=past, iat=past - 60)))
    # Without the claims the checks need, nothing is assumed.
    assert "aud" in (await _refused(verifier, rsa_key.token(aud=None)))
    assert "iss" in (await _refused(verifier, rsa_key.token(iss=None)))
    # A key the provider does not publish.
    stranger = SigningKey("rsa-unknown", "RS256")
    assert "kid" in (await _refused(verifier, stranger.token()))
    # A known kid, signed by another key.
    forged = SigningKey(rsa_key.kid, "RS256")
    assert "signature" in (await _refused(verifier, forged.token()))
    # No kid at all.
    unnamed = jwt.encode(
        {"sub": "x", "email": "x@example.com", "iss": ISSUER, "aud": AUDIENCE, "exp": past + 7200},
        rsa_key.private,
        algorithm="RS256",
    )
    assert "kid" in (await _refused(verifier, unnamed))


async def test_the_algorithm_comes_from_the_key_not_the_token(
    idp: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    verifier = _verifier(idp)
    claims = {
        "sub": "idp|mallory",
        "email": "mallory@example.com",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 600,
        "operator": True,
    }
    # alg "none": no signature at all.
    unsigned = f"{_segment({'alg': 'none', 'kid': rsa_key.kid})}.{_segment(claims)}."
    assert "algorithm" in (await _refused(verifier, unsigned))
    # HS256 keyed with the provider's public key (which anyone can fetch): the classic
    # confusion. HS256 is checked against the service's secrets only.
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _segment({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid})
    signing_input = f"{header}.{_segment(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert "signature" in (await _refused(verifier, confused))
    # An ES256 header naming the RSA key (and the other way round).
    es_on_rsa = jwt.encode(claims, ec_key.private, algorithm="ES256", headers={"kid": rsa_key.kid})
    assert "algorithm" in (await _refused(verifier, es_on_rsa))
    # Algorithms the provider's keys do not sign with.
    rs512 = jwt.encode(claims, rsa_key.private, algorithm="RS512", headers={"kid": rsa_key.kid})
    assert "algorithm" in (await _refused(verifier, rs512))
    assert "malformed" in (await _refused(verifier, "!!!.e30."))


async def test_a_rotated_key_is_fetched_at_most_once_per_cooldown(
    idp: JwksServer, rsa_key: SigningKey
) -> None:
    verifier = _verifier(idp, cooldown=0.5)
    await verifier.verify(rsa_key.token())
    assert idp.fetches == 1
    rotated = SigningKey("rsa-2", "RS256")
    idp.keys = [*idp.keys, rotated]
    # Just after a fetch, a new kid (or a flood of made-up ones) fetches nothing.
    for kid in ("rsa-2", "made-up-1", "made-up-2"):
        key = rotated if kid == "rsa-2" else SigningKey(kid, "ES256")
        await _refused(verifier, key.token())
    assert idp.fetches == 1
    await asyncio.sleep(0.55)
    # The cooldown over, the unknown kid fetches the document once more: the new key.
    # Concurrent requests with it share that one fetch.
    results = await asyncio.gather(*(verifier.verify(rotated.token()) for _ in range(5)))
    assert {claims.email for claims in results} == {"idp-user@example.com"}
    assert idp.fetches == 2
    # A key the provider withdrew is gone with the next fetch.
    idp.keys = [rotated]
    await asyncio.sleep(0.55)
    await _refused(verifier, SigningKey("made-up-3", "RS256").token())
    assert idp.fetches == 3
    assert "kid" in (await _refused(verifier, rsa_key.token()))


async def test_the_held_keys_serve_while_the_provider_is_down(
    idp: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    verifier = _verifier(idp, refresh=0.2, cooldown=0.0)
    await verifier.verify(rsa_key.token())
    await idp.stop()
    await asyncio.sleep(0.25)
    # The copy is stale and the fetch fails: the keys held still verify.
    assert (await verifier.verify(ec_key.token())).email == "idp-user@example.com"
    assert verifier.jwks is not None
    assert verifier.jwks.fetches == 2
    await idp.start()  # same port
    await asyncio.sleep(0.25)
    await verifier.verify(rsa_key.token())
    assert idp.fetches == 2


async def test_without_any_key_the_token_is_refused_with_401_not_500(
    database: Settings, rsa_key: SigningKey
) -> None:
    down = JwksServer([rsa_key])
    await down.start()
    url = down.url
    await down.stop()
    verifier = tokens.Verifier((NEW_SECRET,), tokens.JwksKeys(url), ISSUER, AUDIENCE)
    assert "kid" in (await _refused(verifier, rsa_key.token()))
    settings = database.model_copy(
        update={"auth_jwks_url": url, "auth_issuer": ISSUER, "auth_audience": AUDIENCE}
    )
    transport = httpx.ASGITransport(app=create_app(settings, manage_db=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        headers = {"Authorization": f"Bearer {rsa_key.token()}"}
        usage = await http.post("/v1/usage", json={}, headers=headers)
        assert usage.status_code == 401
        assert usage.json()["error"]["code"] == "UNAUTHENTICATED"
        code = await Api(http).error_code("{ viewer { id } }", token=rsa_key.token())
        assert code == "UNAUTHENTICATED"


async def test_a_provider_token_signs_in_through_the_api(
    database: Settings, idp: JwksServer, ec_key: SigningKey
) -> None:
    settings = database.model_copy(
        update={"auth_jwks_url": idp.url, "auth_issuer": ISSUER, "auth_audience": AUDIENCE}
    )
    transport = httpx.ASGITransport(app=create_app(settings, manage_db=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        api = Api(http)
        data = await api.ok("{ viewer { email } }", token=ec_key.token("Idp@Example.com"))
        assert data["viewer"]["email"] == "idp@example.com"
        wrong = ec_key.token(aud="someone-else")
        assert await api.error_code("{ viewer { id } }", token=wrong) == "UNAUTHENTICATED"


async def test_every_listed_secret_verifies_and_the_first_signs() -> None:
    settings = Settings(auth_jwt_secret=f"{NEW_SECRET}, {OLD_SECRET}")
    assert settings.jwt_secret() == NEW_SECRET
    assert settings.jwt_secrets() == [NEW_SECRET, OLD_SECRET]
    verifier = tokens.verifier(settings)
    assert verifier is tokens.verifier(settings)  # one per configuration (and JWKS cache)
    issued_before = tokens.mint(OLD_SECRET, subject="email:a@example.com", email="a@example.com")
    assert (await verifier.verify(issued_before)).email == "a@example.com"
    issued_now = tokens.mint(
        settings.jwt_secret(), subject="email:b@example.com", email="b@example.com"
    )
    assert (await verifier.verify(issued_now)).email == "b@example.com"
    # Once the old secret is dropped, its tokens stop verifying; the new one's do not.
    after = tokens.verifier(Settings(auth_jwt_secret=NEW_SECRET))
    await _refused(after, issued_before)
    assert (await after.verify(issued_now)).email == "b@example.com"
    # Neither secret: refused, whichever error the last one gave.
    other = tokens.mint("x" * 40, subject="s", email="c@example.com", ttl=timedelta(minutes=1))
    assert "signature" in (await _refused(verifier, other))


def test_a_jwks_url_needs_its_issuer_and_audience() -> None:
    with pytest.raises(ValidationError, match="AUTH_ISSUER and AUTH_AUDIENCE"):
        Settings(auth_jwks_url="https://id.example/jwks.json", auth_issuer=ISSUER)
    with pytest.raises(ValidationError, match="AUTH_ISSUER and AUTH_AUDIENCE"):
        Settings(auth_jwks_url="https://id.example/jwks.json", auth_audience=AUDIENCE)
