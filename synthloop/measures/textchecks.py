"""Per-document checks: Gopher-style quality rules and PII patterns.

Quality rules follow Rae et al. 2021 (Gopher, appendix A) with their thresholds, except the
minimum length, which is a parameter because audits often run on paragraphs, not web pages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import regex

from synthloop.measures.ngrams import words

STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])

GOPHER_RULES = {
    "too_short": "fewer than min_words words",
    "mean_word_length": "mean word length outside 3..10 characters",
    "symbol_ratio": "more than 0.1 '#' or '...' per word",
    "non_alpha": "fewer than 80% of words contain a letter",
    "no_stop_words": "fewer than 2 of the stop words 'the be to of and that have with'",
    "duplicate_lines": "more than 30% of lines are duplicates",
    "top_2gram": "the most frequent 2-gram covers more than 20% of characters",
    "duplicate_5grams": "duplicated 5-grams cover more than 15% of characters",
}


def quality_flags(text: str, *, min_words: int = 5) -> dict[str, bool]:
    """Which Gopher rules ``text`` breaks (True = flagged)."""
    toks = [t for t in words(text) if any(ch.isalnum() for ch in t)]
    n = len(toks)
    flags = dict.fromkeys(GOPHER_RULES, False)
    flags["too_short"] = n < min_words
    if n == 0:
        flags.update(mean_word_length=True, non_alpha=True, no_stop_words=True)
        return flags
    mean_len = sum(len(t) for t in toks) / n
    flags["mean_word_length"] = not 3 <= mean_len <= 10
    symbols = text.count("#") + text.count("...") + text.count("…")
    flags["symbol_ratio"] = symbols / n > 0.1
    flags["non_alpha"] = sum(any(ch.isalpha() for ch in t) for t in toks) / n < 0.8
    flags["no_stop_words"] = sum(t in STOP_WORDS for t in toks) < 2
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) > 1:
        flags["duplicate_lines"] = 1 - len(set(lines)) / len(lines) > 0.3
    chars = sum(len(t) for t in toks)
    if n >= 2:
        grams = Counter(zip(toks, toks[1:], strict=False))
        (a, b), c = grams.most_common(1)[0]
        flags["top_2gram"] = c > 1 and c * (len(a) + len(b)) / chars > 0.2
    if n >= 5:
        seen: Counter = Counter(tuple(toks[i:i + 5]) for i in range(n - 4))
        covered = np.zeros(n, dtype=bool)
        for i in range(n - 4):
            if seen[tuple(toks[i:i + 5])] > 1:
                covered[i:i + 5] = True
        dup_chars = sum(len(t) for t, c in zip(toks, covered, strict=True) if c)
        flags["duplicate_5grams"] = dup_chars / chars > 0.15
    return flags


def quality_flag_rates(texts: Sequence[str], *, min_words: int = 5) -> dict[str, float]:
    """Share of documents flagged by each rule, and ``any`` (flagged by at least one)."""
    if not texts:
        return {**dict.fromkeys(GOPHER_RULES, 0.0), "any": 0.0}
    rows = [quality_flags(t, min_words=min_words) for t in texts]
    rates = {k: float(np.mean([r[k] for r in rows])) for k in GOPHER_RULES}
    rates["any"] = float(np.mean([any(r.values()) for r in rows]))
    return rates


# --- PII -----------------------------------------------------------------------------------

EMAIL_RE = regex.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
PHONE_RE = regex.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])"
                         r"\d{3,4}[\s.-]?\d{3,4}(?![\w])")
CARD_RE = regex.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
IBAN_RE = regex.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a digit string (payment card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    num = "".join(str(int(ch, 36)) for ch in moved)
    return int(num) % 97 == 1


def find_pii(text: str) -> dict[str, list[str]]:
    """PII strings found in ``text`` by kind: ``email``, ``phone``, ``card`` (Luhn-valid),
    ``iban`` (mod-97-valid). Card and IBAN candidates that fail their checksum are ignored,
    which keeps ordinary long numbers out; phones are looked for only outside emails, card-like
    digit runs and IBANs."""
    found: dict[str, list[str]] = {"email": [], "card": [], "iban": [], "phone": []}
    masked = list(text)

    def mask(m: regex.Match) -> None:
        masked[m.start():m.end()] = " " * (m.end() - m.start())

    for m in EMAIL_RE.finditer(text):
        found["email"].append(m.group())
        mask(m)
    for m in IBAN_RE.finditer(text):
        if iban_ok(m.group()):
            found["iban"].append(m.group().replace(" ", ""))
            mask(m)
    for m in CARD_RE.finditer(text):
        digits = regex.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            found["card"].append(digits)
        mask(m)
    for m in PHONE_RE.finditer("".join(masked)):
        digits = regex.sub(r"\D", "", m.group())
        if 9 <= len(digits) <= 15:
            found["phone"].append(digits)
    return found
