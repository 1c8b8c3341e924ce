"""Compliance: text watermarking (embed/detect), machine-readable marking, Croissant
manifests with lineage and disclosure, ed25519 signatures and record-level verification."""
