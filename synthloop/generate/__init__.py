"""Generators: prompted and taxonomy-guided text, self-instruct, and tabular (Gaussian copula)."""
