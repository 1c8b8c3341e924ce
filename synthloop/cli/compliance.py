"""``synthloop watermark detect`` and ``synthloop provenance ...``.

Thin: parse, call a library function, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthloop.cli.app import app, console, err_console, user_errors
from synthloop.errors import flag_text

watermark_app = typer.Typer(no_args_is_help=True, help="Text watermark detection.")
app.add_typer(watermark_app, name="watermark")
provenance_app = typer.Typer(no_args_is_help=True,
                             help="Dataset manifests, signatures and lineage.")
app.add_typer(provenance_app, name="provenance")


@watermark_app.command("detect")
@user_errors
def watermark_detect(
    data: Annotated[Path, typer.Argument(help="JSONL/Parquet/CSV (text field) or plain text.")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Per-record results.")
                         ] = None,
    key_file: Annotated[Path | None, typer.Option(
        help="Watermark key file [$SYNTHLOOP_WATERMARK_KEY].")] = None,
    model: Annotated[str, typer.Option(help="Model whose tokenizer generated the text.")
                     ] = "smollm2-135m",
    z_threshold: Annotated[float, typer.Option(help="z at or above which text is "
                                                    "watermarked.")] = 4.0,
    gamma: Annotated[float, typer.Option(help="Green-list share used when marking.")] = 0.25,
    context_width: Annotated[int, typer.Option(help="Context width used when marking.")] = 4,
    text_field: Annotated[str, typer.Option(help="Text column.")] = "text",
) -> None:
    """Score every record for the green-list watermark: z, p-value, tokens scored, verdict."""
    import json

    from synthloop.compliance.watermark import WatermarkSpec, detect, key_id, load_key
    from synthloop.records.io import load_texts, write_text_atomic

    key = load_key(key_file)
    texts = load_texts(data, text_field=text_field)
    res = detect(texts, key, model=model, z_threshold=z_threshold,
                 spec=WatermarkSpec(gamma=gamma, context_width=context_width))
    marked = sum(r["watermarked"] for r in res)
    console.print(f"{marked} of {len(res)} records watermarked (z ≥ {z_threshold:g}; key "
                  f"{key_id(key)})", highlight=False)
    if json_path:
        write_text_atomic(json.dumps({"key_id": key_id(key), "z_threshold": z_threshold,
                                      "watermarked": marked, "records": len(res),
                                      "results": [{"index": i, **r}
                                                  for i, r in enumerate(res)]},
                                     indent=1) + "\n", json_path)
        console.print(f"json: {json_path}")


@provenance_app.command("keygen")
@user_errors
def provenance_keygen(
    out: Annotated[Path, typer.Option(help="Where to write the ed25519 private key (PEM).")],
) -> None:
    """Create an ed25519 signing key; prints the public key to share with verifiers."""
    from synthloop.compliance.manifest import generate_signing_key

    if out.exists():
        from synthloop.errors import ConfigError

        raise ConfigError(f"{out}: exists; refusing to overwrite a key")
    console.print(f"private key: {out}\npublic key:  {generate_signing_key(out)}")


@provenance_app.command("manifest")
@user_errors
def provenance_manifest(
    dataset: Annotated[Path, typer.Argument(help="Parquet file or folder of shards.")],
    key_file: Annotated[Path | None, typer.Option(
        help="ed25519 private key (PEM) to sign with [$SYNTHLOOP_SIGNING_KEY].")] = None,
    sign: Annotated[bool | None, typer.Option(
        "--sign/--no-sign", help="Sign the manifest [when a key is given or "
                                  "$SYNTHLOOP_SIGNING_KEY is set].")] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name.")] = None,
    license_url: Annotated[str | None, typer.Option("--license", help="License URL.")] = None,
    url: Annotated[str | None, typer.Option(help="Dataset URL [file URL of the folder].")
                   ] = None,
) -> None:
    """Write a Croissant 1.1 manifest (validated with mlcroissant) with lineage, disclosure
    and a Merkle root of the records, and sign it."""
    from synthloop.compliance.manifest import publish_manifest

    pub = publish_manifest(dataset, key_file=key_file, sign=sign, name=name, url=url,
                           license_url=license_url)
    console.print(f"manifest: {pub.path} (mlcroissant: {len(pub.errors)} errors, "
                  f"{len(pub.warnings)} warnings)", highlight=False)
    for w in pub.warnings:
        console.print(f"  [dim]warning: {w}[/]", highlight=False)
    if pub.signature is not None:
        console.print(f"signature: {pub.signature}")
    else:
        console.print("[yellow]not signed[/]: pass --key-file (or set $SYNTHLOOP_SIGNING_KEY) "
                      "to sign; verify will report the missing signature")


@provenance_app.command("verify")
@user_errors
def provenance_verify(
    dataset: Annotated[Path, typer.Argument(help="Parquet file or folder of shards.")],
    public_key: Annotated[str | None, typer.Option(help="The signer's public key (base64).")
                          ] = None,
    allow_unknown_signer: Annotated[bool, typer.Option(
        help="Without --public-key, accept a signature by the key embedded in the signature "
             "file (integrity only: proves nothing about who signed).")] = False,
) -> None:
    """Check the signature, every file's sha256 and every record against the manifest;
    names each edited, added or removed record. Exit code 1 when anything differs, or when
    the signer is not checked (no --public-key) unless --allow-unknown-signer."""
    from synthloop.compliance.manifest import verify_dataset

    rep = verify_dataset(dataset, public_key=public_key,
                         allow_unknown_signer=allow_unknown_signer)
    options = ("public_key", "allow_unknown_signer")
    for note in rep.notes:
        console.print(f"[dim]note: {flag_text(note, options)}[/]", highlight=False)
    if rep.ok:
        signer = "signature" if public_key else "signature (integrity only, signer not checked)"
        console.print(f"[green]verified[/]: {signer}, files and {rep.records:,} records "
                      f"match the manifest", highlight=False)
        return
    for p in rep.problems:
        err_console.print(f"[red]✘[/] {flag_text(p, options)}", highlight=False)
    err_console.print(f"[bold red]verification failed[/]: {len(rep.problems)} problem(s)")
    raise typer.Exit(1)


@provenance_app.command("show")
@user_errors
def provenance_show(
    dataset: Annotated[Path, typer.Argument(help="Parquet file or folder of shards.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Lineage summary: origins, generators, depth histogram, watermarks, drops by step."""
    import json

    from synthloop.pipeline.folder import dataset_lineage

    s = dataset_lineage(dataset)
    if as_json:
        print(json.dumps(s, indent=1))
        return
    console.print(f"{s['records']:,} records · synthetic share {s['synthetic_share']:.1%} · "
                  f"{s['real']:,} real, {s['synthetic']:,} synthetic", highlight=False)
    for m, c in s["generators"].items():
        console.print(f"  generator {m}: {c:,} records (weights "
                      f"{s['generator_weights_sha256'][m][:12]}…)", highlight=False)
    console.print(f"  depth histogram {s['depth_histogram']}", highlight=False)
    if s["watermarks"]:
        console.print(f"  watermarks {s['watermarks']}", highlight=False)
    if s.get("dropped"):
        drops = {step: d["records"] for step, d in s["dropped"].items()}
        console.print(f"  dropped by step {drops}", highlight=False)
