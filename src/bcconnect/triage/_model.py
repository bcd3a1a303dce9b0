"""The triage read model: every referral, pathway part and appointment parsed once, each pathway's RTT clock
kept computed (``0500_triage_read_model.sql``).

It follows the store's change feed (:func:`~bcconnect.view.changed_resources`): each batch of changed
ServiceRequests, EpisodeOfCare records or Appointments is parsed with the same functions the view-based
answers use (:mod:`bcconnect.triage._records`), the pathways they touch are recomputed by the same RTT code
(:func:`~bcconnect.triage._pathway.pathway_facts`), and the cursor (last ``(t, id)`` applied per type) is
written in that same transaction. :meth:`ReadModel.rebuild` starts again from nothing; a changed network
configuration (which decides each referral's network) rebuilds by itself.

Rows carry the source Patient id (the store's compartment), never a person id: an identity merge changes
who is one person without changing a row, and answers resolve persons when they read. Nothing here is an
answer: :class:`~bcconnect.triage.Triage` screens whatever it reads from these tables for its caller (see
:meth:`ReadModel.withheld`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from bcconnect.store import Tx, Visibility
from bcconnect.triage._config import TriageConfig
from bcconnect.triage._pathway import PathwayFacts, pathway_facts, pathway_key
from bcconnect.triage._records import (
    Appointment,
    Pathway,
    Referral,
    appointment_from,
    parse_day,
    parse_moment,
    pathway_from,
    referral_from,
)
from bcconnect.triage._rtt import ClockEvent
from bcconnect.view import (
    AccessContext,
    StoredResource,
    View,
    caller_visibility,
    changed_resources,
    store_time,
    visible_keys,
)

#: the resource types the model follows, in the order a refresh applies them (referrals before the pathway
#: parts that name them, appointments last)
FOLLOWED = ("ServiceRequest", "EpisodeOfCare", "Appointment")
PRIORITY_RANK = {"asap": 0, "stat": 0, "urgent": 1, "routine": 2}
#: a received date that sorts after every real one (a referral without one waits "0 days", as in the view)
NO_DATE = "9999-12-31"
#: top-level elements whose references are never a clinical context (subject, who asked, who does it): a
#: resource with a reference anywhere else may be withheld by a sensitive target, so the screen checks it
_PLAIN_REFERENCES = {
    "ServiceRequest": frozenset({"subject", "requester", "performer"}),
    "EpisodeOfCare": frozenset({"patient", "managingOrganization", "referralRequest", "careManager"}),
    # basedOn names the referral: withheld only with a labelled referral, which the read checks (see withheld)
    "Appointment": frozenset({"participant", "basedOn"}),
}
_CHUNK = 500


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    items = list(dict.fromkeys(values))
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _has_reference(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "reference" in value or any(_has_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_reference(v) for v in value)
    return False


def screen_check(resource: Mapping[str, Any]) -> bool:
    """Whether a sensitive *target* could withhold this resource: it points somewhere that could put it in a
    sensitive context (any reference outside the plain elements). Its own labels are kept in ``labels``."""
    plain = _PLAIN_REFERENCES.get(str(resource.get("resourceType")), frozenset())
    if any(_has_reference(v) for k, v in resource.items() if k not in plain and k != "contained"):
        return True
    if resource.get("resourceType") == "Appointment":
        refs = [r.get("reference") for r in resource.get("basedOn", []) if isinstance(r, Mapping)]
        return any(not (isinstance(r, str) and r.startswith("ServiceRequest/")) for r in refs)
    return bool(resource.get("contained"))


def labels_of(resource: Mapping[str, Any]) -> str:
    """The resource's own security labels, ``system|code`` space-separated (sorted)."""
    found = {
        f"{c.get('system')}|{c.get('code')}"
        for c in resource.get("meta", {}).get("security", [])
        if isinstance(c, Mapping) and c.get("code")
    }
    return " ".join(sorted(found))


#: bumped when what a row holds changes meaning: a model built before rebuilds itself
MODEL_VERSION = 2


