"""Dataset manifests (Croissant 1.1 JSON-LD), record-level integrity, ed25519 signatures,
verification and lineage summaries.

A dataset is a Parquet file or a folder of Parquet shards (a pipeline run's ``data/``). Its
manifest ``_croissant.json`` (beside the shards) holds:

- Croissant metadata written with ``mlcroissant`` (FileObjects with sha256, a FileSet, one
  RecordSet whose fields are the Arrow columns), validated by loading it back;
- PROV-O lineage: ``prov:wasDerivedFrom`` (the real sources the run read) and
  ``prov:wasGeneratedBy`` (the run, and every generator model with its weights hash);
- Croissant RAI fields and a ``disclosure`` block (``synthloop:disclosure``: synthetic share,
  generators, generation-depth histogram, IPTC digital source type, watermark key ids);
- ``integrity`` (``synthloop:integrity``): the Merkle root over per-record hashes
  (``_records.sha256`` lists them by record id), so ``verify`` can name the record that
  changed.

``_croissant.json.sig`` is a detached ed25519 signature over the manifest's bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.compliance.secrets import read_secret
from synthloop.errors import ConfigError, InputError
from synthloop.pipeline.folder import RunFolder, dataset_lineage
from synthloop.records.io import (
    dataset_files,
    read_parquet_file,
    read_parquet_schema,
    write_text_atomic,
)
from synthloop.records.schema import utc_now

MANIFEST = "_croissant.json"
LEAVES = "_records.sha256"
SIGNATURE = MANIFEST + ".sig"
SIGNING_KEY_ENV = "SYNTHLOOP_SIGNING_KEY"
SIGNED_PREFIX = b"synthloop-manifest-v1\x00"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(f: Path) -> dict:
    try:
        value = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputError(f"{f}: not readable JSON ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(value, dict):
        raise InputError(f"{f}: expected a JSON object, got {type(value).__name__}")
    return value


def record_leaves(files: list[Path]) -> list[tuple[str, str]]:
    """``(record id, leaf hash)`` per record in dataset order; the leaf hashes the whole row
    (every column, canonical JSON), so any change to a record changes its leaf."""
    out = []
    for f in files:
        table = read_parquet_file(f)
        if "id" not in table.column_names:
            raise InputError(f"{f}: records have no 'id' column (not a synthloop dataset; "
                             f"read it with synthloop tools first)")
        for row in table.to_pylist():
            canon = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                               default=str)
            leaf = hashlib.sha256(b"\x00" + canon.encode("utf-8")).hexdigest()
            out.append((str(row["id"]), leaf))
    return out


def merkle_root(leaves: list[str]) -> str:
    """Root of a binary Merkle tree over hex leaf hashes (inner nodes prefixed 0x01; an odd
    node is carried up unchanged)."""
    level = [bytes.fromhex(x) for x in leaves]
    if not level:
        return hashlib.sha256(b"\x01").hexdigest()
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def _arrow_to_croissant(t: pa.DataType):
    import mlcroissant as mlc

    if pa.types.is_boolean(t):
        return mlc.DataType.BOOL
    if pa.types.is_integer(t):
        return mlc.DataType.INTEGER
    if pa.types.is_floating(t):
        return mlc.DataType.FLOAT
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return mlc.DataType.DATE
    return mlc.DataType.TEXT


def _run_meta(folder: Path) -> dict:
    """A pipeline run's metadata when ``folder`` is its ``data/`` (else empty), with the
    resolved input path."""
    run = RunFolder.of_data(folder)
    if run is None:
        return {}
    meta = run.read_meta()
    source = run.input_source()
    if source is not None:
        meta["source"] = source
    return meta


def build_manifest(path: str | Path, *, name: str | None = None, description: str | None = None,
                   url: str | None = None, license_url: str | None = None) -> Path:
    """Write ``_croissant.json`` and ``_records.sha256`` for a dataset; returns the manifest
    path. The manifest is validated with ``mlcroissant`` before it is written."""
    from datetime import datetime

    import mlcroissant as mlc
    from mlcroissant._src.core.context import CroissantVersion

    folder, files = dataset_files(path)
    leaves = record_leaves(files)
    root = merkle_root([leaf for _, leaf in leaves])
    leaves_text = "".join(f"{i}\t{leaf}\n" for i, leaf in leaves)
    write_text_atomic(leaves_text, folder / LEAVES)
    summary = dataset_lineage(path)
    meta = _run_meta(folder)
    name = name or meta.get("name") or folder.name
    schemas = [read_parquet_schema(f) for f in files]
    # shards of one table share a schema; a folder of linked tables (``generate --schema``)
    # holds one file per table, each its own record set
    tables = len({tuple((x.name, str(x.type)) for x in sch) for sch in schemas}) > 1
    ctx = mlc.Context(conforms_to=CroissantVersion.V_1_1)
    ctx.is_live_dataset = False
    dist: list = [mlc.FileObject(ctx=ctx, id=f"file-{f.name}", name=f.name, content_url=f.name,
                                 encoding_formats=["application/x-parquet"],
                                 sha256=_sha256_file(f)) for f in files]
    if not tables:
        dist.append(mlc.FileSet(ctx=ctx, id="parquet-shards", name="parquet-shards",
                                includes=["*.parquet"],
                                encoding_formats=["application/x-parquet"]))

    def fields_of(schema: pa.Schema, set_id: str, **source) -> list:
        out = []
        for f in schema:
            if pa.types.is_list(f.type) or pa.types.is_struct(f.type):
                continue  # nested columns (parents) are covered by the integrity block
            out.append(mlc.Field(ctx=ctx, id=f"{set_id}/{f.name}", name=f.name,
                                 data_types=[_arrow_to_croissant(f.type)],
                                 source=mlc.Source(ctx=ctx, **source,
                                                   extract=mlc.Extract(ctx=ctx,
                                                                       column=f.name))))
        return out

    if tables:
        record_sets = [mlc.RecordSet(ctx=ctx, id=f.stem, name=f.stem,
                                     fields=fields_of(sch, f.stem, file_object=f"file-{f.name}"))
                       for f, sch in zip(files, schemas, strict=True)]
    else:
        record_sets = [mlc.RecordSet(ctx=ctx, id="records", name="records",
                                     fields=fields_of(schemas[0], "records",
                                                      file_set="parquet-shards"))]
    share = summary["synthetic_share"]
    gens = ", ".join(f"{m} ({c:,} records)" for m, c in summary["generators"].items()) or "none"
    md = mlc.Metadata(
        ctx=ctx, name=name,
        description=description or (f"{summary['records']:,} records, {share:.1%} synthetic "
                                     f"(generators: {gens}). Written by synthloop."),
        url=url or folder.resolve().as_uri(),
        license=[license_url] if license_url else None,
        version="1.0.0", distribution=dist,
        date_published=datetime.fromisoformat(meta.get("created_at") or utc_now()),
        record_sets=record_sets,
        data_collection=(f"Mixed dataset: {summary['real']:,} real records "
                         f"and {summary['synthetic']:,} synthetic records "
                         f"generated by {gens}; every record carries its provenance "
                         f"(origin, generation, generator, parents)."),
        data_collection_type=["Synthetic data generation"] if share else ["Other"],
        data_use_cases=["Training and evaluating machine-learning models."],
        data_limitations=["Synthetic records inherit the generators' errors and biases; "
                          "training recursively on model output without real data risks "
                          "model collapse (Shumailov et al., Nature 2024)."],
        data_biases=["Generators under-represent the tails of the real distribution."],
        personal_sensitive_information=["Not assessed by the manifest; run `synthloop audit` "
                                        "for privacy checks."],
    )
    doc = md.to_json()
    doc["@context"]["prov"] = "http://www.w3.org/ns/prov#"
    doc["@context"]["synthloop"] = "https://synthloop.dev/ns#"
    # the two synthloop blocks are JSON literals (not graph nodes) to JSON-LD processors
    doc["@context"]["disclosure"] = {"@id": "synthloop:disclosure", "@type": "@json"}
    doc["@context"]["integrity"] = {"@id": "synthloop:integrity", "@type": "@json"}
    source = meta.get("source")
    doc["prov:wasDerivedFrom"] = [{"@id": Path(source).as_uri()}] if source else []
    doc["prov:wasGeneratedBy"] = [{
        "@type": "prov:Activity", "@id": f"urn:synthloop:run:{meta.get('run_id', name)}",
        "prov:startedAtTime": meta.get("created_at"),
        "prov:used": [{"@type": "prov:Entity", "name": m,
                       "synthloop:weightsSha256": summary["generator_weights_sha256"][m]}
                      for m in summary["generators"]]}]
    doc["disclosure"] = {
        "records": summary["records"], "synthetic_share": round(share, 6),
        "origins": {"real": summary["real"], "synthetic": summary["synthetic"]},
        "generators": summary["generators"],
        "depth_histogram": summary["depth_histogram"],
        "digital_source_type": sorted(summary.get("digital_source_types", {})),
        "watermarks": summary["watermarks"],
    }
    if tables:
        doc["disclosure"]["tables"] = {f.stem: pq.ParquetFile(f).metadata.num_rows
                                       for f in files}
    private = _privacy_guarantees(files)
    if private:
        doc["disclosure"]["differential_privacy"] = private
    doc["integrity"] = {"records": len(leaves), "merkle_root": root,
                                  "leaves_file": LEAVES,
                                  "leaves_sha256": hashlib.sha256(leaves_text.encode())
                                  .hexdigest()}
    out = folder / MANIFEST
    write_text_atomic(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", out)
    errors, _ = validate_manifest(out)
    if errors:
        raise InputError(f"{out}: Croissant validation failed: {errors[0]}")
    return out


def _privacy_guarantees(files: list[Path]) -> list[dict]:
    """The differential-privacy guarantees the records' generators state (ε, δ per
    generator: ``decoding.differential_privacy`` of ``table-synth`` with an ε), with the
    number of records each covers."""
    seen: Counter = Counter()
    for f in files:
        if "generator" not in pq.read_schema(f).names:
            continue
        col = pq.read_table(f, columns=["generator"]).column("generator")
        seen.update(x for x in col.to_pylist() if x)
    out = []
    for text, count in sorted(seen.items()):
        try:
            gen = json.loads(text)
        except ValueError:
            continue
        dp = (gen.get("decoding") or {}).get("differential_privacy")
        if dp:
            out.append({"generator": gen.get("model"), "weights_sha256": gen.get(
                "weights_sha256"), "epsilon": dp.get("epsilon"), "delta": dp.get("delta"),
                "accountant": dp.get("accountant"), "records": count})
    return out


def validate_manifest(path: str | Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) from loading the manifest with ``mlcroissant``."""
    import mlcroissant as mlc
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)  # we report the issues ourselves
    try:
        ds = mlc.Dataset(jsonld=str(path))
    except mlc.ValidationError as e:
        return [str(e).strip().splitlines()[-1]], []
    issues = ds.metadata.ctx.issues
    return sorted(str(e) for e in issues.errors), sorted(str(w) for w in issues.warnings)


