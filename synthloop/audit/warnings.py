"""Plain-language warnings: a metric whose synthetic value is worse than the real holdout's by
more than a set margin.

Margins are relative to the baseline with an absolute floor, chosen so that a fresh holdout of
the same real data raises nothing (tested on Austen paragraphs and real tables) while a
collapsed set (a narrow slice repeated) or copied rows do. ``margin_scale`` widens or narrows
all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthloop.audit.base import AuditWarning, MetricResult, worse_than


@dataclass(frozen=True)
class Rule:
    rel: float
    abs_: float
    level: str
    message: str  # formatted with v (synthetic) and b (baseline)


RULES: dict[str, Rule] = {
    # text: tails
    "rare_ngram_recall": Rule(0.3, 0.005, "warning", "Tails lost: {v:.1%} of the real data's rare "
                              "bigrams appear in the synthetic text, against {b:.1%} for real "
                              "held-out text."),
    "coverage": Rule(0.25, 0.05, "warning", "Tails lost: the synthetic text covers {v:.1%} of "
                     "the real data's embedding neighbourhoods (real held-out text: {b:.1%})."),
    "small_cluster_share": Rule(0.5, 0.03, "warning", "Tails lost: {v:.1%} of the synthetic "
                                "text falls in the real data's smallest topic clusters (real "
                                "held-out text: {b:.1%})."),
    # text: diversity
    "distinct_2": Rule(0.2, 0.02, "warning", "Diversity collapsed: distinct-2 is {v:.3f} against "
                       "{b:.3f} for real text — the synthetic text repeats itself."),
    "self_bleu": Rule(0.5, 0.05, "warning", "Diversity collapsed: self-BLEU is {v:.3f} against "
                      "{b:.3f} for real text — documents resemble each other."),
    "near_duplicate_rate": Rule(0.5, 0.02, "warning", "Diversity collapsed: {v:.1%} of synthetic "
                                "documents have a near-duplicate in the set (real: {b:.1%})."),
    "vendi_score": Rule(0.3, 1.0, "warning", "Diversity collapsed: the Vendi score (effective "
                        "number of distinct documents) is {v:.1f} against {b:.1f} for real text."),
    "recall": Rule(0.25, 0.05, "warning", "Diversity collapsed: embedding recall is {v:.3f} "
                   "against {b:.3f} — much of the real distribution is not reached."),
    "compression_ratio": Rule(0.3, 0.2, "warning", "Diversity collapsed: the text compresses "
                              "{v:.2f}× against {b:.2f}× for real text."),
    # text: drift
    "unigram_js": Rule(0.5, 0.01, "warning", "Drift: word frequencies diverge from the real data "
                       "(JS {v:.3f} against {b:.3f} for real held-out text)."),
    "frechet_distance": Rule(0.5, 0.02, "warning", "Drift: embedding Fréchet distance {v:.3f} "
                             "against {b:.3f} for real held-out text."),
    "length_ks": Rule(0.5, 0.05, "warning", "Drift: document lengths differ from the real data "
                      "(KS {v:.3f} against {b:.3f})."),
    "median_perplexity": Rule(0.35, 2.0, "warning", "Drift: median perplexity under the reference "
                              "model is {v:.1f} against {b:.1f} for real text."),
    "heuristic_flag_rate": Rule(0.5, 0.05, "warning", "Quality: {v:.1%} of documents break a "
                                "Gopher quality rule (real: {b:.1%})."),
    # text: privacy / contamination
    "verbatim_overlap": Rule(0.0, 0.005, "critical", "Privacy: {v:.1%} of synthetic documents "
                             "copy a long span verbatim from the real data (real held-out "
                             "text: {b:.1%})."),
    "near_duplicates_of_real": Rule(0.0, 0.005, "critical", "Privacy: {v:.1%} of synthetic "
                                    "documents are near-duplicates of real documents (real "
                                    "held-out text: {b:.1%})."),
    "pii_rate": Rule(0.0, 0.005, "warning", "Privacy: {v:.1%} of synthetic documents contain "
                     "emails, phone numbers, card numbers or IBANs (real held-out: {b:.1%})."),
    "contamination_rate": Rule(0.0, 0.001, "critical", "Contamination: {v:.1%} of synthetic "
                               "documents share a 13-gram with the benchmark."),
    # tables
    "column_shapes": Rule(0.1, 0.03, "warning", "Fidelity: column distributions score {v:.3f} "
                          "against {b:.3f} for real held-out rows."),
    "accuracy_bivariate": Rule(0.1, 0.03, "warning", "Fidelity: column-pair distributions "
                               "score {v:.3f} (binned accuracy) against {b:.3f} for real "
                               "held-out rows."),
    "accuracy_trivariate": Rule(0.1, 0.03, "warning", "Fidelity: three-column distributions "
                                "score {v:.3f} (binned accuracy) against {b:.3f} for real "
                                "held-out rows."),
    "detection_auc": Rule(0.0, 0.05, "warning", "Detectable: a classifier tells synthetic rows "
                          "from real ones with AUC {v:.3f} (real held-out rows: {b:.3f})."),
    "identical_match_share": Rule(0.0, 0.01, "critical", "Privacy: {v:.1%} of synthetic rows are "
                                  "exact copies of real training rows (real held-out rows: "
                                  "{b:.1%})."),
    "closer_to_train_share": Rule(0.0, 0.05, "warning", "Privacy: {v:.1%} of synthetic rows are "
                                  "closer to a training row than to any holdout row (≈50% "
                                  "expected for data that does not memorise)."),
    "singling_out_risk": Rule(0.0, 0.02, "warning", "Privacy: singling-out attacks built from "
                              "the synthetic rows isolate training rows more often than real "
                              "control rows (risk {v:.1%}; fresh real rows: {b:.1%})."),
    "linkability_risk": Rule(0.0, 0.02, "warning", "Privacy: the synthetic rows link two halves "
                             "of a training row's columns (risk {v:.1%}; fresh real rows: "
                             "{b:.1%})."),
    "inference_risk": Rule(0.0, 0.02, "warning", "Privacy: the synthetic rows reveal training "
                           "rows' attribute values beyond what they reveal of the population "
                           "(risk {v:.1%}; fresh real rows: {b:.1%})."),
    "membership_auc": Rule(0.0, 0.02, "warning", "Privacy: training rows lie closer to "
                           "synthetic rows than fresh real rows do — membership can be "
                           "inferred (AUC {v:.3f}; fresh real rows: {b:.3f})."),
    # linked and sequential tables (metric names are "<table>.<rule>")
    "accuracy": Rule(0.1, 0.03, "warning", "Fidelity: table '{t}' scores {v:.3f} (binned "
                     "accuracy) against {b:.3f} for real held-out rows."),
    "referential_integrity": Rule(0.0, 0.0, "critical", "Broken links: {v:.2%} of table '{t}' "
                                  "rows point at an existing parent row (real: {b:.0%})."),
    "key_uniqueness": Rule(0.0, 0.0, "critical", "Broken keys: {v:.2%} of table '{t}' rows have "
                           "a present, unique key (real: {b:.0%})."),
    "child_counts": Rule(0.1, 0.03, "warning", "Structure: the number of '{t}' rows per parent "
                         "scores {v:.3f} against {b:.3f} for real held-out entities."),
    "parent_child_accuracy": Rule(0.1, 0.03, "warning", "Structure: '{t}' rows follow their "
                                  "parent less than real ones do (pair accuracy {v:.3f} against "
                                  "{b:.3f})."),
    "gaps": Rule(0.1, 0.03, "warning", "Sequences: time gaps between '{t}' events score {v:.3f} "
                 "against {b:.3f} for real held-out entities."),
    "position_accuracy": Rule(0.1, 0.03, "warning", "Sequences: what happens at each position of "
                              "a '{t}' sequence scores {v:.3f} against {b:.3f}."),
    "lag_accuracy": Rule(0.1, 0.03, "warning", "Sequences: consecutive '{t}' events cohere less "
                         "than real ones (lag-1 accuracy {v:.3f} against {b:.3f})."),
    "tstr": Rule(0.15, 0.03, "warning", "Utility: a model trained on synthetic rows scores "
                 "{v:.3f} on real held-out rows, against {b:.3f} when trained on real rows."),
}


def _rule_name(m: MetricResult) -> str:
    """A metric's rule: its name, or the ``rule`` its breakdown names (the relational audit's
    ``<table>.<rule>`` metrics)."""
    return m.breakdown.get("rule", m.name)


def warning_margin(m: MetricResult, *, margin_scale: float = 1.0
                   ) -> tuple[float, float, float] | None:
    """``(reference, rel, abs_)`` for :func:`~synthloop.audit.base.worse_than`: the value a
    metric is compared with and the margin past which its warning fires; None for a metric
    without a rule or without a baseline.

    The reference is the holdout baseline unless the metric names another (e.g. the 0.5 a
    fair coin scores); the absolute margin is the rule's floor or the metric's own sampling
    margin (a few standard errors at its sample size), whichever is larger.
    """
    rule = RULES.get(_rule_name(m))
    if rule is None or m.baseline is None:
        return None
    ref = m.breakdown.get("warn_reference", m.baseline)
    abs_ = max(rule.abs_, m.breakdown.get("warn_margin", 0.0))
    return float(ref), rule.rel * margin_scale, abs_ * margin_scale


def warning_threshold(m: MetricResult, *, margin_scale: float = 1.0) -> float | None:
    """The value past which ``m`` raises its warning (below it for ``higher``-is-better
    metrics, above it for ``lower``); None where no rule applies or the metric is a
    ``target`` (it warns on both sides)."""
    margin = warning_margin(m, margin_scale=margin_scale)
    if margin is None or m.direction == "target":
        return None
    ref, rel, abs_ = margin
    width = max(abs(ref) * rel, abs_)
    return ref - width if m.direction == "higher" else ref + width


def warnings_for(metrics: list[MetricResult], *, margin_scale: float = 1.0) -> list[AuditWarning]:
    """Warnings for every metric with a rule whose value is worse than its baseline by more
    than the rule's margin (× ``margin_scale``); critical ones first."""
    out = []
    for m in metrics:
        if m.name == "ai_share":
            # evidence that holds across domains: the holdout's share is above 5% at a
            # threshold valid for the real data's kind, and it is flagged more often than the
            # rest of the real data (one-sided Fisher p < 0.01)
            real = m.breakdown.get("holdout", {})
            p_more = real.get("more_flagged_than_reference_p", 1.0)
            if real.get("low") is not None and real["low"] > 0.05 * margin_scale \
                    and p_more < 0.01:
                out.append(AuditWarning(
                    prop=m.prop, metric=m.name, level="warning",
                    message=f"Provenance: the real held-out data looks partly AI-generated "
                            f"(estimated {real['share']:.0%}, 95% CI {real['low']:.0%}–"
                            f"{real['high']:.0%}); keep-k%-real and accumulate assume it is "
                            f"real."))
        margin = warning_margin(m, margin_scale=margin_scale)
        if margin is None or m.value is None:
            continue
        ref, rel, abs_ = margin
        if worse_than(m.value, ref, m.direction, rel=rel, abs_=abs_):
            rule = RULES[_rule_name(m)]
            out.append(AuditWarning(prop=m.prop, metric=m.name, level=rule.level,
                                    message=rule.message.format(
                                        v=m.value, b=m.baseline, t=m.breakdown.get("table"))))
    out.sort(key=lambda w: w.level != "critical")
    return out
