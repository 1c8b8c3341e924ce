"""Curation: filters, deduplication, scorers, verifiers and mixing policies as pipeline steps."""
