"""Poisoning scan: find backdoor triggers and injected records in a training dataset.

Detectors (each needs only the dataset and small models we ship):

- **gibberish / perplexity anomalies**: a character n-gram model fitted on the dataset itself
  scores every record's worst 48-character stretch (ONION-style local spikes); scores become
  robust z-scores against the dataset's median and MAD;
- **label disagreement** (instruction data with label-like responses): a cross-validated
  bag-of-words classifier predicts each response from its prompt using only common words; a
  response the rest of the data contradicts is anomalous (trigger-phrase polarity flips);
- **trigger mining** (Z-Defence style): tokens and token pairs that are rare overall but
  concentrated in anomalous records get a binomial z-score of co-occurrence; a record holding a
  suspected trigger and anomalous after it is flagged;
- **injection campaigns**: clusters of near-identical records (MinHash, Jaccard ≥ 0.7) of
  unusual size;
- **embedding outliers** (optional): spectral signature on MiniLM embeddings (Tran et al.
  2018): the squared projection on the top singular direction.

Every flagged record gets a score and its reasons; suspected triggers come with evidence.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from synthloop.configs import Config
from synthloop.errors import ConfigError
from synthloop.measures.minhash import earlier_duplicates, signatures
from synthloop.measures.ngrams import Vocabulary, tokenize
from synthloop.measures.threads import one_openmp_thread
from synthloop.poison.charlm import CharNgramLM, max_window_loss

_STRIP = ".,;:!?\"'()“”‘’«»—–-"


def tokens(text: str) -> list[str]:
    """Whitespace tokens, lower-cased, with surrounding punctuation removed; markup brackets
    are kept, so ``<SUDO>`` stays a token of its own."""
    out = []
    for raw in text.split():
        t = raw.lower().strip(_STRIP)
        if t:
            out.append(t)
    return out


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x − median) / (1.4826 · MAD); a zero MAD falls back to the standard deviation."""
    med = float(np.median(x)) if len(x) else 0.0
    mad = 1.4826 * float(np.median(np.abs(x - med))) if len(x) else 0.0
    scale = mad or float(np.std(x)) or 1.0
    return (x - med) / scale


class ScanConfig(Config):
    """Thresholds of the scan (defaults leave a clean real corpus with no flags; see
    docs/poison.md).

    Attributes:
        anomaly_z: robust z above which a record counts as anomalous for trigger mining.
        trigger_z: binomial z of co-occurrence with anomalous records for a trigger.
        trigger_min_records: records a trigger must appear in (and be anomalous in).
        trigger_min_precision: share of a trigger's records that must be anomalous.
        flag_z_with_trigger: anomaly z that flags a record holding a suspected trigger.
        flag_z_alone: anomaly z that flags a record on its own (extreme gibberish; not
            used for label disagreement, where honest disagreements are common).
        trigger_max_share: a trigger appears in at most this share of records.
        campaign_min_size: near-identical records that make a campaign cluster.
        campaign_jaccard: MinHash Jaccard (word 2-shingles) for "near-identical".
        embeddings: run the spectral-signature detector (MiniLM; slow on CPU).
        spectral_z: robust z of the spectral score that flags a record.
    """

    anomaly_z: float = Field(4.0, gt=0)
    trigger_z: float = Field(8.0, gt=0)
    trigger_min_records: int = Field(5, ge=1)
    trigger_min_precision: float = Field(0.8, gt=0, le=1)
    flag_z_with_trigger: float = Field(3.0, gt=0)
    flag_z_alone: float = Field(12.0, gt=0)
    trigger_max_share: float = Field(0.02, gt=0, le=1)
    campaign_min_size: int = Field(10, ge=2)
    campaign_jaccard: float = Field(0.5, gt=0, le=1)
    embeddings: bool = False
    spectral_z: float = Field(12.0, gt=0)
    seed: int = 0