def config_fingerprint(config: TriageConfig) -> str:
    """What of the configuration the rows depend on (each referral's network; identifier systems)."""
    parts = {
        "model": MODEL_VERSION,
        "systems": [str(v) for v in vars_of(config.systems)],
        "networks": [[n.name, list(n.tfc), sorted(n.reasons)] for n in config.networks.values()],
    }
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]


def vars_of(obj: object) -> list[object]:
    """A slotted dataclass's field values, in order."""
    return [getattr(obj, name) for name in getattr(obj, "__slots__", ())]


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Hidden:
    """What of the read model one caller may not see: rows by type and id, and the pathways they touch."""

    referrals: frozenset[str]
    episodes: frozenset[str]
    appointments: frozenset[str]
    #: only these pathways exist for the caller (``patient/`` confinement); None: every pathway
    only_keys: frozenset[str] | None
    #: pathways with a withheld part: recomputed from what the caller may see
    keys: frozenset[str]
    #: types triage needs that are outside the caller's scopes: every pathway is recomputed without them
    types: frozenset[str] = frozenset()
    #: only rows of these Patient ids (and of none) exist for the caller; None: anyone's
    allowed: frozenset[str] | None = None

    def hides(self, rtype: str, res_id: str, compartment: str | None) -> bool:
        """Whether the caller may not see this row."""
        if self.allowed is not None and compartment is not None and compartment not in self.allowed:
            return True
        if rtype in self.types:
            return True
        ids = {"ServiceRequest": self.referrals, "EpisodeOfCare": self.episodes, "Appointment": self.appointments}
        return res_id in ids[rtype]

    @property
    def nothing(self) -> bool:
        """Whether the caller sees the whole model."""
        return self.only_keys is None and not self.keys and not self.types


