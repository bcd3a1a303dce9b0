"""Bearer JWT verification: signature, issuer, audience, expiry, not-before, algorithms, key rotation."""

from __future__ import annotations

import json
from collections.abc import Callable

import jwt
import pytest

from bcconnect.errors import NotAuthenticated, ServiceUnavailable
from bcconnect.security import Authenticator, JwksCache, TokenVerifier, TrustedIssuer, bearer_token

from .conftest import AUDIENCE, ISSUER, NOW, FakeKeySource, SigningKey, good_claims, make_key

pytestmark = pytest.mark.anyio


def verifier_for(source: FakeKeySource, clock: Callable[[], float], **cache_kw: float) -> TokenVerifier:
    cache = JwksCache(source, clock=lambda: 0.0, **cache_kw)
    return TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], leeway_seconds=30, clock=clock)


@pytest.mark.parametrize("key_name", ["es_key", "rs_key"])
async def test_a_good_token_verifies_with_es256_and_rs256(
    key_name: str, request: pytest.FixtureRequest, clock: Callable[[], float]
) -> None:
    """Both accepted algorithms verify against the published key."""
    key: SigningKey = request.getfixturevalue(key_name)
    verifier = verifier_for(FakeKeySource(key.jwk()), clock)
    trusted, claims = await verifier.verify(key.sign(good_claims()))
    assert trusted.issuer == ISSUER
    assert claims["requesting_organization"] == "RL4"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(NOW) - 31}, "expired"),
        ({"nbf": int(NOW) + 31}, "not valid yet"),
        ({"iat": int(NOW) + 31}, "issued in the future"),
        ({"exp": None}, "no exp"),
        ({"exp": "tomorrow"}, "not a number"),
        ({"aud": "someone-else"}, "audience"),
        ({"aud": None}, "audience"),
        ({"iss": "https://evil.test"}, "issuer"),
        ({"iss": None}, "issuer"),
    ],
)
async def test_bad_claims_are_refused(
    es_key: SigningKey, clock: Callable[[], float], overrides: dict[str, object], message: str
) -> None:
    """Expiry, not-before, issued-at, audience and issuer are each checked."""
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    with pytest.raises(NotAuthenticated, match=message):
        await verifier.verify(es_key.sign(good_claims(**overrides)))


async def test_the_leeway_tolerates_small_clock_skew(es_key: SigningKey, clock: Callable[[], float]) -> None:
    """A token expired 29 s ago or valid from 29 s ahead still passes (leeway 30 s)."""
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    await verifier.verify(es_key.sign(good_claims(exp=int(NOW) - 29, nbf=int(NOW) + 29)))


async def test_a_forged_signature_is_refused(es_key: SigningKey, clock: Callable[[], float]) -> None:
    """A token signed by another key under the trusted key's kid fails the signature check."""
    forger = make_key(es_key.kid, "ES256")
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    with pytest.raises(NotAuthenticated, match="signature"):
        await verifier.verify(forger.sign(good_claims()))


async def test_a_tampered_payload_is_refused(es_key: SigningKey, clock: Callable[[], float]) -> None:
    """Changing the payload of a signed token (wider scopes) breaks its signature."""
    token = es_key.sign(good_claims())
    header, _, signature = token.split(".")
    payload = jwt.utils.base64url_encode(json.dumps(good_claims(scope="system/*.cruds")).encode()).decode()
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    with pytest.raises(NotAuthenticated, match="signature"):
        await verifier.verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_unsafe_algorithms_are_refused(es_key: SigningKey, clock: Callable[[], float], alg: str) -> None:
    """alg=none and shared-secret HMAC (the key-confusion attack) never verify."""
    key = "" if alg == "none" else "a-shared-secret-that-is-long-enough-for-hs256"
    token = jwt.encode(good_claims(), key, algorithm=alg if alg != "none" else "none", headers={"kid": es_key.kid})
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    with pytest.raises(NotAuthenticated, match="RS256 or ES256"):
        await verifier.verify(token)


async def test_an_algorithm_that_does_not_match_the_key_is_refused(
    es_key: SigningKey, rs_key: SigningKey, clock: Callable[[], float]
) -> None:
    """An RS256 token pointing at an ES256 key's kid is refused before any signature maths."""
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    with pytest.raises(NotAuthenticated, match="algorithm"):
        await verifier.verify(rs_key.sign(good_claims(), kid=es_key.kid))