# -- signing ----------------------------------------------------------------------------------

def generate_signing_key(out: str | Path) -> str:
    """Write a new ed25519 private key (PEM, mode 0600); returns the public key (base64)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return _public_b64(key.public_key())


def _public_b64(pub) -> str:
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(pub.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)).decode()


def load_signing_key(key_file: str | Path | None):
    """An ed25519 private key from a PEM file or ``SYNTHLOOP_SIGNING_KEY`` (PEM text)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


    data, where = read_secret(key_file, SIGNING_KEY_ENV, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where}: not an ed25519 key")
    return key


def sign_manifest(manifest: str | Path, key) -> Path:
    """Write the detached signature ``<manifest>.sig`` (JSON: algorithm, public key,
    signature, manifest sha256)."""
    data = Path(manifest).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    sig = key.sign(SIGNED_PREFIX + bytes.fromhex(digest))
    out = Path(str(manifest) + ".sig")
    write_text_atomic(json.dumps({"algorithm": "ed25519",
                                  "public_key": _public_b64(key.public_key()),
                                  "manifest_sha256": digest,
                                  "signature": base64.b64encode(sig).decode()}, indent=2)
                      + "\n", out)
    return out


@dataclass
class VerifyReport:
    """What ``verify`` found; ``ok`` only when nothing is wrong."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(path: str | Path, *, public_key: str | None = None,
                   allow_unknown_signer: bool = False, max_named: int = 20) -> VerifyReport:
    """Check the signature, the files' sha256 and every record's hash against the manifest.

    Args:
        public_key: the signer's ed25519 public key (base64), the trusted one. Without it the
            key embedded in the signature file is used, which proves integrity only (anyone
            can re-sign edited data with a key of their own): the report then has a problem
            unless ``allow_unknown_signer``.
        max_named: how many changed / added / removed records are named one by one.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    folder, files = dataset_files(path)
    rep = VerifyReport()
    man_path, sig_path = folder / MANIFEST, folder / SIGNATURE
    if not man_path.is_file():
        raise InputError(f"{folder}: no {MANIFEST} (run synthloop provenance manifest first)")
    data = man_path.read_bytes()
    if not sig_path.is_file():
        rep.problems.append(f"{SIGNATURE} is missing: the manifest is not signed")
    else:
        sig = _read_json(sig_path)
        embedded = sig.get("public_key")
        pub_b64 = public_key or embedded
        if not isinstance(pub_b64, str) or not isinstance(sig.get("signature"), str):
            rep.problems.append(f"{SIGNATURE} has no public_key / signature string")
        else:
            if public_key is None:
                msg = (f"integrity only, signer not checked: the signature was checked with "
                       f"the key embedded in {SIGNATURE} ({embedded}); give public_key, "
                       f"the signer's key")
                if allow_unknown_signer:
                    rep.notes.append(msg)
                else:
                    rep.problems.append(msg + " (or allow_unknown_signer)")
            try:
                pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64))
                pub.verify(base64.b64decode(sig["signature"]),
                           SIGNED_PREFIX + hashlib.sha256(data).digest())
            except (InvalidSignature, ValueError, TypeError):
                rep.problems.append(f"signature does not match {MANIFEST} (edited manifest or "
                                    f"wrong key)")
    doc = _read_json(man_path)
    if not isinstance(doc.get("distribution", []), list) or not isinstance(
            doc.get("integrity", {}), dict):
        raise InputError(f"{man_path}: not a synthloop manifest (distribution / integrity)")
    expected = {d.get("name"): d.get("sha256") for d in doc.get("distribution", [])
                if isinstance(d, dict) and d.get("@type") == "cr:FileObject"}
    present = {f.name for f in files}
    # shards a reader could pick up that the manifest does not cover: in sub-folders, or with
    # another spelling of the suffix
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).as_posix()
        if f.is_file() and f.suffix.lower() in (".parquet", ".pq") and f not in files:
            rep.problems.append(f"file {rel} is not in the manifest")
    for name in sorted(set(expected) - present):
        rep.problems.append(f"file {name} listed in the manifest is missing")
    for name in sorted(present - set(expected)):
        rep.problems.append(f"file {name} is not in the manifest")
    for f in files:
        if f.name in expected and _sha256_file(f) != expected[f.name]:
            rep.problems.append(f"file {f.name}: sha256 differs from the manifest")
    integ = doc.get("integrity", {})
    leaves_path = folder / integ.get("leaves_file", LEAVES)
    if not leaves_path.is_file():
        rep.problems.append(f"{LEAVES} is missing")
        return rep
    leaves_text = leaves_path.read_text()
    if hashlib.sha256(leaves_text.encode()).hexdigest() != integ.get("leaves_sha256"):
        rep.problems.append(f"{LEAVES} differs from the one the manifest signed")
    listed = [line.split("\t") for line in leaves_text.splitlines() if line]
    if merkle_root([leaf for _, leaf in listed]) != integ.get("merkle_root"):
        rep.problems.append("Merkle root of the listed records differs from the manifest's")
    now = record_leaves(files)
    rep.records = len(now)
    want = Counter((i, leaf) for i, leaf in listed)
    have = Counter(now)
    want_ids = Counter(i for i, _ in listed)
    have_ids = Counter(i for i, _ in now)
    named = 0
    for (rid, _leaf), c in sorted((want - have).items()):
        if named >= max_named:
            break
        kind = "content changed" if have_ids[rid] >= want_ids[rid] else "removed"
        rep.problems.append(f"record {rid}: {kind}" + (f" (×{c})" if c > 1 else ""))
        named += 1
    for (rid, _leaf), c in sorted((have - want).items()):
        if named >= max_named:
            break
        if want_ids[rid] and have_ids[rid] <= want_ids[rid]:
            continue  # already named as changed
        rep.problems.append(f"record {rid}: added" + (f" (×{c})" if c > 1 else ""))
        named += 1
    return rep


