"""The Bulk Data service: kick-off, status, cancel, files, and the background worker that writes exports.

Jobs live in the store (:mod:`bcconnect.bulk._jobs`), files under ``[bulk] directory``. Any API process may
kick off, answer a poll or serve a file; the worker in each process claims queued jobs (and jobs whose worker
died: their lease ran out), up to ``[bulk] concurrency`` at a time, and sweeps expired exports away.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson

from bcconnect.bulk._export import (
    PAGE_ROWS,
    PROVENANCE,
    ExportStopped,
    Selection,
    TypeResult,
    export_types,
    outcome_line,
    wants_provenance,
    write_errors,
    write_type,
)
from bcconnect.bulk._jobs import (
    Job,
    JobFile,
    JobState,
    add_file,
    claim_jobs,
    drop_files_of_types,
    expired_jobs,
    finish,
    get_job,
    insert_job,
    job_files,
    renew,
    set_state,
)
from bcconnect.bulk._request import ExportRequest, Level
from bcconnect.cohorts import cohort_member_person_ids
from bcconnect.config import BulkSettings, Settings
from bcconnect.errors import Forbidden, RequestError, ResourceNotFound
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM
from bcconnect.logging import get_logger
from bcconnect.security import NationalOptOut, objecting_patient_ids
from bcconnect.store import Tx, canonical_ids, current_ids_with_token, current_t
from bcconnect.view import AccessContext, View

log = get_logger(__name__)

#: the manifest extension that states how many persons were left out of the export and why (never who)
WITHHELD_EXTENSION = "https://bcconnect.nhs.uk/StructureDefinition/bulk-persons-withheld"

#: ``members(access, group_id)``: the person ids (golden Patient ids) of a Group, None when there is no such Group
GroupMembers = Callable[[AccessContext, str], Awaitable[list[str] | None]]


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote: resources per type, files, and persons left out (counts only)."""

    counts: dict[str, int]
    files: list[JobFile]
    errors: list[JobFile]
    withheld: dict[str, int] = field(default_factory=dict)


def access_to_json(access: AccessContext) -> dict[str, Any]:
    """The requester's grant, stored with the job: the export is screened as they would be."""
    return {
        "user": access.user,
        "role": access.role,
        "organisation": access.organisation,
        "purpose": access.purpose,
        "scopes": sorted(access.scopes),
        "patient": access.patient,
        "client_id": access.client_id,
        "allow_sensitive": access.allow_sensitive,
        "anonymous": access.anonymous,
        "readable_types": None if access.readable_types is None else sorted(access.readable_types),
    }


def access_from_json(data: dict[str, Any]) -> AccessContext:
    """Read back :func:`access_to_json`."""
    types = data.get("readable_types")
    return AccessContext(
        user=data.get("user"),
        role=data.get("role"),
        organisation=data.get("organisation"),
        purpose=data.get("purpose"),
        scopes=frozenset(data.get("scopes") or ()),
        patient=data.get("patient"),
        client_id=data.get("client_id"),
        allow_sensitive=bool(data.get("allow_sensitive")),
        anonymous=bool(data.get("anonymous")),
        readable_types=None if types is None else frozenset(types),
    )