async def test_an_unknown_kid_refetches_once_and_finds_a_rotated_key(clock: Callable[[], float]) -> None:
    """Key rotation: the issuer publishes a new key; the first token with its kid triggers one refetch."""
    old, new = make_key("old"), make_key("new")
    source = FakeKeySource(old.jwk())
    moment = [0.0]
    cache = JwksCache(source, ttl_seconds=300, min_refetch_seconds=10, clock=lambda: moment[0])
    verifier = TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], clock=clock)
    await verifier.verify(old.sign(good_claims()))
    assert source.fetches == 1
    source.keys.append(new.jwk())
    moment[0] = 60.0
    await verifier.verify(new.sign(good_claims()))
    assert source.fetches == 2
    await verifier.verify(new.sign(good_claims()))
    assert source.fetches == 2  # cached now


async def test_unknown_kids_cannot_force_a_refetch_storm(es_key: SigningKey, clock: Callable[[], float]) -> None:
    """Within min_refetch_seconds, made-up kids are refused without fetching the JWKS again."""
    source = FakeKeySource(es_key.jwk())
    moment = [0.0]
    cache = JwksCache(source, ttl_seconds=300, min_refetch_seconds=10, clock=lambda: moment[0])
    verifier = TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], clock=clock)
    await verifier.verify(es_key.sign(good_claims()))
    moment[0] = 5.0
    for n in range(20):
        with pytest.raises(NotAuthenticated, match="key this server does not know"):
            await verifier.verify(es_key.sign(good_claims(), kid=f"made-up-{n}"))
    assert source.fetches == 1


async def test_a_key_removed_by_the_issuer_stops_verifying_after_the_ttl(
    es_key: SigningKey, clock: Callable[[], float]
) -> None:
    """After ttl_seconds the set is fetched again; a key the issuer dropped no longer verifies."""
    replacement = make_key("next")
    source = FakeKeySource(es_key.jwk())
    moment = [0.0]
    cache = JwksCache(source, ttl_seconds=300, min_refetch_seconds=10, clock=lambda: moment[0])
    verifier = TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], clock=clock)
    await verifier.verify(es_key.sign(good_claims()))
    source.keys = [replacement.jwk()]
    moment[0] = 301.0
    with pytest.raises(NotAuthenticated, match="does not know"):
        await verifier.verify(es_key.sign(good_claims()))
    await verifier.verify(replacement.sign(good_claims()))


async def test_an_issuer_outage_keeps_the_keys_we_have(es_key: SigningKey, clock: Callable[[], float]) -> None:
    """A failed refresh of a stale set keeps serving the fetched keys rather than refusing everyone."""
    source = FakeKeySource(es_key.jwk())
    moment = [0.0]
    cache = JwksCache(source, ttl_seconds=300, min_refetch_seconds=10, clock=lambda: moment[0])
    verifier = TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], clock=clock)
    await verifier.verify(es_key.sign(good_claims()))
    source.down = True
    moment[0] = 400.0
    await verifier.verify(es_key.sign(good_claims()))
    assert source.fetches == 2


async def test_no_key_set_yet_is_503_and_retried_no_faster_than_the_interval(
    es_key: SigningKey, clock: Callable[[], float]
) -> None:
    """Issuer down at start: 503 (not 401), one fetch per min_refetch_seconds, then recovery."""
    source = FakeKeySource(es_key.jwk())
    source.down = True
    moment = [0.0]
    cache = JwksCache(source, ttl_seconds=300, min_refetch_seconds=10, clock=lambda: moment[0])
    verifier = TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], clock=clock)
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            await verifier.verify(es_key.sign(good_claims()))
    assert source.fetches == 1
    source.down = False
    moment[0] = 11.0
    await verifier.verify(es_key.sign(good_claims()))
    assert source.fetches == 2


async def test_a_token_without_kid_uses_the_only_key(es_key: SigningKey, clock: Callable[[], float]) -> None:
    """No kid is fine when the set holds exactly one suitable key."""
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    await verifier.verify(es_key.sign(good_claims(), kid=None))


@pytest.mark.parametrize(
    "header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt", "Bearer a.b", "Bearer " + "a." * 9000]
)
def test_bearer_token_refuses_missing_and_malformed_headers(header: str | None) -> None:
    """Only 'Bearer <three dot-separated parts>' is taken as a token."""
    with pytest.raises(NotAuthenticated):
        bearer_token(header)


async def test_garbage_that_looks_like_a_jwt_is_refused(es_key: SigningKey, clock: Callable[[], float]) -> None:
    """Three dot-separated parts that are not base64 JSON give 401, not a crash."""
    verifier = verifier_for(FakeKeySource(es_key.jwk()), clock)
    with pytest.raises(NotAuthenticated, match="well-formed"):
        await verifier.verify("abc.def.ghi")


