"""A local token issuer for development and the demo: an ES256 key in the data directory, and its JWKS.

The first call creates ``<data_dir>/security/local-issuer-key.pem`` (owner-only) and the public
``local-issuer-jwks.json`` the server is configured to trust; later calls reuse them. Never use it in
production: whoever can read the key file can mint any token.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bcconnect.config import JwtIssuer
from bcconnect.errors import ConfigError
from bcconnect.security._principal import DIRECT_CARE

LOCAL_ISSUER = "urn:bcconnect:local-issuer"
LOCAL_AUDIENCE = "urn:bcconnect:fhir"
KEY_FILE = "local-issuer-key.pem"
JWKS_FILE = "local-issuer-jwks.json"
#: a placeholder SDS role profile for development tokens
DEFAULT_ROLE = "R8000"


def _public_jwk(private_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    jwk = orjson.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    # RFC 7638 thumbprint as kid: stable for the key, so re-running never changes the JWKS
    thumb_input = orjson.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, option=orjson.OPT_SORT_KEYS)
    kid = jwt.utils.base64url_encode(hashlib.sha256(thumb_input).digest()).decode("ascii")
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


@dataclass(frozen=True, slots=True)
class LocalIssuer:
    """The local issuer: its ``iss``, ``aud``, key files and signing key."""

    issuer: str
    audience: str
    jwks_path: Path
    key_path: Path
    kid: str
    _private_key: ec.EllipticCurvePrivateKey

    def as_jwt_issuer(self) -> JwtIssuer:
        """The ``[[auth.issuers]]`` entry that makes the server trust this issuer."""
        return JwtIssuer(issuer=self.issuer, audience=self.audience, jwks_file=str(self.jwks_path))

    def issue(
        self,
        *,
        scopes: Iterable[str] | str,
        user: str,
        org: str,
        purpose: str = DIRECT_CARE,
        role: str = DEFAULT_ROLE,
        ttl: float = 3600.0,
        patient: str | None = None,
        client_id: str = "bcconnect-local",
        now: float | None = None,
    ) -> str:
        """A signed access token with GP Connect-style claims (``purpose=""`` leaves the purpose out)."""
        issued = time.time() if now is None else now
        scope_text = scopes if isinstance(scopes, str) else " ".join(scopes)
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user,
            "iat": int(issued),
            "nbf": int(issued),
            "exp": int(issued + ttl),
            "jti": str(uuid.uuid4()),
            "scope": scope_text,
            "client_id": client_id,
            "requesting_user": user,
            "requesting_role": role,
            "requesting_organization": org,
        }
        if purpose:
            claims["reason_for_request"] = purpose
        if patient is not None:
            claims["patient"] = patient
        return jwt.encode(claims, self._private_key, algorithm="ES256", headers={"kid": self.kid})


def ensure_local_issuer(data_dir: Path, *, issuer: str = LOCAL_ISSUER, audience: str = LOCAL_AUDIENCE) -> LocalIssuer:
    """Create (first time) or load the local signing key and its JWKS under ``data_dir/security``."""
    folder = Path(data_dir) / "security"
    key_path, jwks_path = folder / KEY_FILE, folder / JWKS_FILE
    folder.mkdir(parents=True, exist_ok=True)
    if key_path.exists():
        try:
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigError("not a PEM private key", file=str(key_path)) from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigError("expected an EC P-256 private key", file=str(key_path))
        private_key = loaded
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # owner-only from the first byte: create with 0600 rather than chmod after writing
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    jwk = _public_jwk(private_key)
    document = orjson.dumps({"keys": [jwk]}, option=orjson.OPT_INDENT_2)
    if not jwks_path.exists() or jwks_path.read_bytes() != document:
        tmp = jwks_path.with_suffix(".tmp")
        tmp.write_bytes(document)
        tmp.replace(jwks_path)
    return LocalIssuer(
        issuer=issuer,
        audience=audience,
        jwks_path=jwks_path,
        key_path=key_path,
        kid=jwk["kid"],
        _private_key=private_key,
    )