def _instant(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _persons_of(tx: Tx, patient_ids: Iterable[str]) -> frozenset[str]:
    ids = list(set(patient_ids))
    canon = canonical_ids(tx, "Patient", ids)
    return frozenset(canon.get(i, i) for i in ids)


def opted_out_persons(tx: Tx, opt_out: NationalOptOut) -> frozenset[str]:
    """The persons (golden ids) any of whose records carries an NHS number under the national data opt-out."""
    if not opt_out.nhs_numbers:
        return frozenset()
    found = current_ids_with_token(tx, "Patient", "identifier", [(NHS_NUMBER_SYSTEM, n) for n in opt_out.nhs_numbers])
    return _persons_of(tx, found)


def objecting_persons(tx: Tx) -> frozenset[str]:
    """The persons in the objection register (golden ids)."""
    return _persons_of(tx, objecting_patient_ids(tx))


async def default_group_members(view: View, access: AccessContext, group_id: str) -> list[str] | None:
    """A cohort's members (golden Patient ids), as the cohorts package reads them: minus anyone under the
    national data opt-out or in the objection register *now*; None when there is no such Group."""
    return await cohort_member_person_ids(view, group_id)


async def plan_selection(
    view: View,
    access: AccessContext,
    request: ExportRequest,
    *,
    opt_out: NationalOptOut,
    group_members: GroupMembers,
) -> tuple[Selection, dict[str, int]]:
    """Whose resources the export carries, and how many persons were left out for each reason."""
    members: frozenset[str] | None = None
    if request.level is Level.GROUP:
        assert request.group_id is not None
        found = await group_members(access, request.group_id)
        if found is None:
            raise ResourceNotFound(f"Group/{request.group_id} is not known")
        members = await view.store.read(lambda tx: _persons_of(tx, found))

    def facts(tx: Tx) -> tuple[frozenset[str], frozenset[str]]:
        return opted_out_persons(tx, opt_out), objecting_persons(tx)

    excluded, objecting = await view.store.read(facts)
    population = members if members is not None else None
    withheld = {
        "nationalDataOptOut": len(excluded if population is None else excluded & population),
        "objection": len(objecting if population is None else objecting & population),
    }
    selection = Selection(members=members, excluded=excluded, patients_only=request.level is not Level.SYSTEM)
    return selection, withheld


def _count(counts: dict[str, int], resource_type: str, result: TypeResult) -> None:
    if result.count or resource_type not in counts:
        counts[resource_type] = counts.get(resource_type, 0) + result.count
    if result.provenance:
        counts[PROVENANCE] = counts.get(PROVENANCE, 0) + result.provenance


def ignored_lines(request: ExportRequest) -> list[bytes]:
    """What lenient handling left unapplied, as OperationOutcome lines for the error file (the Bulk Data IG)."""
    return [outcome_line(note, code="not-supported", severity="warning") for note in request.ignored]


async def export_to_folder(
    view: View,
    access: AccessContext,
    request: ExportRequest,
    out: Path,
    *,
    opt_out: NationalOptOut,
    group_members: GroupMembers | None = None,
    max_file_bytes: int = 256 << 20,
    progress: Callable[[str, int], None] | None = None,
    page_rows: int = PAGE_ROWS,
) -> ExportSummary:
    """Run an export straight into ``out`` (``bcconnect export --group``): the same selection and screen as
    ``$export``, without a job or HTTP."""
    members = group_members or (lambda a, g: default_group_members(view, a, g))
    selection, withheld = await plan_selection(view, access, request, opt_out=opt_out, group_members=members)
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    at = await view.store.read(current_t)
    files: list[JobFile] = []
    counts: dict[str, int] = {}
    errors: list[bytes] = ignored_lines(request)

    async def on_file(done: JobFile) -> None:
        files.append(done)

    async def on_page(resource_type: str, written: int) -> bool:
        if progress is not None:
            progress(resource_type, written)
        return True

    with_provenance = wants_provenance(request, access)
    for resource_type in export_types(request, access, await view.export_types()):
        result = await write_type(
            view, access, request, resource_type, at=at, directory=out, selection=selection,
            max_file_bytes=max_file_bytes, on_file=on_file, on_page=on_page, page_rows=page_rows,
            with_provenance=with_provenance,
        )  # fmt: skip
        _count(counts, resource_type, result)
        errors += result.errors
    error_files = await write_errors(out, errors, on_file)
    return ExportSummary(counts, [f for f in files if f.kind == "output"], error_files, withheld)


class BulkExports:
    """Kick-off, status, cancel and files of Bulk Data exports over one view, and their worker."""

    def __init__(
        self,
        view: View,
        settings: BulkSettings,
        directory: Path,
        *,
        opt_out: NationalOptOut | None = None,
        group_members: GroupMembers | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.view = view
        self.settings = settings
        self.directory = directory
        self.opt_out = opt_out or NationalOptOut()
        self.group_members = group_members or (lambda a, g: default_group_members(view, a, g))
        self.clock = clock
        #: this process's name on the leases it takes
        self.owner = f"bulk-{uuid.uuid4()}"
        self._wake: anyio.Event | None = None
        self._running: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, view: View, *, group_members: GroupMembers | None = None) -> BulkExports:
        """The service as configured: ``[bulk]`` and ``[security] national_opt_out_file``."""
        data_dir = settings.resolve(settings.paths.data_dir)
        directory = Path(settings.bulk.directory)
        opt_out_file = settings.security.national_opt_out_file
        opt_out = NationalOptOut.load(settings.resolve(opt_out_file) if opt_out_file else None)
        return cls(
            view,
            settings.bulk,
            directory if directory.is_absolute() else data_dir / directory,
            opt_out=opt_out,
            group_members=group_members,
        )

    # --- the client's side -----------------------------------------------------------------------------------
    async def kick_off(self, access: AccessContext, request: ExportRequest, *, base_url: str, request_url: str) -> Job:
        """Check what can be checked now (the Group exists, each ``_typeFilter`` is a valid search) and queue."""
        if access.patient is not None:
            raise Forbidden("a patient-level grant cannot export the population; bulk export needs system/ scopes")
        for resource_type, query in request.type_filters:
            # the same search (and its 400s) the worker will run, so a bad filter is refused before a job exists
            await self.view.search(access, resource_type, [*query, ("_count", "1")])
        if request.level is Level.GROUP:
            assert request.group_id is not None
            if await self.group_members(access, request.group_id) is None:
                raise ResourceNotFound(f"Group/{request.group_id} is not known")
        now = self.clock()
        job = Job(
            job_id=str(uuid.uuid4()),
            state=JobState.QUEUED,
            level=request.level.value,
            group_id=request.group_id,
            request_url=request_url,
            parameters={"request": request.to_json(), "base_url": base_url},
            access=access_to_json(access),
            client_id=access.client_id,
            user_id=access.user,
            at_t=await self.view.store.read(current_t),
            transaction_time=_instant(now),
            created_at=now,
            finished_at=None,
            expires_at=None,
            progress={},
            manifest=None,
            error=None,
        )
        await self.view.store.write(lambda tx: insert_job(tx, job))
        log.info("bulk_export_queued", job=job.job_id, level=job.level, client=job.client_id)
        if self._wake is not None:
            self._wake.set()
        return job

    async def job_for(self, access: AccessContext, job_id: str) -> Job:
        """The caller's own job; anyone else's (or an unknown, cancelled or expired one) is a 404."""
        job = await self.view.store.read(lambda tx: get_job(tx, job_id))
        if job is None or job.client_id != access.client_id or job.user_id != access.user:
            raise ResourceNotFound(f"there is no export {job_id[:64]!r} for this client")
        if job.state is JobState.CANCELLED:
            raise ResourceNotFound(f"export {job_id} was cancelled")
        if job.state is JobState.EXPIRED:
            raise ResourceNotFound(f"export {job_id} has expired and its files were removed")
        return job

    def progress_text(self, job: Job) -> str:
        """The ``X-Progress`` of a job in flight."""
        if job.state is JobState.QUEUED:
            return "queued"
        done = job.progress.get("done") or []
        total = job.progress.get("types")
        current = job.progress.get("current")
        text = f"{len(done)} of {total} resource types done" if total is not None else "starting"
        if current:
            text += f"; {current}: {job.progress.get('written', 0)} resources written"
        return text

    async def cancel(self, access: AccessContext, job_id: str) -> None:
        """``DELETE`` on the status URL: stop the job (its worker notices at the next page) and remove its files."""
        job = await self.job_for(access, job_id)
        await self.view.store.write(lambda tx: set_state(tx, job.job_id, JobState.CANCELLED, now=self.clock()))
        await self._remove_folder(job.job_id)
        log.info("bulk_export_cancelled", job=job.job_id)

    async def file(self, access: AccessContext, job_id: str, name: str) -> tuple[Path, JobFile]:
        """A completed job's file, for its requester while their grant still reads its type."""
        job = await self.job_for(access, job_id)
        if job.state is not JobState.COMPLETED:
            raise ResourceNotFound(f"export {job_id} has no files yet")
        found = next((f for f in await self.view.store.read(lambda tx: job_files(tx, job_id)) if f.name == name), None)
        if found is None:
            raise ResourceNotFound(f"export {job_id} has no file {name[:80]!r}")
        readable = access.readable_types
        if found.kind == "output" and readable is not None and found.resource_type not in readable:
            raise Forbidden(f"the access token's scopes do not allow reading {found.resource_type}")
        path = self.directory / job_id / found.name
        if not path.is_file():
            raise ResourceNotFound(f"export {job_id}'s file {name} is no longer available")
        return path, found

    def manifest(self, job: Job) -> bytes:
        """The completion manifest of a finished job (stored when it finished)."""
        assert job.manifest is not None
        return job.manifest

    # --- the worker ------------------------------------------------------------------------------------------
    async def run_worker(self, *, poll_seconds: float = 1.0) -> None:
        """Work exports until cancelled: claim jobs up to the concurrency, sweep expired ones."""
        self._wake = anyio.Event()
        async with anyio.create_task_group() as group:
            while True:
                try:
                    await self.sweep()
                    for job in await self._claim():
                        self._running.add(job.job_id)
                        group.start_soon(self._run_claimed, job)
                except Exception:  # a store hiccup must not stop the worker; retried next round
                    log.exception("bulk_worker_round_failed")
                with anyio.move_on_after(poll_seconds):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def work_once(self) -> int:
        """Claim and run every job that can be claimed now, to the end (tests and one-shot tools)."""
        jobs = await self._claim()
        for job in jobs:
            self._running.add(job.job_id)
            await self._run_claimed(job)
        return len(jobs)

    async def _claim(self) -> list[Job]:
        free = self.settings.concurrency - len(self._running)
        now = self.clock()
        return await self.view.store.write(
            lambda tx: claim_jobs(tx, self.owner, now=now, lease_seconds=self.settings.lease_seconds, limit=free)
        )

    async def sweep(self) -> list[str]:
        """Remove the files of exports past their expiry; the jobs then answer 404."""
        now = self.clock()
        due = await self.view.store.read(lambda tx: expired_jobs(tx, now=now))
        for job_id in due:
            await self.view.store.write(lambda tx, j=job_id: set_state(tx, j, JobState.EXPIRED, now=now))  # type: ignore[misc]
            await self._remove_folder(job_id)
            log.info("bulk_export_expired", job=job_id)
        return due

    async def _remove_folder(self, job_id: str) -> None:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(self.directory / job_id, ignore_errors=True))

    async def _run_claimed(self, job: Job) -> None:
        try:
            await self._run(job)
        except ExportStopped:
            log.info("bulk_export_stopped", job=job.job_id)
        except Exception as exc:  # any failure of one export (store, disk, a defect) fails that job, not the worker
            log.exception("bulk_export_failed", job=job.job_id, error=type(exc).__name__)
            now = self.clock()
            message = str(exc) if isinstance(exc, RequestError) else "the export could not be completed"
            failed = await self.view.store.write(
                lambda tx: finish(
                    tx, job.job_id, self.owner, state=JobState.FAILED, now=now,
                    expires_at=now + self.settings.retain_hours * 3600, error=message,
                )
            )  # fmt: skip
            if failed:
                await self._remove_folder(job.job_id)
        finally:
            self._running.discard(job.job_id)

    async def _run(self, job: Job) -> None:
        request = ExportRequest.from_json(job.parameters["request"])
        access = access_from_json(job.access)
        folder = self.directory / job.job_id
        await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        progress: dict[str, Any] = dict(job.progress)
        done: list[str] = list(progress.get("done") or [])
        counts: dict[str, int] = dict(progress.get("counts") or {})
        # a resumed job keeps the types it finished and rewrites the rest from the same snapshot
        stale = await self.view.store.write(lambda tx: drop_files_of_types(tx, job.job_id, frozenset(done)))
        for name in stale:
            await anyio.Path(folder / name).unlink(missing_ok=True)
        selection, withheld = await plan_selection(
            self.view, access, request, opt_out=self.opt_out, group_members=self.group_members
        )
        types = export_types(request, access, await self.view.export_types())
        progress.update(types=len(types), done=done, counts=counts)

        async def keep_going(current: str | None, written: int) -> bool:
            progress.update(current=current, written=written)
            until = self.clock() + self.settings.lease_seconds
            state = await self.view.store.write(
                lambda tx: renew(tx, job.job_id, self.owner, until=until, progress=progress)
            )
            return state is JobState.RUNNING

        async def on_file(file: JobFile) -> None:
            await self.view.store.write(lambda tx: add_file(tx, job.job_id, file))

        errors: list[str] = list(progress.get("errors") or [e.decode() for e in ignored_lines(request)])
        max_bytes = max(1, int(self.settings.max_file_mb * 1024 * 1024))
        with_provenance = wants_provenance(request, access)
        for resource_type in types:
            if resource_type in done:
                continue
            result: TypeResult = await write_type(
                self.view, access, request, resource_type, at=job.at_t, directory=folder, selection=selection,
                max_file_bytes=max_bytes, on_file=on_file, on_page=keep_going, page_rows=self.settings.page_rows,
                with_provenance=with_provenance,
            )  # fmt: skip
            _count(counts, resource_type, result)
            done.append(resource_type)
            errors += [e.decode() for e in result.errors]
            progress["errors"] = errors
            if not await keep_going(None, 0):
                raise ExportStopped
        await write_errors(folder, [e.encode() for e in errors], on_file)
        files = await self.view.store.read(lambda tx: job_files(tx, job.job_id))
        now = self.clock()
        manifest = self._manifest(job, files, withheld)
        finished = await self.view.store.write(
            lambda tx: finish(
                tx, job.job_id, self.owner, state=JobState.COMPLETED, now=now,
                expires_at=now + self.settings.retain_hours * 3600, manifest=manifest,
            )
        )  # fmt: skip
        if not finished:
            await self._remove_folder(job.job_id)
            raise ExportStopped
        log.info("bulk_export_completed", job=job.job_id, resources=sum(counts.values()), files=len(files))

    def _manifest(self, job: Job, files: list[JobFile], withheld: dict[str, int]) -> bytes:
        base = job.parameters["base_url"]

        def entry(file: JobFile) -> dict[str, Any]:
            return {
                "type": file.resource_type,
                "url": f"{base}/$export-file/{job.job_id}/{file.name}",
                "count": file.line_count,
            }

        return orjson.dumps(
            {
                "transactionTime": job.transaction_time,
                "request": job.request_url,
                "requiresAccessToken": True,
                "output": [entry(f) for f in files if f.kind == "output"],
                "error": [entry(f) for f in files if f.kind == "error"],
                # the IG reserves ``extension`` in the manifest for servers: counts of persons left out, never who
                "extension": {WITHHELD_EXTENSION: withheld},
            }
        )
