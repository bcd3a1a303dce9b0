"""Keys, key sets and token factories for the security unit tests (fakes, never network)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bcconnect.errors import ServiceUnavailable

ISSUER = "https://issuer.test"
AUDIENCE = "urn:bcconnect:fhir"
NOW = 1_800_000_000.0


class FakeKeySource:
    """A JWKS the test can change (a rotation) and whose fetches it can count."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        #: when True the issuer is down
        self.down = False

    async def fetch(self) -> bytes:
        self.fetches += 1
        if self.down:
            raise ServiceUnavailable("issuer down")
        return orjson.dumps({"keys": self.keys})


@dataclass
class SigningKey:
    """A private key with its kid and algorithm, able to sign claims and publish its JWK."""

    kid: str
    algorithm: str
    private: Any = field(repr=False)

    def jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.ECAlgorithm if self.algorithm == "ES256" else jwt.algorithms.RSAAlgorithm
        data: dict[str, Any] = orjson.loads(algo.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = "same", alg: str | None = None) -> str:
        headers = {"kid": self.kid if kid == "same" else kid} if kid is not None else {}
        return jwt.encode(claims, self.private, algorithm=alg or self.algorithm, headers=headers)


def make_key(kid: str, algorithm: str = "ES256") -> SigningKey:
    """A fresh key pair (RSA keys at the smallest size PyJWT accepts, to keep tests fast)."""
    if algorithm == "ES256":
        return SigningKey(kid, algorithm, ec.generate_private_key(ec.SECP256R1()))
    return SigningKey(kid, algorithm, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def good_claims(**overrides: Any) -> dict[str, Any]:
    """Claims that pass every check at :data:`NOW`; ``None`` overrides remove a claim."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "912345678901",
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 300,
        "scope": "user/*.rs",
        "requesting_user": "912345678901",
        "requesting_role": "R8000",
        "requesting_organization": "RL4",
        "reason_for_request": "directcare",
        "client_id": "test-client",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture(scope="session")
def es_key() -> SigningKey:
    """One ES256 key for the session."""
    return make_key("es-1", "ES256")


@pytest.fixture(scope="session")
def rs_key() -> SigningKey:
    """One RS256 key for the session (RSA generation is the slow part)."""
    return make_key("rs-1", "RS256")


@pytest.fixture
def clock() -> Callable[[], float]:
    """A wall clock frozen at NOW."""
    return lambda: NOW


def real_now() -> float:
    """The real time, for the few tests that go through code without an injectable clock."""
    return time.time()
