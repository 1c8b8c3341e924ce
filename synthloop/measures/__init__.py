"""Shared measurements — the ground floor the capabilities stand on.

n-grams and their distributions (:mod:`~synthloop.measures.ngrams`), MinHash signatures and
near-duplicates (:mod:`~synthloop.measures.minhash`), Gopher-style text checks and PII
(:mod:`~synthloop.measures.textchecks`), sentence embeddings
(:mod:`~synthloop.measures.embeddings`), exact nearest-record distances
(:mod:`~synthloop.measures.dcr`), column typing (:mod:`~synthloop.measures.columns`) and the
OpenMP thread guard (:mod:`~synthloop.measures.threads`). The audit, curation, the poisoning
scan and the generators all measure with these; none of them imports another's internals.
"""
