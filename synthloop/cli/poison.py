"""``synthloop poison scan``.

Thin: parse, call a library function, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthloop.cli.app import app, console, err_console, user_errors

poison_app = typer.Typer(no_args_is_help=True, help="Poisoning scan of a training dataset.")
app.add_typer(poison_app, name="poison")


@poison_app.command("scan")
@user_errors
def poison_scan(
    data: Annotated[Path, typer.Argument(help="Dataset: JSONL/CSV/Parquet or plain text.")],
    field: Annotated[str, typer.Option(help="Text field, or PROMPT,RESPONSE for instruction "
                                            "data (triggers are mined in the prompt).")
                     ] = "text",
    json_path: Annotated[Path | None, typer.Option("--json", help="Report: triggers with "
                                                                  "evidence, campaigns, flagged "
                                                                  "records and reasons.")
                         ] = None,
    quarantine: Annotated[Path | None, typer.Option(
        help="Folder for quarantine.parquet (flagged) and clean.parquet (the rest); the input "
             "is never modified.")] = None,
    embeddings: Annotated[bool, typer.Option(help="Also run the spectral-signature detector "
                                                  "on MiniLM embeddings (slow on CPU).")
                          ] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Find backdoor triggers and injected records: gibberish after a trigger, label flips
    tied to a phrase, near-identical injection campaigns, embedding outliers."""
    import json

    from synthloop.poison import ScanConfig, scan_dataset, write_quarantine
    from synthloop.records.io import write_text_atomic

    err_console.print(f"[dim]· scanning {data}[/]")
    table, res = scan_dataset(data, field=field,
                              config=ScanConfig(embeddings=embeddings, seed=seed))
    ids = table.column("id").to_pylist()
    console.print(f"{int(res.flagged.sum()):,} of {res.n:,} records flagged "
                  f"({res.mode} anomalies)", highlight=False)
    for t in res.triggers[:10]:
        console.print(f"  suspected trigger {t['trigger']!r}: in {t['records']} records, "
                      f"{t['anomalous']} anomalous (z={t['z']})", highlight=False)
    for c in res.campaigns[:10]:
        console.print(f"  campaign: {c['records']} near-identical records, e.g. "
                      f"{c['example'][:80]!r}", highlight=False)
    if quarantine:
        q_path, clean_path = write_quarantine(table, res, quarantine)
        console.print(f"quarantine: {q_path} ({int(res.flagged.sum()):,}); clean: {clean_path}")
    if json_path:
        write_text_atomic(json.dumps(res.to_dict(ids), indent=1) + "\n", json_path)
        console.print(f"json: {json_path}")