async def test_a_verified_token_is_remembered_and_not_verified_again(es_key: SigningKey) -> None:
    """The second request with the same token is a cache hit: no second signature check."""
    verifier = verifier_for(FakeKeySource(es_key.jwk()), lambda: NOW)
    token = es_key.sign(good_claims())
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert (verifier.cache_hits, second) == (1, first)


async def test_an_expired_token_is_refused_even_when_cached(es_key: SigningKey) -> None:
    """Expiry is checked on every request: a token remembered while valid is refused once it expires."""
    moment = [NOW]
    verifier = verifier_for(FakeKeySource(es_key.jwk()), lambda: moment[0])
    token = es_key.sign(good_claims(exp=int(NOW) + 60))
    await verifier.verify(token)
    await verifier.verify(token)
    assert verifier.cache_hits == 1
    moment[0] = NOW + 60 + 31
    with pytest.raises(NotAuthenticated, match="expired"):
        await verifier.verify(token)
    with pytest.raises(NotAuthenticated, match="expired"):
        await verifier.verify(token)


async def test_a_tampered_copy_of_a_cached_token_is_never_a_hit(es_key: SigningKey) -> None:
    """A good token is cached; the same token with wider scopes (old signature) is checked and refused."""
    verifier = verifier_for(FakeKeySource(es_key.jwk()), lambda: NOW)
    token = es_key.sign(good_claims())
    await verifier.verify(token)
    header, _, signature = token.split(".")
    payload = jwt.utils.base64url_encode(json.dumps(good_claims(scope="system/*.cruds")).encode()).decode()
    for _ in range(2):
        with pytest.raises(NotAuthenticated, match="signature"):
            await verifier.verify(f"{header}.{payload}.{signature}")
    assert verifier.cache_hits == 0


async def test_a_key_set_change_empties_the_cache(es_key: SigningKey) -> None:
    """Rotation: when a refresh brings a different key set, cached tokens are verified again (and a token
    whose key was revoked is refused even though it was cached)."""
    replacement = make_key("next")
    source = FakeKeySource(es_key.jwk(), replacement.jwk())
    moment = [0.0]
    cache = JwksCache(source, ttl_seconds=300, min_refetch_seconds=10, clock=lambda: moment[0])
    verifier = TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], clock=lambda: NOW)
    old_token, new_token = es_key.sign(good_claims()), replacement.sign(good_claims())
    await verifier.verify(old_token)
    await verifier.verify(new_token)
    await verifier.verify(new_token)
    assert verifier.cache_hits == 1
    source.keys = [replacement.jwk(), make_key("third").jwk()]  # es_key revoked, a third key published
    moment[0] = 301.0
    with pytest.raises(NotAuthenticated, match="does not know"):
        await verifier.verify(old_token)
    await verifier.verify(new_token)  # verified again against the new set, not a hit
    assert verifier.cache_hits == 1
    await verifier.verify(new_token)
    assert verifier.cache_hits == 2


async def test_the_cache_is_bounded(es_key: SigningKey) -> None:
    """Past its size the least recently used token is forgotten (verified again when it comes back)."""
    cache = JwksCache(FakeKeySource(es_key.jwk()), clock=lambda: 0.0)
    verifier = TokenVerifier([TrustedIssuer(ISSUER, AUDIENCE, cache)], clock=lambda: NOW, cache_size=2)
    tokens = [es_key.sign(good_claims(sub=f"user-{n}")) for n in range(3)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[0])
    assert verifier.cache_hits == 0
    await verifier.verify(tokens[0])
    assert verifier.cache_hits == 1


async def test_the_caller_is_read_once_per_token_and_never_outlives_its_verification(es_key: SigningKey) -> None:
    """The Authenticator keeps the caller it read from a token's claims, so a token's later requests share it,
    but every request is still verified first: once the token expires it is refused although its caller is
    kept, and another token (other claims) is another caller."""
    moment = [NOW]
    authenticator = Authenticator(verifier_for(FakeKeySource(es_key.jwk()), lambda: moment[0]))
    token = es_key.sign(good_claims(exp=int(NOW) + 60))
    first = await authenticator.authenticate(f"Bearer {token}")
    assert await authenticator.authenticate(f"Bearer {token}") is first
    other = await authenticator.authenticate(f"Bearer {es_key.sign(good_claims(scope='patient/*.rs', patient='p1'))}")
    assert other is not first
    assert other.scopes != first.scopes
    moment[0] = NOW + 60 + 31
    with pytest.raises(NotAuthenticated, match="expired"):
        await authenticator.authenticate(f"Bearer {token}")
