"""What the API benchmarks share: the ten ``_revinclude``s of the heaviest scenario, and the wrk script that
cycles a list of request paths (with an Authorization header when ``BENCH_AUTH`` is set) and prints one JSON line
of results."""

from __future__ import annotations

REVINCLUDES = (
    "Observation:subject",
    "Encounter:subject",
    "Condition:subject",
    "Procedure:subject",
    "MedicationRequest:subject",
    "AllergyIntolerance:patient",
    "Immunization:patient",
    "DiagnosticReport:subject",
    "DocumentReference:subject",
    "ServiceRequest:subject",
)
#: wrk prints one JSON line from this Lua script: requests, duration, errors, latency percentiles
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local auth = os.getenv("BENCH_AUTH")
wrk.headers["Accept"] = "application/fhir+json"
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