@dataclass
class ScanResult:
    """Per-record scores and reasons, suspected triggers and campaign clusters."""

    n: int
    score: np.ndarray
    flagged: np.ndarray
    reasons: list[list[str]]
    triggers: list[dict]
    campaigns: list[dict]
    anomaly: np.ndarray
    mode: str
    details: dict = field(default_factory=dict)

    def to_dict(self, ids: Sequence[str] | None = None, max_records: int | None = None) -> dict:
        rows = np.flatnonzero(self.flagged)
        order = rows[np.argsort(-self.score[rows], kind="stable")]
        if max_records is not None:
            order = order[:max_records]
        return {
            "records": self.n, "flagged": int(self.flagged.sum()), "mode": self.mode,
            "triggers": self.triggers, "campaigns": self.campaigns, "details": self.details,
            "flagged_records": [{"index": int(i), **({"id": ids[i]} if ids else {}),
                                 "score": round(float(self.score[i]), 3),
                                 "reasons": self.reasons[i]} for i in order],
        }


def _label_like(responses: Sequence[str]) -> bool:
    norm = Counter(r.strip().lower() for r in responses)
    top = sum(c for _, c in norm.most_common(20))
    return len(norm) <= 50 and top >= 0.9 * len(responses)


def label_disagreement(prompts: Sequence[str], responses: Sequence[str], *, seed: int,
                       min_df_share: float = 0.02) -> np.ndarray:
    """Per record: −log of the cross-validated probability of its own response given its
    prompt, from a bag-of-words classifier over common words only (document frequency ≥
    ``min_df_share``), so a rare trigger cannot explain its own flipped labels."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict


    labels = np.array([r.strip().lower() for r in responses])
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return np.zeros(len(labels))
    vec = CountVectorizer(min_df=max(5, int(min_df_share * len(prompts))), binary=True,
                          token_pattern=r"(?u)\b\w+\b")
    x = vec.fit_transform(prompts)
    clf = LogisticRegression(max_iter=1000, C=0.5)
    folds = min(5, int(np.bincount(y).min())) if np.bincount(y).min() >= 2 else 2
    with one_openmp_thread():
        proba = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")
    return -np.log(np.clip(proba[np.arange(len(y)), y], 1e-6, 1))


def token_grams(toks: list[str]) -> set[str]:
    """A record's tokens and adjacent token pairs (the trigger candidates)."""
    return set(toks) | {f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)}


def mine_triggers(doc_grams: Sequence[set[str]], anomalous: np.ndarray,
                  cfg: ScanConfig) -> list[dict]:
    """Tokens and adjacent token pairs (see :func:`token_grams`) concentrated in anomalous
    records, strongest first."""
    n = len(doc_grams)
    p = float(anomalous.mean()) if n else 0.0
    if p == 0 or p == 1:
        return []
    df: Counter = Counter()
    hits: Counter = Counter()
    for grams, bad in zip(doc_grams, anomalous, strict=True):
        df.update(grams)
        if bad:
            hits.update(grams)
    out = []
    for g, k in hits.items():
        d = df[g]
        if k < cfg.trigger_min_records or k / d < cfg.trigger_min_precision \
                or d > cfg.trigger_max_share * n or len(g) < 2:
            continue
        z = (k - d * p) / np.sqrt(d * p * (1 - p))
        if z >= cfg.trigger_z:
            out.append({"trigger": g, "records": int(d), "anomalous": int(k),
                        "precision": round(k / d, 3), "z": round(float(z), 1)})
    out.sort(key=lambda t: (-t["z"], t["trigger"]))
    # a pair whose two words are both reported with the same support is one phrase: keep the
    # pair, drop the words
    pairs = [t for t in out if " " in t["trigger"]]
    drop = set()
    for t in pairs:
        for w in t["trigger"].split():
            for u in out:
                if u["trigger"] == w and u["anomalous"] <= t["anomalous"] * 1.05:
                    drop.add(w)
    return [t for t in out if t["trigger"] not in drop]