class ReadModel:
    """The triage read model over one view's store (see the module docstring)."""

    def __init__(self, view: View, config: TriageConfig, *, batch: int = 2000) -> None:
        self.view = view
        self.config = config
        self.batch = batch
        self.fingerprint = config_fingerprint(config)

    # ----------------------------------------------------------------- keeping it current

    async def refresh(self) -> int:
        """Apply every change since the cursor (up to the store's time now); the number of resources applied.

        On a read replica nothing is written: the primary's model arrives by replication.
        """
        store = self.view.store
        if store.is_replica:
            return 0
        if await store.read(self._fingerprint) != self.fingerprint:
            await store.write(self._reset)
        upto = await store_time(self.view)
        applied = 0
        for rtype in FOLLOWED:
            applied += await self._follow(rtype, upto)
        return applied

    async def _follow(self, rtype: str, upto: int) -> int:
        """Apply the changes of one type, a batch per transaction, each with its cursor."""
        store = self.view.store
        applied = 0

        def cursor(tx: Tx) -> tuple[int, str]:
            return _cursor(tx, rtype)

        after = await store.read(cursor)
        while True:
            batch = await changed_resources(self.view, rtype, after=after, upto=upto, limit=self.batch)
            if not batch:
                return applied
            done = (batch[-1].t, batch[-1].id)

            def apply(tx: Tx, batch: list[StoredResource] = batch, after: tuple[int, str] = after) -> bool:
                return self._apply(tx, rtype, batch, after, (batch[-1].t, batch[-1].id))

            if not await store.write(apply):
                # another process applied this batch first: carry on from where it got to
                after = await store.read(cursor)
                continue
            applied += len(batch)
            after = done
            if len(batch) < self.batch:
                return applied

    async def rebuild(self) -> int:
        """Forget every row and build the model again from the store; the number of resources read."""
        await self.view.store.write(self._reset)
        return await self.refresh()

    async def counts(self) -> dict[str, int]:
        """How many referrals, pathway parts, appointments and pathways (running ones too) the model holds."""

        def run(tx: Tx) -> dict[str, int]:
            out = {}
            for name, sql in (
                ("referrals", "SELECT COUNT(*) FROM triage_referral"),
                ("awaiting triage", "SELECT COUNT(*) FROM triage_referral WHERE awaiting = 1"),
                ("pathway parts", "SELECT COUNT(*) FROM triage_episode"),
                ("appointments", "SELECT COUNT(*) FROM triage_appointment"),
                ("pathways", "SELECT COUNT(*) FROM triage_pathway"),
                ("running", "SELECT COUNT(*) FROM triage_pathway WHERE state = 'running'"),
            ):
                row = tx.query_one(sql)
                out[name] = int(row[0]) if row else 0
            return out

        return await self.view.store.read(run)

    def _fingerprint(self, tx: Tx) -> str | None:
        row = tx.query_one("SELECT fingerprint FROM triage_model WHERE id = 1")
        return str(row[0]) if row else None

    def _reset(self, tx: Tx) -> None:
        for table in (
            "triage_referral",
            "triage_episode",
            "triage_episode_referral",
            "triage_appointment",
            "triage_appointment_referral",
            "triage_pathway",
            "triage_pathway_booking",
            "triage_cursor",
            "triage_model",
        ):
            tx.execute(f"DELETE FROM {table}")  # noqa: S608 - constant table names
        tx.execute(
            "INSERT INTO triage_model (id, fingerprint, built_at) VALUES (1, ?, ?)",
            (self.fingerprint, datetime.now(UTC).isoformat(timespec="seconds")),
        )

    def _apply(
        self, tx: Tx, rtype: str, batch: Sequence[StoredResource], after: tuple[int, str], done: tuple[int, str]
    ) -> bool:
        """Apply one batch and move the cursor, in one transaction (False: the cursor had moved: not applied)."""
        if tx.dialect == "postgresql":
            tx.execute("SELECT 1 FROM triage_model WHERE id = 1 FOR UPDATE")
        if _cursor(tx, rtype) != after:
            return False
        ids = [r.id for r in batch]
        live = {r.id: orjson.loads(r.body) for r in batch if not r.deleted and r.body is not None}
        systems = self.config.systems
        affected: set[str] = set()
        if rtype == "ServiceRequest":
            affected |= _keys_of_referrals(tx, ids)
            _delete(tx, "triage_referral", "res_id", ids)
            rows = []
            for rid, body in live.items():
                ref = referral_from(body, systems)
                compartment = next(r.compartment for r in batch if r.id == rid)
                if ref is not None:
                    rows.append(self._referral_row(ref, body, _version(batch, rid), compartment))
            tx.executemany(
                "INSERT INTO triage_referral (res_id, version, compartment, trust, network, tfc, status, priority,"
                " rank, received, outcome, reasons, awaiting, is_open, labelled, screen_check, labels)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        elif rtype == "EpisodeOfCare":
            for chunk in _chunks(ids):
                rows_ = tx.query(
                    f"SELECT pathway_key FROM triage_episode WHERE res_id IN ({_marks(chunk)})",  # noqa: S608
                    chunk,
                )
                affected.update(str(r[0]) for r in rows_)
            _delete(tx, "triage_episode", "res_id", ids)
            _delete(tx, "triage_episode_referral", "episode_id", ids)
            episodes, links = [], []
            for rid, body in live.items():
                ep = pathway_from(body, systems)
                if ep is None:
                    continue
                key = pathway_key(ep)
                affected.add(key)
                compartment = next(r.compartment for r in batch if r.id == rid)
                events = [[e.day.isoformat(), e.code, e.provider] for e in ep.events]
                episodes.append(
                    (
                        ep.id, _version(batch, rid), compartment, key, ep.trust, ep.ppi, ep.status, _day(ep.start),
                        _day(ep.end), ep.tfc, " ".join(ep.referral_ids), orjson.dumps(events).decode(),
                        _day(ep.fds), int(screen_check(body)), labels_of(body),
                    )
                )  # fmt: skip
                links += [(ref, ep.id) for ref in dict.fromkeys(ep.referral_ids)]
            tx.executemany(
                "INSERT INTO triage_episode (res_id, version, compartment, pathway_key, trust, ppi, status,"
                " start_day, end_day, tfc, referral_ids, events, fds, screen_check, labels)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                episodes,
            )
            tx.executemany("INSERT INTO triage_episode_referral (referral_id, episode_id) VALUES (?, ?)", links)
        else:
            old_refs: set[str] = set()
            for chunk in _chunks(ids):
                found = tx.query(
                    "SELECT referral_id FROM triage_appointment_referral"  # noqa: S608 - '?' marks only
                    f" WHERE appointment_id IN ({_marks(chunk)})",
                    chunk,
                )
                old_refs.update(str(r[0]) for r in found)
            _delete(tx, "triage_appointment", "res_id", ids)
            _delete(tx, "triage_appointment_referral", "appointment_id", ids)
            appointments, links = [], []
            for rid, body in live.items():
                appt = appointment_from(body)
                compartment = next(r.compartment for r in batch if r.id == rid)
                appointments.append(
                    (
                        appt.id, _version(batch, rid), compartment, appt.trust, appt.status, body.get("start"),
                        appt.cancelled_by, " ".join(appt.referral_ids), int(screen_check(body)), labels_of(body),
                    )
                )  # fmt: skip
                links += [(ref, appt.id) for ref in dict.fromkeys(appt.referral_ids)]
                old_refs.update(appt.referral_ids)
            tx.executemany(
                "INSERT INTO triage_appointment (res_id, version, compartment, trust, status, start_at,"
                " cancelled_by, referral_ids, screen_check, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                appointments,
            )
            tx.executemany("INSERT INTO triage_appointment_referral (referral_id, appointment_id) VALUES (?, ?)", links)
            affected |= _keys_of_referrals(tx, old_refs)
        self._recompute(tx, affected)
        tx.execute("DELETE FROM triage_cursor WHERE res_type = ?", (rtype,))
        tx.execute("INSERT INTO triage_cursor (res_type, t, res_id) VALUES (?, ?, ?)", (rtype, *done))
        return True

    def _referral_row(
        self, ref: Referral, body: Mapping[str, Any], version: int, compartment: str | None
    ) -> tuple[object, ...]:
        network = self.config.network_of(ref.tfc, ref.reasons)
        return (
            ref.id, version, compartment, ref.trust, network.name if network else None, ref.tfc, ref.status,
            ref.priority, PRIORITY_RANK.get(ref.priority, 3), _day(ref.received) or NO_DATE, ref.outcome,
            " ".join(sorted(ref.reasons)), int(ref.awaiting_triage), int(ref.open),
            int(bool(body.get("meta", {}).get("security"))), int(screen_check(body)), labels_of(body),
        )  # fmt: skip

    def _recompute(self, tx: Tx, keys: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(keys))
        for chunk in _chunks(wanted):
            _delete(tx, "triage_pathway", "pathway_key", chunk)
            _delete(tx, "triage_pathway_booking", "pathway_key", chunk)
        pathways, bookings = [], []
        for facts in self.facts(tx, wanted):
            clock = facts.clock
            current = facts.current
            pathways.append(
                (
                    facts.key, current.id, current.patient, current.trust, facts.tfc, facts.network,
                    facts.priority, clock.state.value, _day(clock.start), _day(clock.stop), clock.stop_code,
                    " ".join(clock.providers), int(clock.transferred), _day(facts.fds), " ".join(facts.referral_ids),
                )
            )  # fmt: skip
            bookings += [(facts.key, d.isoformat()) for d in dict.fromkeys(facts.booked)]
        tx.executemany(
            "INSERT INTO triage_pathway (pathway_key, episode_id, compartment, trust, tfc, network, priority, state,"
            " clock_start, clock_stop, stop_code, providers, transferred, fds, referral_ids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            pathways,
        )
        tx.executemany("INSERT INTO triage_pathway_booking (pathway_key, day) VALUES (?, ?)", bookings)

    # ----------------------------------------------------------------- reading facts back

    def facts(self, tx: Tx, keys: Sequence[str], hidden: Hidden | None = None) -> list[PathwayFacts]:
        """The pathways ``keys`` computed from the model's rows, leaving out what ``hidden`` withholds."""
        episodes: dict[str, list[Pathway]] = defaultdict(list)
        for chunk in _chunks(keys):
            for row in tx.query(
                "SELECT res_id, compartment, pathway_key, trust, ppi, status, start_day, end_day, tfc,"  # noqa: S608
                f" referral_ids, events, fds FROM triage_episode WHERE pathway_key IN ({_marks(chunk)})",
                chunk,
            ):
                if hidden is not None and hidden.hides("EpisodeOfCare", str(row[0]), row[1]):
                    continue
                episodes[str(row[2])].append(_pathway(row))
        referral_ids = [i for group in episodes.values() for p in group for i in p.referral_ids]
        referrals = {r.id: r for r in self.referrals(tx, referral_ids)}
        appointments: dict[str, list[Appointment]] = defaultdict(list)
        for chunk in _chunks(referrals):
            for row in tx.query(
                "SELECT l.referral_id, a.res_id, a.compartment, a.trust, a.status, a.start_at, a.cancelled_by,"  # noqa: S608
                " a.referral_ids FROM triage_appointment_referral l"
                " JOIN triage_appointment a ON a.res_id = l.appointment_id"
                f" WHERE l.referral_id IN ({_marks(chunk)})",
                chunk,
            ):
                if hidden is not None and hidden.hides("Appointment", str(row[1]), row[2]):
                    continue
                appointments[str(row[0])].append(
                    Appointment(
                        id=str(row[1]),
                        patient=row[2],
                        trust=str(row[3]),
                        status=str(row[4]),
                        start=parse_moment(row[5]),
                        referral_ids=tuple(str(row[7]).split()),
                        cancelled_by=row[6],
                    )
                )
        if hidden is not None:
            referrals = {i: r for i, r in referrals.items() if not hidden.hides("ServiceRequest", i, r.patient or None)}
        return [
            pathway_facts(key, group, referrals, appointments, self.config) for key, group in episodes.items() if group
        ]

    def referrals(self, tx: Tx, ids: Iterable[str]) -> list[Referral]:
        """The model's referrals with these ids (as far as the model knows them)."""
        out = []
        for chunk in _chunks(ids):
            for row in tx.query(
                "SELECT res_id, compartment, trust, status, priority, received, tfc, reasons, outcome"  # noqa: S608
                f" FROM triage_referral WHERE res_id IN ({_marks(chunk)})",
                chunk,
            ):
                out.append(
                    Referral(
                        id=str(row[0]),
                        patient=str(row[1] or ""),
                        trust=str(row[2]),
                        ubrn=None,
                        status=str(row[3]),
                        priority=str(row[4]),
                        received=parse_day(row[5]) if row[5] != NO_DATE else None,
                        tfc=row[6],
                        reasons=frozenset(str(row[7]).split()),
                        reason_text="",
                        requester=None,
                        outcome=row[8],
                    )
                )
        return out

    # ----------------------------------------------------------------- screening at read

    async def withheld(self, access: AccessContext) -> Hidden:
        """What of the model ``access`` may not see, by the caller's own screen (the view's):

        - rows of an objecting person (every Patient id of them), or of anyone else for a ``patient/`` token;
        - rows of a type outside the caller's scopes (every pathway is then recomputed from what is left);
        - without the sensitivity grant, every row a label could withhold (:func:`screen_check`, and each
          appointment of a labelled referral) is decided by the view's own SQL predicate, row by row.
        """
        vis = await caller_visibility(self.view, access)
        if vis.unscreened:
            return Hidden(frozenset(), frozenset(), frozenset(), None, frozenset())
        rows, checks = await self.view.store.read(lambda tx: _withheld_rows(tx, vis))
        # every row in one call: the view joins the keys to the versions' unique index (one probe each), so a
        # long list no longer turns into a scan evaluating the label predicate on every version
        seen = await visible_keys(self.view, access, checks)
        for key in checks:
            if key not in seen:
                rows[key[0]].add(key[1])
        only_keys = None
        if vis.only_patients is not None:
            allowed = sorted(vis.only_patients)
            only_keys = frozenset(
                await self.view.store.read(lambda tx: _column_where(tx, "triage_episode", "pathway_key", allowed))
            )
        keys = await self.view.store.read(lambda tx: _keys_touching(tx, rows))
        return Hidden(
            referrals=frozenset(rows["ServiceRequest"]),
            episodes=frozenset(rows["EpisodeOfCare"]),
            appointments=frozenset(rows["Appointment"]),
            only_keys=only_keys,
            keys=frozenset(keys),
            types=frozenset(t for t in FOLLOWED if not vis.allows_type(t)),
            allowed=vis.only_patients,
        )


_TABLES = {"ServiceRequest": "triage_referral", "EpisodeOfCare": "triage_episode", "Appointment": "triage_appointment"}


def _column_where(tx: Tx, table: str, column: str, compartments: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for chunk in _chunks(compartments):
        found = tx.query(f"SELECT {column} FROM {table} WHERE compartment IN ({_marks(chunk)})", chunk)  # noqa: S608
        out.update(str(r[0]) for r in found)
    return out


def _withheld_rows(tx: Tx, vis: Visibility) -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """Rows of hidden persons, and the rows only the view's label predicate can decide."""
    hidden = {
        rtype: _column_where(tx, table, "res_id", sorted(vis.hidden_patients)) for rtype, table in _TABLES.items()
    }
    checks: list[tuple[str, str, int]] = []
    if vis.hidden_labels:
        hidden_labels = vis.hidden_labels
        for rtype, table in _TABLES.items():
            # a row's own label the caller may not see withholds it (the view's _security predicate)
            for row in tx.query(f"SELECT res_id, labels FROM {table} WHERE labels <> ''"):  # noqa: S608
                if set(str(row[1]).split()) & hidden_labels:
                    hidden[rtype].add(str(row[0]))
            # a row pointing somewhere a sensitive target could be: the view's own predicate decides
            for row in tx.query(f"SELECT res_id, version FROM {table} WHERE screen_check = 1"):  # noqa: S608
                checks.append((rtype, str(row[0]), int(row[1])))
        # an appointment based on a referral with a hidden label is in its context (the view's based-on rule)
        for row in tx.query(
            "SELECT l.appointment_id, r.labels FROM triage_referral r"
            " JOIN triage_appointment_referral l ON l.referral_id = r.res_id WHERE r.labels <> ''"
        ):
            if set(str(row[1]).split()) & hidden_labels:
                hidden["Appointment"].add(str(row[0]))
    return hidden, list(dict.fromkeys(checks))


def _keys_of_referrals(tx: Tx, referral_ids: Iterable[str]) -> set[str]:
    """The pathways whose parts name any of these referrals."""
    keys: set[str] = set()
    for chunk in _chunks(referral_ids):
        found = tx.query(
            "SELECT e.pathway_key FROM triage_episode_referral l JOIN triage_episode e ON e.res_id = l.episode_id"  # noqa: S608
            f" WHERE l.referral_id IN ({_marks(chunk)})",
            chunk,
        )
        keys.update(str(r[0]) for r in found)
    return keys


def _keys_touching(tx: Tx, rows: Mapping[str, set[str]]) -> set[str]:
    """The pathways with a part among ``rows`` (by type): an episode, a referral, or a referral's appointment."""
    keys: set[str] = set()
    for chunk in _chunks(rows["EpisodeOfCare"]):
        found = tx.query(f"SELECT pathway_key FROM triage_episode WHERE res_id IN ({_marks(chunk)})", chunk)  # noqa: S608
        keys.update(str(r[0]) for r in found)
    referrals = set(rows["ServiceRequest"])
    for chunk in _chunks(rows["Appointment"]):
        found = tx.query(
            f"SELECT referral_id FROM triage_appointment_referral WHERE appointment_id IN ({_marks(chunk)})",  # noqa: S608
            chunk,
        )
        referrals.update(str(r[0]) for r in found)
    return keys | _keys_of_referrals(tx, referrals)


def _delete(tx: Tx, table: str, column: str, ids: Sequence[str]) -> None:
    for chunk in _chunks(ids):
        tx.execute(f"DELETE FROM {table} WHERE {column} IN ({_marks(chunk)})", chunk)  # noqa: S608


def _cursor(tx: Tx, rtype: str) -> tuple[int, str]:
    row = tx.query_one("SELECT t, res_id FROM triage_cursor WHERE res_type = ?", (rtype,))
    return (int(row[0]), str(row[1])) if row else (0, "")


def _version(batch: Sequence[StoredResource], rid: str) -> int:
    return next(r.version for r in batch if r.id == rid)


def _pathway(row: Sequence[Any]) -> Pathway:
    """A :class:`Pathway` from a ``triage_episode`` row (its events as the view-based parse made them)."""
    trust = str(row[3])
    events = tuple(ClockEvent(date.fromisoformat(d), str(c), p) for d, c, p in orjson.loads(row[10]))
    return Pathway(
        id=str(row[0]),
        patient=str(row[1] or ""),
        trust=trust,
        ppi=row[4],
        status=str(row[5]),
        start=parse_day(row[6]),
        end=parse_day(row[7]),
        tfc=row[8],
        referral_ids=tuple(str(row[9]).split()),
        events=events,
        fds=parse_day(row[11]),
    )


@dataclass(frozen=True, slots=True)
class WorklistRow:
    """A referral awaiting triage as the model orders it (two-week wait, urgent, routine; oldest first)."""

    res_id: str
    rank: int
    received: str

    @property
    def after(self) -> tuple[int, str, str]:
        """The keyset position just after this row."""
        return (self.rank, self.received, self.res_id)


def worklist_rows(
    tx: Tx,
    network: str,
    *,
    after: tuple[int, str, str] | None,
    limit: int,
    trust: str | None = None,
    priority: str | None = None,
) -> list[WorklistRow]:
    """The next ``limit`` referrals awaiting triage in ``network`` after the keyset position ``after``."""
    sql = "SELECT res_id, rank, received FROM triage_referral WHERE network = ? AND awaiting = 1"
    params: list[object] = [network]
    if after is not None:
        rank, received, res_id = after
        sql += " AND (rank > ? OR (rank = ? AND (received > ? OR (received = ? AND res_id > ?))))"
        params += [rank, rank, received, received, res_id]
    if trust:
        sql += " AND trust = ?"
        params.append(trust)
    if priority:
        sql += " AND priority = ?"
        params.append(priority)
    rows = tx.query(sql + " ORDER BY rank, received, res_id LIMIT ?", [*params, limit])
    return [WorklistRow(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def open_referrals_of(tx: Tx, compartments: Sequence[str], network: str) -> list[str]:
    """Ids of open referrals in ``network`` of any of these Patient ids (the model's view of them)."""
    out: list[str] = []
    for chunk in _chunks(compartments):
        # by the compartment index alone: with the network in the WHERE, SQLite (no statistics) walked the
        # worklist index's whole network range instead (84 ms for a page's persons at 128k referrals)
        found = tx.query(
            f"SELECT res_id, is_open, network FROM triage_referral WHERE compartment IN ({_marks(chunk)})",  # noqa: S608
            chunk,
        )
        out += [str(r[0]) for r in found if int(r[1]) == 1 and r[2] == network]
    return out


#: a running pathway's group and clock start → how many pathways share them
Histogram = dict[tuple[str, str], dict[date, int]]


def running_histogram(tx: Tx, model: ReadModel, hidden: Hidden) -> Histogram:
    """Running pathways counted per trust, TFC and clock start, for what ``hidden``'s caller may see."""
    counts: Histogram = defaultdict(lambda: defaultdict(int))
    if hidden.only_keys is not None or hidden.types:
        # a confined or type-limited caller: their pathways computed from the parts they may see
        keys = sorted(hidden.only_keys) if hidden.only_keys is not None else _all_keys(tx)
        for facts in model.facts(tx, keys, hidden):
            if facts.clock.running and facts.clock.start is not None:
                counts[(facts.current.trust, facts.tfc or "")][facts.clock.start] += 1
        return counts
    for trust, tfc, start, n in tx.query(
        "SELECT trust, tfc, clock_start, COUNT(*) FROM triage_pathway WHERE state = 'running'"
        " GROUP BY trust, tfc, clock_start"
    ):
        if start is not None:
            counts[(str(trust), str(tfc or ""))][date.fromisoformat(str(start))] += int(n)
    if hidden.keys:
        # pathways with a withheld part: out as stored, in again as the caller may see them
        for chunk in _chunks(hidden.keys):
            # by the primary key alone: with the state in the WHERE, SQLite walked every running pathway of the
            # waiting index checking each against the list (0.85 s at 85k running pathways)
            for state, trust, tfc, start in tx.query(
                "SELECT state, trust, tfc, clock_start FROM triage_pathway"  # noqa: S608 - '?' marks only
                f" WHERE pathway_key IN ({_marks(chunk)})",
                chunk,
            ):
                if state == "running" and start is not None:
                    counts[(str(trust), str(tfc or ""))][date.fromisoformat(str(start))] -= 1
        for facts in model.facts(tx, sorted(hidden.keys), hidden):
            if facts.clock.running and facts.clock.start is not None:
                counts[(facts.current.trust, facts.tfc or "")][facts.clock.start] += 1
    return counts


def _all_keys(tx: Tx) -> list[str]:
    return [str(r[0]) for r in tx.query("SELECT pathway_key FROM triage_pathway")]


def pidmas_candidates(
    tx: Tx, model: ReadModel, hidden: Hidden, *, waited_before: date, as_of: date, horizon: date
) -> list[PathwayFacts]:
    """Running routine pathways started before ``waited_before``, not transferred and with nothing booked
    from ``as_of`` to ``horizon``: the PIDMAS cohort before the age check, for what the caller may see."""
    if hidden.only_keys is not None or hidden.types:
        keys = sorted(hidden.only_keys) if hidden.only_keys is not None else _all_keys(tx)
    else:
        keys = [
            str(r[0])
            for r in tx.query(
                "SELECT p.pathway_key FROM triage_pathway p WHERE p.state = 'running' AND p.priority = 'routine'"
                " AND p.clock_start < ? AND p.transferred = 0 AND NOT EXISTS (SELECT 1 FROM triage_pathway_booking b"
                " WHERE b.pathway_key = p.pathway_key AND b.day >= ? AND b.day <= ?)",
                (waited_before.isoformat(), as_of.isoformat(), horizon.isoformat()),
            )
            if str(r[0]) not in hidden.keys
        ]
        keys += sorted(hidden.keys)
    return model.facts(tx, keys, hidden)


_SNAPSHOT_ORDER = {
    "triage_referral": "res_id",
    "triage_episode": "res_id",
    "triage_episode_referral": "referral_id, episode_id",
    "triage_appointment": "res_id",
    "triage_appointment_referral": "referral_id, appointment_id",
    "triage_pathway": "pathway_key",
    "triage_pathway_booking": "pathway_key, day",
}


def model_snapshot(tx: Tx) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the model's tables, in key order (to compare an incremental model with a rebuilt one)."""
    return {
        table: [tuple(r) for r in tx.query(f"SELECT * FROM {table} ORDER BY {order}")]  # noqa: S608 - constants
        for table, order in _SNAPSHOT_ORDER.items()
    }


def waiting_facts(
    tx: Tx,
    model: ReadModel,
    hidden: Hidden,
    *,
    tfc: str | None = None,
    trust: str | None = None,
    started_before: date | None = None,
) -> list[PathwayFacts]:
    """Running pathways (of ``tfc``, at ``trust``, started before ``started_before`` when given) as the caller
    of ``hidden`` may see them; the caller re-applies the same filters to what comes back."""
    if hidden.only_keys is not None or hidden.types:
        keys = sorted(hidden.only_keys) if hidden.only_keys is not None else _all_keys(tx)
        return model.facts(tx, keys, hidden)
    sql = "SELECT pathway_key FROM triage_pathway WHERE state = 'running'"
    params: list[object] = []
    for column, value in (("tfc", tfc), ("trust", trust)):
        if value:
            sql += f" AND {column} = ?"
            params.append(value)
    if started_before is not None:
        sql += " AND clock_start < ?"
        params.append(started_before.isoformat())
    keys = [str(r[0]) for r in tx.query(sql, params) if str(r[0]) not in hidden.keys]
    return model.facts(tx, [*keys, *sorted(hidden.keys)], hidden)
