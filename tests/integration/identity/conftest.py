"""Identity integration tests use ``store_url`` (tests/conftest.py) and the synthetic population generator of
``bench/identity_population.py``, which this puts on the import path."""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH = Path(__file__).resolve().parents[3] / "bench"
if str(_BENCH) not in sys.path:
    sys.path.insert(0, str(_BENCH))