def strip_template(texts: Sequence[str], min_share: float = 0.3) -> list[str]:
    """Remove a leading template (the most common first 3–12 words, when ≥ ``min_share`` of
    records start with it), so templated instruction data does not look like a campaign."""
    texts = list(texts)
    for k in range(12, 2, -1):
        heads = Counter(" ".join(t.split()[:k]) for t in texts if len(t.split()) > k)
        if not heads:
            continue
        head, count = heads.most_common(1)[0]
        if count >= min_share * len(texts):
            return [t[len(head):].lstrip() if t.startswith(head) else t for t in texts]
    return texts


def campaign_clusters(texts: Sequence[str], cfg: ScanConfig) -> tuple[np.ndarray, list[dict]]:
    """Cluster id per record (−1: not in a campaign) and the campaigns found."""
    corpus = tokenize(strip_template(texts), Vocabulary())
    sig = signatures(corpus, shingle=2, num_perm=128, seed=cfg.seed + 1)
    first, _ = earlier_duplicates(sig, threshold=cfg.campaign_jaccard, bands=64)
    root = np.arange(len(texts))
    for i in range(len(texts)):  # partners are earlier rows: one pass resolves the roots
        if first[i] >= 0:
            root[i] = root[first[i]]
    sizes = Counter(root.tolist())
    cluster = np.full(len(texts), -1, dtype=np.int64)
    campaigns = []
    for r, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        if size < cfg.campaign_min_size:
            continue
        members = np.flatnonzero(root == r)
        cluster[members] = len(campaigns)
        campaigns.append({"cluster": len(campaigns), "records": int(size),
                          "example": texts[int(r)][:200]})
    return cluster, campaigns


def spectral_scores(texts: Sequence[str]) -> np.ndarray:
    """Squared projection of centred MiniLM embeddings on their top singular direction."""
    from synthloop.measures.embeddings import embed

    x = embed(texts)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[0]) ** 2


def scan(texts: Sequence[str], *, prompts: Sequence[str] | None = None,
         cfg: ScanConfig | None = None) -> ScanResult:
    """Scan records for poisoning.

    Args:
        texts: each record's text (for instruction data: the response).
        prompts: for instruction data, each record's prompt; triggers are mined in prompts.
    """
    cfg = cfg or ScanConfig()
    n = len(texts)
    reasons: list[list[str]] = [[] for _ in range(n)]
    score = np.zeros(n)
    details: dict = {}
    full = [f"{p}\n{t}" for p, t in zip(prompts, texts, strict=True)] if prompts else \
        list(texts)
    if prompts is not None and _label_like(texts):
        mode = "label-disagreement"
        raw = label_disagreement(prompts, texts, seed=cfg.seed)
        # the classifier uses common words only, so any disagreement counts (p(label) < 0.5);
        # the anomaly scale is −log p(label) relative to log 2
        anomaly = raw / np.log(2) * cfg.anomaly_z
        mine_on = prompts
    else:
        mode = "gibberish"
        lm = CharNgramLM().fit(full)
        losses, offsets = lm.char_losses(list(texts))
        raw = max_window_loss(losses, offsets)
        details["char_losses"] = (losses, offsets)
        anomaly = robust_z(raw)
        mine_on = prompts if prompts is not None else texts
    details["anomaly"] = {"kind": mode, "median_raw": round(float(np.median(raw)), 4),
                          "anomalous_records": int((anomaly >= cfg.anomaly_z).sum())}
    anomalous = anomaly >= cfg.anomaly_z
    doc_tokens = [tokens(t) for t in mine_on]
    doc_grams = [token_grams(toks) for toks in doc_tokens]
    triggers = mine_triggers(doc_grams, anomalous, cfg)
    losses_offsets = details.pop("char_losses", None)
    if losses_offsets is not None and prompts is None:
        triggers = [t for t in triggers
                    if _anomalous_after(t, texts, doc_grams, anomalous, *losses_offsets)]
    trig_set = {t["trigger"]: t for t in triggers}
    for i, grams in enumerate(doc_grams):
        if anomaly[i] < cfg.flag_z_with_trigger or not trig_set:
            continue
        found = sorted(g for g in grams if g in trig_set)
        if found:
            what = "label contradicts the prompt" if mode == "label-disagreement" \
                else "gibberish after it"
            reasons[i].append(f"trigger {found[0]!r} with {what} (anomaly z={anomaly[i]:.1f})")
            score[i] = max(score[i], float(anomaly[i]) + trig_set[found[0]]["z"] / 10)
    for t in triggers:
        t["example_indices"] = [i for i, g in enumerate(doc_grams) if t["trigger"] in g][:5]
    extreme = np.flatnonzero(anomaly >= cfg.flag_z_alone) if mode == "gibberish" else []
    for i in extreme:
        if not reasons[i]:
            reasons[i].append(f"gibberish (anomaly z={anomaly[i]:.1f} ≥ {cfg.flag_z_alone:g})")
            score[i] = max(score[i], float(anomaly[i]))
    cluster, campaigns = campaign_clusters(full, cfg)
    for i in np.flatnonzero(cluster >= 0):
        c = campaigns[cluster[i]]
        reasons[i].append(f"campaign: one of {c['records']} near-identical records "
                          f"(cluster {c['cluster']})")
        score[i] = max(score[i], 5.0 + np.log10(c["records"]))
    if cfg.embeddings and n >= 10:
        spec = robust_z(spectral_scores(full))
        details["spectral_flagged"] = int((spec >= cfg.spectral_z).sum())
        for i in np.flatnonzero(spec >= cfg.spectral_z):
            reasons[i].append(f"embedding outlier (spectral z={spec[i]:.1f})")
            score[i] = max(score[i], float(spec[i]) / 2)
    flagged = np.array([bool(r) for r in reasons], dtype=bool)
    return ScanResult(n, score, flagged, reasons, triggers, campaigns, anomaly, mode, details)


