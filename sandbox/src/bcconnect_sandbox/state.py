"""One trust's records over time: a computed base snapshot plus an overlay of later changes.

The base snapshot is never stored: record ``k`` of person ``i`` has the logical time ("tick", milliseconds
after ``base_epoch``) ``STATIC_TICKS + i * ticks_per_person + k`` (``SandboxSettings.ticks_per_person``), so the
records are already in ``lastUpdated`` order and a search can start at any instant by computing the first person.
Changes made as simulated time moves (:mod:`bcconnect_sandbox.timeline`) go to an overlay of new versions with
later ticks; memory grows with the number of changes, never with the population.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from bcconnect_sandbox.density import densify
from bcconnect_sandbox.population import Person, make_person
from bcconnect_sandbox.settings import SandboxSettings
from bcconnect_sandbox.sources import IdCodec, Record, static_records, trust_records

STATIC_TICKS: Final = 1_000
_CACHE_PERSONS: Final = 4_096


@dataclass(frozen=True, slots=True)
class Version:
    """One version of one record; ``record`` None means the version is a deletion."""

    kind: str
    id: str
    version: int
    tick: int
    record: Record | None


class Population:
    """Persons by index, with a small cache: the trusts of one world share it."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._cache: OrderedDict[int, Person] = OrderedDict()

    def person(self, index: int) -> Person:
        """Person ``index`` (computed, then cached for a while)."""
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        person = dense_person(self.settings, index)
        self._cache[index] = person
        if len(self._cache) > _CACHE_PERSONS:
            self._cache.popitem(last=False)
        return person


def dense_person(settings: SandboxSettings, index: int) -> Person:
    """Person ``index`` of the world of ``settings``, at its density."""
    person = make_person(settings.seed, index, settings.now, settings.noise, referrals=settings.referrals)
    return densify(person, seed=settings.seed, density=settings.density, now=settings.now)


