"""Anchors for the audit hash chain, kept outside the database: signed checkpoints of the chain head.

The hash chain alone shows that the stored events agree with each other. Someone able to write to the database
could still delete the newest events and rewind the head row, or delete one event and re-hash everything after
it: the chain would again agree with itself. A checkpoint (sequence number, hash at that sequence, time) signed
with an Ed25519 key that lives on the application host — not in the database — and written to an append-only
file and to the log (which is shipped elsewhere) pins the chain: :func:`check_against_anchors` fails when an
anchored sequence is missing (truncation) or has another hash (re-hashing).

Files in the anchor directory: ``anchor-ed25519.pem`` (private key, 0600, created on first use),
``anchor-ed25519.pub.pem`` (public key: enough to verify), ``checkpoints.jsonl`` (one checkpoint a line).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bcconnect.logging import get_logger

log = get_logger(__name__)

PRIVATE_KEY_FILE = "anchor-ed25519.pem"
PUBLIC_KEY_FILE = "anchor-ed25519.pub.pem"
CHECKPOINTS_FILE = "checkpoints.jsonl"


#: the chain of checkpoints that name none (written before chains per writer): the shared chain
SHARED_CHAIN = "main"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A chain's head at one moment: link ``seq`` of ``chain`` had hash ``hash``; ``valid``: its signature verifies.

    ``seq`` 0 is a segment's opening (its hash the chain's genesis); ``final`` marks its closing: nothing may
    follow it in that chain.
    """

    seq: int
    hash: str
    at: str
    valid: bool = True
    chain: str = SHARED_CHAIN
    final: bool = False

    def payload(self) -> bytes:
        """What is signed (the shared chain's checkpoints keep the form they were first signed in)."""
        if self.chain == SHARED_CHAIN and not self.final:
            return f"bcconnect-audit-checkpoint|{self.seq}|{self.hash}|{self.at}".encode("ascii")
        kind = "final" if self.final else "link"
        return f"bcconnect-audit-checkpoint|{self.chain}|{kind}|{self.seq}|{self.hash}|{self.at}".encode()


class AuditAnchor:
    """The anchor directory: signs and records checkpoints, reads and verifies them back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def checkpoints_path(self) -> Path:
        """The append-only checkpoint file."""
        return self.directory / CHECKPOINTS_FILE

    def _private_key(self) -> Ed25519PrivateKey:
        path = self.directory / PRIVATE_KEY_FILE
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 private key")
            return loaded
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.directory / PUBLIC_KEY_FILE).write_bytes(public)
        return key

    def _public_key(self) -> Ed25519PublicKey | None:
        path = self.directory / PUBLIC_KEY_FILE
        if not path.exists():
            return None
        loaded = serialization.load_pem_public_key(path.read_bytes())
        return loaded if isinstance(loaded, Ed25519PublicKey) else None

    def checkpoint(
        self,
        seq: int,
        chain_hash: str,
        *,
        at: datetime | None = None,
        chain: str = SHARED_CHAIN,
        final: bool = False,
    ) -> Checkpoint:
        """Sign link ``seq`` of ``chain`` (hash ``chain_hash``), append it to the file (flushed to disk), log it."""
        moment = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        point = Checkpoint(seq, chain_hash, moment, chain=chain, final=final)
        signature = base64.b64encode(self._private_key().sign(point.payload())).decode("ascii")
        fields: dict[str, object] = {"seq": seq, "hash": chain_hash, "at": moment, "sig": signature}
        if chain != SHARED_CHAIN:
            fields["chain"] = chain
        if final:
            fields["final"] = True
        line = orjson.dumps(fields) + b"\n"
        fd = os.open(self.checkpoints_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("audit_checkpoint", chain=chain, seq=seq, hash=chain_hash, at=moment, final=final, sig=signature)
        return point

    def signed_record(self, chain: str, seq: int, chain_hash: str) -> dict[str, object] | None:
        """The signed line (as recorded, signature included) of a valid checkpoint naming link ``seq`` of ``chain``
        with ``chain_hash``, a final one preferred; None when this anchor has none."""
        if not self.checkpoints_path.exists():
            return None
        wanted = {(p.chain, p.seq, p.hash, p.at, p.final) for p in self.checkpoints() if p.valid}
        found: dict[str, object] | None = None
        for raw in self.checkpoints_path.read_bytes().splitlines():
            try:
                item = orjson.loads(raw)
                key = (str(item.get("chain", SHARED_CHAIN)), int(item["seq"]), str(item["hash"]), str(item["at"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            final = item.get("final") is True
            if key[:3] == (chain, seq, chain_hash) and (*key, final) in wanted and (found is None or final):
                found = item if isinstance(item, dict) else None
        return found

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint recorded, oldest first, each marked valid or not (signature, form)."""
        if not self.checkpoints_path.exists():
            return []
        public = self._public_key()
        out = []
        for raw in self.checkpoints_path.read_bytes().splitlines():
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
                point = Checkpoint(
                    int(item["seq"]),
                    str(item["hash"]),
                    str(item["at"]),
                    chain=str(item.get("chain", SHARED_CHAIN)),
                    final=item.get("final") is True,
                )
                signature = base64.b64decode(str(item["sig"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                out.append(Checkpoint(-1, "", "", valid=False, chain=""))
                continue
            try:
                if public is None:
                    raise InvalidSignature
                public.verify(signature, point.payload())
            except InvalidSignature:
                point = Checkpoint(point.seq, point.hash, point.at, False, point.chain, point.final)
            out.append(point)
        return out


def check_against_anchors(stored: dict[int, str], last_seq: int, checkpoints: Sequence[Checkpoint]) -> str | None:
    """The first disagreement between the stored chain and the checkpoints, or None.

    ``stored``: hash of each anchored sequence as found in the database; ``last_seq``: the chain's last event.
    """
    for point in checkpoints:
        if not point.valid:
            return "a checkpoint's signature does not verify (the anchor file was altered)"
        if point.seq > last_seq:
            return f"the chain ends at event {last_seq} but event {point.seq} was checkpointed (truncated)"
        if stored.get(point.seq) != point.hash:
            return f"event {point.seq} does not have the checkpointed hash (events removed or re-hashed)"
    return None
