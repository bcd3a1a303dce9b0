"""The stored form of an AuditEvent's JSON: deflated against a preset dictionary of the AuditEvent shape.

An event is ~1–3 KB of JSON in which almost everything (code systems, displays, the profile URL, the key order)
is the same from one event to the next. zlib with a preset dictionary made of that common text stores only
what differs: ids, times, patients, the query, the user. The first byte names the dictionary, so a new
dictionary is a new format byte and every event ever stored still inflates; :data:`FORMATS` may gain entries
but never change one.
"""

from __future__ import annotations

import zlib

from bcconnect.fhir.constants import (
    ODS_ORGANIZATION_SYSTEM,
    SDS_ROLE_PROFILE_SYSTEM,
    SDS_USER_SYSTEM,
    UKCORE_PROFILE_BASE,
    V3_ACT_REASON_SYSTEM,
)

#: the common text of events as :func:`~bcconnect.security._audit.build_audit_event` writes them (sorted keys);
#: zlib finds the longest matches nearest the end of the dictionary, so the commonest parts come last
_DICTIONARY_V1 = (
    '"what":{"identifier":{"value":"'
    '{"type":{"code":"XrequestId","display":"X-Request-Id","system":'
    '"https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"},'
    '"outcomeDesc":"HTTP 404: not-found","outcomeDesc":"HTTP 401: not-authenticated",'
    '"outcome":"4","outcome":"8","action":"R","action":"E",'
    '{"code":"read","code":"search-type","code":"operation","code":"vread","code":"history-instance",'
    '"description":"Observation","description":"Encounter","description":"Patient",'
    '{"description":"Patient","query":"R0VUIC9QYXRpZW50'
    '"role":{"code":"24","display":"Query","system":"http://terminology.hl7.org/CodeSystem/object-role"},'
    '"type":{"code":"2","display":"System Object","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"}}'
    '{"role":{"code":"1","display":"Patient","system":"http://terminology.hl7.org/CodeSystem/object-role"},'
    '"type":{"code":"1","display":"Person","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},'
    '"what":{"reference":"Patient/"}},'
    f'{{"action":"R","agent":[{{"network":{{"address":"127.0.0.1","type":"2"}},"requestor":true,"role":[{{"coding":'
    f'[{{"code":"R8000","system":"{SDS_ROLE_PROFILE_SYSTEM}"}}]}}],"type":{{"coding":[{{"code":"humanuser",'
    '"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type"}]},'
    f'"who":{{"identifier":{{"system":"{SDS_USER_SYSTEM}","value":"'
    '"}}},{"requestor":false,"type":{"coding":[{"code":"dataprocessor",'
    '"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type"}]},'
    f'"who":{{"identifier":{{"system":"{ODS_ORGANIZATION_SYSTEM}","value":"'
    '"}}},{"requestor":false,"type":{"coding":[{"code":"application",'
    '"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type"}]},"who":{"display":"'
    '"}}],"entity":[{"role":{"code":"1","display":"Patient","system":"http://terminology.hl7.org/CodeSystem/object-role"},'
    '"type":{"code":"1","display":"Person","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},'
    '"what":{"reference":"Patient/'
    '"}},{"description":"Patient","query":"'
    '","role":{"code":"24","display":"Query","system":"http://terminology.hl7.org/CodeSystem/object-role"},'
    '"type":{"code":"2","display":"System Object","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"}},'
    '{"type":{"code":"XrequestId","display":"X-Request-Id",'
    '"system":"https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"},"what":{"identifier":{"value":"'
    f'"}}}}],"id":"","meta":{{"profile":["{UKCORE_PROFILE_BASE}AuditEvent"]}},"outcome":"0","outcomeDesc":"HTTP 200",'
    f'"purposeOfEvent":[{{"coding":[{{"code":"TREAT","display":"treatment","system":"{V3_ACT_REASON_SYSTEM}"}},'
    '{"code":"directcare","system":"https://bcconnect.nhs.uk/CodeSystem/purpose-of-use"}]}],'
    '"recorded":"2026-01-01T00:00:00.000Z","resourceType":"AuditEvent","source":{"observer":'
    '{"display":"bcconnect FHIR endpoint"},"type":[{"code":"4","display":"Application Server",'
    '"system":"http://terminology.hl7.org/CodeSystem/security-source-type"}]},"subtype":[{"code":"search-type",'
    '"system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation",'
    '"system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}'
).encode()

#: format byte → preset dictionary (append only: stored events name theirs)
FORMATS: dict[int, bytes] = {1: _DICTIONARY_V1}
CURRENT_FORMAT = 1


def pack(body: bytes) -> bytes:
    """The stored form of an event's JSON bytes.

    >>> unpack(pack(b'{"resourceType":"AuditEvent"}'))
    b'{"resourceType":"AuditEvent"}'
    """
    packer = zlib.compressobj(level=6, wbits=-15, zdict=FORMATS[CURRENT_FORMAT])
    return bytes([CURRENT_FORMAT]) + packer.compress(body) + packer.flush()


def unpack(stored: bytes) -> bytes:
    """The JSON bytes of a stored event (ValueError when its format byte is unknown or the data is damaged)."""
    if not stored or stored[0] not in FORMATS:
        raise ValueError("unknown audit event format")
    unpacker = zlib.decompressobj(wbits=-15, zdict=FORMATS[stored[0]])
    try:
        return unpacker.decompress(stored[1:]) + unpacker.flush()
    except zlib.error as exc:
        raise ValueError("damaged audit event") from exc