@dataclass
class PublishedManifest:
    """What :func:`publish_manifest` wrote: the manifest, mlcroissant's findings, the
    signature (None when unsigned)."""

    path: Path
    errors: list[str]
    warnings: list[str]
    signature: Path | None


def publish_manifest(dataset: str | Path, *, key_file: str | Path | None = None,
                     sign: bool | None = None, name: str | None = None,
                     url: str | None = None, license_url: str | None = None
                     ) -> PublishedManifest:
    """Build, validate and (maybe) sign a dataset's manifest: ``synthloop provenance
    manifest``.

    ``sign``: None signs when a key is at hand (``key_file`` or ``$SYNTHLOOP_SIGNING_KEY``);
    True requires one (an error without); False never signs. An unsigned manifest removes a
    signature left from before, which would describe other bytes.
    """
    if sign is None:
        sign = key_file is not None or bool(os.environ.get(SIGNING_KEY_ENV))
    key = load_signing_key(key_file) if sign else None
    path = build_manifest(dataset, name=name, url=url, license_url=license_url)
    errors, warnings = validate_manifest(path)
    signature = None
    if key is not None:
        signature = sign_manifest(path, key)
    else:
        Path(str(path) + ".sig").unlink(missing_ok=True)
    return PublishedManifest(path, list(errors), list(warnings), signature)