class TrustState:
    """The records of one trust: computed base versions and an overlay of changes."""

    def __init__(self, settings: SandboxSettings, trust: str, population: Population) -> None:
        self.settings = settings
        self.trust = trust
        self.population = population
        self.codec = IdCodec(settings.seed, trust)
        self.ticks_per_person = settings.ticks_per_person
        self.base_epoch = settings.now - settings.base_load_span
        self.statics = static_records(trust)
        self._base_cache: OrderedDict[int, list[Record]] = OrderedDict()
        self._current: dict[str, Version] = {}  # overlay: id -> latest version
        self._log: list[Version] = []  # overlay versions in tick order
        self._log_ticks: list[int] = []
        self._last_tick = STATIC_TICKS + settings.persons * self.ticks_per_person - 1

    # --- time ---------------------------------------------------------------------------------------
    def instant(self, tick: int) -> datetime:
        """The ``lastUpdated`` instant of a tick."""
        return self.base_epoch + timedelta(milliseconds=tick)

    def tick_at(self, instant: datetime) -> int:
        """The first tick at or after ``instant`` (negative before the epoch)."""
        delta = instant - self.base_epoch
        return (delta.days * 86_400_000) + delta.seconds * 1000 + -(-delta.microseconds // 1000)

    @property
    def first_change_tick(self) -> int:
        """The first tick after the starting snapshot: changes made as time moves come at or after it."""
        return STATIC_TICKS + self.settings.persons * self.ticks_per_person

    @property
    def end_tick(self) -> int:
        """The tick of the latest version (the server's "now" in ticks)."""
        return self._last_tick

    # --- base ---------------------------------------------------------------------------------------
    def base_records(self, index: int) -> list[Record]:
        """Person ``index``'s records at this trust as first loaded (cached for a while)."""
        cached = self._base_cache.get(index)
        if cached is not None:
            self._base_cache.move_to_end(index)
            return cached
        person = self.population.person(index)
        records = trust_records(
            person, self.trust, seed=self.settings.seed, noise=self.settings.noise, codec=self.codec
        )[: self.ticks_per_person - 1]
        self._base_cache[index] = records
        if len(self._base_cache) > _CACHE_PERSONS:
            self._base_cache.popitem(last=False)
        return records

    def _base_versions(self, from_tick: int, kind: str | None) -> Iterator[Version]:
        """Base versions at or after ``from_tick`` in tick order (stale ones included)."""
        if from_tick < STATIC_TICKS:
            for k, rec in enumerate(self.statics):
                if k >= from_tick and (kind is None or rec.kind == kind):
                    yield Version(rec.kind, rec.id, 1, k, rec)
        first = max(0, (from_tick - STATIC_TICKS) // self.ticks_per_person)
        for index in range(first, self.settings.persons):
            base = STATIC_TICKS + index * self.ticks_per_person
            for k, rec in enumerate(self.base_records(index)):
                if base + k >= from_tick and (kind is None or rec.kind == kind):
                    yield Version(rec.kind, rec.id, 1, base + k, rec)
            # lets a scan stop at a person boundary with nothing of this kind yielded
            yield Version("", "", 0, base + self.ticks_per_person - 1, None)

    def _overlay_versions(self, from_tick: int) -> Iterator[Version]:
        start = bisect.bisect_left(self._log_ticks, from_tick)
        yield from self._log[start:]

    # --- queries ------------------------------------------------------------------------------------
    def current(self, kind: str | None, from_tick: int) -> Iterator[Version]:
        """Current versions of ``kind`` (or all kinds) at or after ``from_tick``, in tick order.

        Yields a filler ``Version`` with an empty ``kind`` at every person boundary so a caller can bound its
        scan and resume from the filler's tick.
        """
        for v in self._base_versions(from_tick, kind):
            if v.kind and v.id in self._current:
                continue  # changed since the snapshot: the newer version is in the overlay
            yield v
        for v in self._overlay_versions(from_tick):
            if (kind is None or v.kind == kind) and self._current[v.id] is v and v.record is not None:
                yield v

    def history(self, kind: str | None, from_tick: int) -> Iterator[Version]:
        """Every version (deletions included) of ``kind`` at or after ``from_tick``, in tick order; fillers as
        in :meth:`current`."""
        yield from self._base_versions(from_tick, kind)
        for v in self._overlay_versions(from_tick):
            if kind is None or v.kind == kind:
                yield v

    def read(self, record_id: str) -> Version | None:
        """The current version of ``record_id`` (a deletion version when deleted), or None if unknown."""
        changed = self._current.get(record_id)
        if changed is not None:
            return changed
        if record_id in {r.id for r in self.statics}:
            k = next(k for k, r in enumerate(self.statics) if r.id == record_id)
            return Version(self.statics[k].kind, record_id, 1, k, self.statics[k])
        index = self.codec.person_of(record_id)
        if index is None or index >= self.settings.persons:
            return None
        for k, rec in enumerate(self.base_records(index)):
            if rec.id == record_id:
                return Version(rec.kind, rec.id, 1, STATIC_TICKS + index * self.ticks_per_person + k, rec)
        return None

    def base_record(self, record_id: str) -> Record | None:
        """The record as first loaded (before any change), or None for records added later."""
        index = self.codec.person_of(record_id)
        if index is None or index >= self.settings.persons:
            return None
        return next((r for r in self.base_records(index) if r.id == record_id), None)

    # --- changes ------------------------------------------------------------------------------------
    def put(self, record: Record, at: datetime) -> Version:
        """Store a new version of ``record`` (new or changed) at simulated time ``at``."""
        return self._append(record.kind, record.id, record, at)

    def delete(self, kind: str, record_id: str, at: datetime) -> Version:
        """Delete ``record_id``: later searches miss it, reads answer 410, history shows the deletion."""
        return self._append(kind, record_id, None, at)

    def _append(self, kind: str, record_id: str, record: Record | None, at: datetime) -> Version:
        previous = self.read(record_id)
        tick = max(self._last_tick + 1, self.tick_at(at))
        version = Version(kind, record_id, (previous.version if previous else 0) + 1, tick, record)
        self._last_tick = tick
        self._current[record_id] = version
        self._log.append(version)
        self._log_ticks.append(tick)
        return version

    @property
    def change_count(self) -> int:
        """How many versions the overlay holds."""
        return len(self._log)