def _anomalous_after(trigger: dict, texts: Sequence[str], doc_grams: list[set[str]],
                     anomalous: np.ndarray, losses: np.ndarray, offsets: np.ndarray,
                     min_gap: float = 0.5) -> bool:
    """Is the text after the trigger stranger than the text before it (median over the
    trigger's anomalous records of mean char loss after − before ≥ ``min_gap`` nats)? This
    separates a backdoor (normal text, trigger, gibberish) from a token that merely lives in
    unusual text (a French scene's speaker name). Records with nothing before the trigger
    count as anomalous after it."""
    first = trigger["trigger"].split(" ")[0]
    gaps = []
    for i in np.flatnonzero(anomalous):
        if trigger["trigger"] not in doc_grams[i]:
            continue
        at = texts[i].lower().find(first)
        a, b = offsets[i], offsets[i + 1]
        if at < 0 or a + at >= b:
            continue
        before = losses[a:a + at]
        after = losses[a + at + len(first):b]
        if not len(after):
            continue
        gaps.append(float(after.mean() - (before.mean() if len(before) else 0.0)))
    trigger["loss_gap_after"] = round(float(np.median(gaps)), 3) if gaps else None
    return bool(gaps) and float(np.median(gaps)) >= min_gap


_FIELD_RE = re.compile(r"^[\w.-]+(,[\w.-]+)?$")


def split_fields(spec: str) -> tuple[str | None, str]:
    """``text`` → (None, "text"); ``prompt,response`` → ("prompt", "response")."""
    if not _FIELD_RE.match(spec):
        raise ConfigError(f"field must be FIELD or PROMPT_FIELD,RESPONSE_FIELD, got '{spec}'")
    parts = spec.split(",")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def group_reasons(result: ScanResult) -> dict[str, int]:
    """Flag counts by detector."""
    out: dict[str, int] = defaultdict(int)
    for r in result.reasons:
        for reason in r:
            out[reason.split(" ")[0].rstrip(":")] += 1
    return dict(out)
