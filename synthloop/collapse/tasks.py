"""Tasks with checkable answers for the verified-data loop (:mod:`synthloop.collapse.verified`).

A task is a set of problems, a text format for a problem with its answer, and a verifier — a
program that decides whether an answer is correct, independent of any model. The verifier is
the pipeline's own arithmetic check (:func:`synthloop.curate.verify.check_arithmetic`), so the
lab measures the same check a user's ``verify-arithmetic`` step runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synthloop.curate.verify import check_arithmetic
from synthloop.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """Problems (as ``(a, b)`` pairs) by role: real train problems (answered correctly), held-out
    test problems, and the pool of unanswered problems the models answer."""

    train: list[tuple[int, int]]
    test: list[tuple[int, int]]
    pool: list[tuple[int, int]]


@dataclass(frozen=True)
class ArithmeticTask:
    """Addition of two ``digits``-digit numbers, written ``AA+BB=CCC``: operands zero-padded to
    ``digits`` digits, the sum to ``digits + 1``, so every record has the same length
    (``3·digits + 3`` characters) and a model answers with exactly ``answer_chars`` digits.

    With ``digits = 2`` there are 10,000 problems; a 3-layer from-scratch model trained on
    1,000 of them answers about 87% of held-out problems greedily and about 58% when sampling
    at temperature 1 — the errors the verifier exists to catch.
    """

    digits: int = 2

    @property
    def n_problems(self) -> int:
        return 10 ** (2 * self.digits)

    @property
    def answer_chars(self) -> int:
        return self.digits + 1

    @property
    def record_chars(self) -> int:
        return 3 * self.digits + 3

    def prompt(self, a: int, b: int) -> str:
        """The question as the model sees it: ``AA+BB=``."""
        return f"{a:0{self.digits}d}+{b:0{self.digits}d}="

    def answer(self, a: int, b: int) -> str:
        """The correct answer, zero-padded."""
        return f"{a + b:0{self.answer_chars}d}"

    def record(self, a: int, b: int, answer: str | None = None) -> str:
        """A problem with ``answer`` (the correct one by default) as one record's text."""
        return self.prompt(a, b) + (self.answer(a, b) if answer is None else answer)

    def verify(self, text: str) -> bool:
        """The verifier: is ``text`` a well-formed record whose answer is the correct sum?"""
        q, sep, ans = text.partition("=")
        if not sep or len(text) != self.record_chars or not ans.isdigit():
            return False
        return check_arithmetic(q, ans) is None

    def split(self, n_train: int, n_test: int, seed: int) -> Split:
        """Disjoint train, test and pool problems, drawn by ``seed`` without replacement."""
        if n_train + n_test >= self.n_problems:
            raise ConfigError(f"arithmetic task with {self.digits} digit(s) has "
                              f"{self.n_problems:,} problems: too few for {n_train:,} train + "
                              f"{n_test:,} test problems and a pool to answer")
        order = np.random.default_rng(seed).permutation(self.n_problems)
        pairs = [divmod(int(i), 10 ** self.digits) for i in order]
        return Split(pairs[:n_train], pairs[n_train:n_train + n_test],
                     pairs[n_train + n_test:])

    def accuracy(self, problems: Sequence[tuple[int, int]], answers: Sequence[str]) -> float:
        """Exact-match share of ``answers`` to ``problems`` (0 for none)."""
        if not problems:
            return 0.0
        return float(np.mean([self.verify(self.record(a, b, ans))
                              for (a, b), ans in zip(problems, answers, strict=True)]))


TASKS = {"arithmetic": ArithmeticTask}
