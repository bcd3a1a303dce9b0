"""Source records as RBK's HL7 v2.4 messages (ER7: ``|^~\\&``, segments end with ``\\r``).

Which message each change becomes: a new patient → ``ADT^A28`` (``A04`` for a late registration), a
demographic change → ``A31``, a merge → ``A40`` (``MRG``), an admission → ``A01`` (+ ``A02`` for stays over
three days) + ``A03``, an A&E or clinic attendance → ``A04``, a changed contact → ``A08``, a diagnosis →
``A08`` with ``DG1`` (``DG1-21 = D`` when withdrawn), an allergy → ``A31`` with ``AL1``, results →
``ORU^R01`` (``OBX-11`` ``F`` final, ``C`` corrected, ``D`` deleted), a referral → ``REF^I12``.
Medications, pathways, appointments, procedures and consents are not in RBK's feed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final

from bcconnect_sandbox import density
from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.population import Allergy, Condition, Encounter, Observation
from bcconnect_sandbox.referrals import Referral
from bcconnect_sandbox.sources import Record, SourcePatient

SENDING_APP: Final = "CAREFLOW"
_CLASS: Final = {"ae": "E", "emergency": "I", "elective": "I", "outpatient": "O", "sexual_health": "O"}
_RESULT: Final = {
    "hba1c": (ref.OBS_HBA1C,),
    "egfr": (ref.OBS_EGFR,),
    "bmi": (ref.OBS_BMI,),
    "fbc": (ref.OBS_HB, ref.OBS_WBC, ref.OBS_PLT),
    "psa": (ref.OBS_PSA,),
    "fit": (ref.OBS_FIT,),
    **density.ANALYTES,
}


def escape(text: str) -> str:
    r"""ER7-escape free text.

    >>> escape("A&E | ward ^2")
    'A\\T\\E \\F\\ ward \\S\\2'
    """
    out = text.replace("\\", "\\E\\")
    for char, code in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        out = out.replace(char, code)
    return out


def ts(moment: datetime) -> str:
    """HL7 TS to the second (UTC)."""
    return moment.strftime("%Y%m%d%H%M%S")


def dt(day: date) -> str:
    """HL7 DT."""
    return day.strftime("%Y%m%d")


def segment(name: str, *fields: str) -> str:
    """A segment from its fields (field 1 first); trailing empty fields are dropped."""
    values = list(fields)
    while values and values[-1] == "":
        values.pop()
    return "|".join((name, *values))


def _msh(event: str, structure: str, control_id: str, at: datetime) -> str:
    kind, trigger = event.split("^")
    return "MSH|^~\\&|" + "|".join(
        (
            SENDING_APP,
            "RBK",
            "BCCONNECT",
            "BCC",
            ts(at),
            "",
            f"{kind}^{trigger}^{structure}",
            control_id,
            "P",
            "2.4",
            "",
            "",
            "AL",
            "NE",
            "GBR",
            "UNICODE UTF-8",
        )
    )


def _pid(p: SourcePatient) -> str:
    ids = [f"{p.id}^^^RBK^MR"]
    if p.nhs_number:
        ids.append(f"{p.nhs_number}^^^NHS^NH")
    address = f"{escape(p.address_line)}^^{escape(p.town)}^^{p.postcode}^GBR^H" if p.postcode else ""
    fields = [""] * 32
    fields[0] = "1"
    fields[2] = "~".join(ids)  # PID-3 repeats: MRN and NHS number
    first, _, middle = p.given.partition(" ")
    fields[4] = f"{escape(p.family.upper())}^{escape(first)}^{escape(middle)}".rstrip("^")
    fields[6] = dt(p.birth_date)
    fields[7] = {"male": "M", "female": "F"}.get(p.sex, "U")
    fields[10] = address
    fields[12] = f"{p.phone}^PRN^CP" if p.phone else ""
    fields[21] = p.ethnic_category
    fields[31] = p.nhs_status or ""  # PID-32 identity reliability: the NHS number verification status
    return segment("PID", *fields)


def _pd1(p: SourcePatient) -> str:
    practice = next((x for x in ref.PRACTICES if x.code == p.gp_practice), None)
    gp = f"{escape(practice.name)}^^{practice.code}" if practice and not p.pseudonymous else ""
    return segment("PD1", "", "", gp, "", "", "", "", "", "", "", "", "Y" if p.restricted else "N")


def _pv1(record: Record, e: Encounter, *, discharged: bool) -> str:
    fields = [""] * 45
    fields[0] = "1"
    fields[1] = _CLASS[e.kind]
    fields[2] = "GUM^^^RBK" if e.kind == "sexual_health" else "AE^^^RBK" if e.kind == "ae" else "WARD7^^^RBK"
    fields[3] = e.admission_method or ""
    fields[9] = e.tfc or ""
    fields[18] = record.id  # PV1-19 visit number
    fields[35] = (e.discharge_method or "") if discharged else ""
    fields[43] = ts(e.start)
    fields[44] = ts(e.end) if discharged else ""
    return segment("PV1", *fields)


def messages(record: Record, patient: SourcePatient, *, event: str, control: str, at: datetime) -> list[str]:
    """The messages for one change. ``event`` is ``new``, ``update``, ``delete`` or ``merge``.

    Control ids are ``control`` + a digit per message.
    """
    out: list[str] = []

    def emit(trigger: str, structure: str, *segments: str) -> None:
        control_id = f"{control}{len(out)}"
        evn = segment("EVN", trigger.split("^")[1], ts(at))
        body = [_msh(trigger, structure, control_id, at)]
        if trigger.startswith("ADT"):
            body.append(evn)
        out.append("\r".join((*body, *segments)) + "\r")

    fact = record.fact
    if (
        isinstance(fact, Observation)
        and fact.kind in density.PANELS
        and record.kind == "observation"
        and event == "new"
    ):
        return out  # a new panel (blood count, U&E, LFT, lipids) travels whole, with its report
    pid, pd1 = _pid(patient), _pd1(patient)
    if record.kind == "patient":
        assert isinstance(fact, SourcePatient)
        if event == "merge" and fact.replaced_by:
            emit("ADT^A40", "ADT_A39", pid.replace(fact.id, fact.replaced_by, 1), segment("MRG", f"{fact.id}^^^RBK^MR"))
        elif event == "new" and fact.record_no == 3:
            emit("ADT^A04", "ADT_A01", pid, pd1, segment("PV1", "1", "O"))
        else:
            emit("ADT^A28" if event == "new" else "ADT^A31", "ADT_A05", pid, pd1, segment("PV1", "1", "N"))
            if event == "new" and fact.replaced_by:
                emit(
                    "ADT^A40",
                    "ADT_A39",
                    pid.replace(fact.id, fact.replaced_by, 1),
                    segment("MRG", f"{fact.id}^^^RBK^MR"),
                )
    elif isinstance(fact, Encounter):
        if event != "new":
            emit("ADT^A08", "ADT_A01", pid, pd1, _pv1(record, fact, discharged=True))
        elif fact.kind in {"emergency", "elective"}:
            emit("ADT^A01", "ADT_A01", pid, pd1, _pv1(record, fact, discharged=False))
            if fact.end - fact.start > timedelta(days=3):
                emit("ADT^A02", "ADT_A02", pid, _pv1(record, fact, discharged=False).replace("WARD7", "WARD9"))
            emit("ADT^A03", "ADT_A03", pid, pd1, _pv1(record, fact, discharged=True))
        else:
            emit("ADT^A04", "ADT_A01", pid, pd1, _pv1(record, fact, discharged=True))
    elif isinstance(fact, Condition):
        dg1 = segment(
            "DG1",
            "1",
            "",
            f"{fact.concept.code}^{escape(fact.concept.display)}^SCT",
            "",
            ts(datetime.combine(fact.onset, at.timetz())),
            "F",
            *([""] * 14),
            "D" if event == "delete" else "A",
        )
        emit("ADT^A08", "ADT_A01", pid, pd1, segment("PV1", "1", "N"), dg1)
    elif isinstance(fact, Allergy):
        emit(
            "ADT^A31",
            "ADT_A05",
            pid,
            pd1,
            segment("PV1", "1", "N"),
            segment("AL1", "1", "DA", f"{fact.concept.code}^{escape(fact.concept.display)}^SCT"),
        )
    elif isinstance(fact, Observation):
        emit("ORU^R01", "ORU_R01", pid, *_results(record, fact, event))
    elif isinstance(fact, Referral) and record.kind == "referral":
        revoked = fact.triage in ("returned", "redirected") or fact.transferred_out is not None
        reason = f"{fact.reason.code}^{escape(fact.reason.display)}^SCT" if fact.reason else ""
        rf1 = segment(
            "RF1",
            # HL7 table 0283: P pending (awaiting triage), A accepted, R rejected (returned/redirected), C closed
            "R" if revoked else "C" if fact.clock_stop else "P" if fact.triage == "awaiting" else "A",
            {"routine": "R", "urgent": "U", "asap": "2WW"}[fact.priority],
            f"{fact.network.tfc or ''}^{escape(fact.network.name)}",
            "",
            "",
            record.id,
            dt(fact.authored),
            "",
            "",
            reason,
            f"{fact.ubrn}^UBRN" if fact.ubrn else "",
        )
        emit(
            "REF^I12",
            "REF_I12",
            rf1,
            segment("PRD", "RT", "", "", f"^^{escape(fact.network.name)}"),
            pid,
            segment("NTE", "1", "", escape(f"Referral to {fact.network.name} & review | priority {fact.priority}")),
        )
    elif isinstance(fact, Referral) and record.kind == "appointment" and fact.appointment_start is not None:
        if event != "delete":
            trigger, structure, sch, ais = _appointment(record, fact)
            emit(trigger, structure, sch, pid, ais)
    elif isinstance(fact, Referral) and record.kind == "pathway" and event != "delete":
        start = fact.clock_start if fact.transferred_in and fact.clock_start else (fact.received or fact.authored)
        end = fact.transferred_out or fact.clock_stop
        status = "STOPPED" if end else "TRIAGE" if fact.triage == "awaiting" else "WAITING"
        zrp = segment(
            "ZRP", record.id, fact.ppi, record.refs[0], fact.network.tfc or "", dt(start), dt(end) if end else "",
            status, dt(fact.fds) if fact.fds else "",
        )  # fmt: skip
        events = [segment("ZRE", str(n + 1), code, dt(day)) for n, (day, code) in enumerate(fact.events)]
        emit("ZRT^Z01", "ZRT_Z01", pid, zrp, *events)
    return out


def _appointment(record: Record, fact: Referral) -> tuple[str, str, str, str]:
    """SIU trigger and the SCH and AIS segments of a clinic appointment (S12 booked, S14 attended, S15
    cancelled with the canceller in SCH-6, S26 no-show); SCH-26 names the referral (RF1-6)."""
    assert fact.appointment_start is not None
    status = record.status or fact.appointment_status or "booked"
    trigger = {"booked": "SIU^S12", "cancelled": "SIU^S15", "noshow": "SIU^S26"}.get(status, "SIU^S14")
    fields = [""] * 26
    fields[1] = record.id
    if status == "cancelled" and fact.cancelled_by:
        fields[5] = {"patient": "PAT", "provider": "PROV"}[fact.cancelled_by]
    fields[10] = f"^^^{ts(fact.appointment_start)}"
    fields[24] = {"booked": "Booked", "fulfilled": "Complete", "cancelled": "Cancelled", "noshow": "Noshow"}[status]
    fields[25] = record.refs[0]
    sch = segment("SCH", *fields)
    ais = segment("AIS", "1", "", f"{fact.network.tfc or ''}^{escape(fact.network.name)}")
    return trigger, "SIU_S12", sch, ais


def _results(record: Record, obs: Observation, event: str) -> list[str]:
    status = "D" if event == "delete" else "C" if record.status == "amended" or event == "update" else "F"
    when = ts(obs.effective)
    if obs.kind == "bp":
        code = ref.OBS_BP
        obx = [
            segment(
                "OBX",
                str(n + 1),
                "NM",
                f"{c.code}^{escape(c.display)}^LN",
                "",
                f"{v:g}",
                "mm[Hg]",
                "",
                "",
                "",
                "",
                status,
                "",
                "",
                when,
            )
            for n, (c, v) in enumerate(((ref.OBS_SYSTOLIC, obs.values[0]), (ref.OBS_DIASTOLIC, obs.values[1])))
        ]
    else:
        parts = range(len(obs.values)) if record.kind == "report" else (record.part,)
        code = density.PANELS[obs.kind] if record.kind == "report" else _RESULT[obs.kind][record.part][0]
        obx = []
        for n, part in enumerate(parts):
            concept, _, unit = _RESULT[obs.kind][part]
            obx.append(
                segment(
                    "OBX",
                    str(n + 1),
                    "NM",
                    f"{concept.code}^{escape(concept.display)}^LN",
                    "",
                    f"{obs.values[part]:g}",
                    unit,
                    "",
                    "",
                    "",
                    "",
                    status,
                    "",
                    "",
                    when,
                )
            )
    obr = segment(
        "OBR", "1", "", record.id, f"{code.code}^{escape(code.display)}^LN", "", "", when, *([""] * 17), status
    )
    note = segment("NTE", "1", "", escape("Reported by Manor lab & validated | ref ranges ^ adult ~ see \\notes"))
    return [obr, *obx, note]
