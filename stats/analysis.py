"""From the tidy table to report tables: paired tests per cell, languages, Cochran's Q, the GLMM.

Every table carries notes that name the test, the unit and n, the CI methods, and the
multiple-comparison correction with its declared family.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import UserError
from stats.cochran import cochran_q
from stats.intervals import DIFF_NAMES, wilson
from stats.mcnemar import METHOD_NAMES, McNemarResult, mcnemar
from stats.multiple import adjust
from stats.power import min_detectable_effect
from stats.report import Column, ReportTable, baseline_wording
from stats.strata import clustered_mcnemar, stratified_mcnemar
from stats.tables import PairedTable

BY_KEYS = ("model", "method", "sparsity", "pattern", "condition", "language")
RUN_KEYS = ("model", "method", "sparsity", "pattern", "condition")
TESTS = {
    # key: (column, title, label 1, label 2, what Δ means)
    "recognition": (
        "recognition_only",
        "Recognition-only errors, pruned vs dense (McNemar)",
        "pruned",
        "dense",
        "recognition-only rate pruned − dense",
    ),
    "open": (
        "open_correct",
        "Open-generation accuracy, pruned vs dense (McNemar)",
        "pruned",
        "dense",
        "open accuracy pruned − dense",
    ),
    "mc": (
        "mc_correct",
        "Multiple-choice accuracy, pruned vs dense (McNemar)",
        "pruned",
        "dense",
        "MC accuracy pruned − dense",
    ),
    "shown": (
        "shown_correct",
        "Candidate-shown accuracy, pruned vs dense (McNemar)",
        "pruned",
        "dense",
        "candidate-shown accuracy pruned − dense",
    ),
    "within": (
        "mc_vs_open",
        "Multiple choice vs open generation within each run (McNemar)",
        "MC",
        "open",
        "MC accuracy − open accuracy (b = MC right and open wrong = the recognition-only count)",
    ),
}
SHORT = {"midp": "mid-p", "exact": "exact", "asymptotic": "asympt.", "asymptotic_cc": "asympt. CC"}


def parse_by(text: str | None) -> list[str]:
    """'language,model' → keys; method or sparsity bring pattern along (2:4 ≠ unstructured 50 %)."""
    if not text:
        return ["model", "method", "sparsity", "pattern"]
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in BY_KEYS]
    if bad:
        raise UserError(f"--by: unknown key(s) {', '.join(bad)}; choose from {', '.join(BY_KEYS)}")
    if ("method" in keys or "sparsity" in keys) and "pattern" not in keys and "condition" not in keys:
        keys.append("pattern")
    return list(dict.fromkeys(keys))


def _cells(languages: Sequence[str], runs: pd.DataFrame, by: Sequence[str]) -> list[tuple[Any, ...]]:
    """Every cell the design has: run-level key combinations × languages (empty cells included)."""
    run_keys = [k for k in by if k != "language"]
    combos = (
        sorted({tuple(r) for r in runs[run_keys].itertuples(index=False, name=None)}, key=_sort_key)
        if run_keys
        else [()]
    )
    if "language" in by:
        cells = [c + (lang,) for c, lang in itertools.product(combos, sorted(languages))]
        order = run_keys + ["language"]
        return [tuple(cell[order.index(k)] for k in by) for cell in cells]
    return combos


def _sort_key(t: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((0, x, "") if isinstance(x, (int, float)) else (1, 0, str(x)) for x in t)


def _select(frame: pd.DataFrame, by: Sequence[str], cell: tuple[Any, ...]) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for k, v in zip(by, cell):
        mask &= (frame[k].astype(object) == v).to_numpy()
    return frame[mask]


def _pairs(sub: pd.DataFrame, test: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    if test == "within":
        return sub["mc_correct"].to_numpy(bool), sub["open_correct"].to_numpy(bool), sub
    col = TESTS[test][0]
    p, d = sub[f"{col}_pruned"], sub[f"{col}_dense"]
    if test == "shown":
        keep = (p.notna() & d.notna()).to_numpy()
        sub, p, d = sub[keep], p[keep], d[keep]
    return p.to_numpy(bool), d.to_numpy(bool), sub


def cell_label(record: dict[str, Any], by: Sequence[str]) -> str:
    """'model / method / 0.5 / unstructured': a cell of a `by` table, as families and sentences name it."""
    return " / ".join(str(record[k]) for k in by) or "all"


def paired_table_report(
    df: pd.DataFrame,
    tr: pd.DataFrame,
    test: str,
    by: Sequence[str],
    method: str = "midp",
    adjust_method: str = "holm",
    level: float = 0.95,
    diff_ci: str = "tango",
) -> tuple[ReportTable, list[McNemarResult]]:
    """One McNemar per cell of `by`; the cells form the family for the multiplicity correction.

    `diff_ci` is the interval for Δ (stats.intervals.DIFF_METHODS; Tango's score by default)."""
    if test not in TESTS:
        raise UserError(f"--test: unknown test {test!r}; choose from {', '.join(TESTS)}")
    col, title, lab1, lab2, meaning = test_labels(test, tr)
    baseline = test != "within" and bool(tr.attrs.get("baseline"))
    frame = df if test == "within" else tr
    compared = set(tr["run_id"].astype(str).unique()) if len(tr) else set()
    runs = _run_table(
        df if test == "within" else df[(df["method"] != "dense") | df["run_id"].astype(str).isin(compared)]
    )
    if test != "within":
        with_ref = set(tr["model"].astype(str).unique()) if len(tr) else set()
        runs = runs[runs["model"].isin(with_ref)]
    cells = _cells([str(x) for x in df["language"].unique()], runs, by)
    records: list[dict[str, Any]] = []
    results: list[McNemarResult] = []
    for cell in cells:
        sub = _select(frame, by, cell) if len(frame) else frame
        x, y, sub = _pairs(sub, test) if len(sub) else (np.zeros(0, bool), np.zeros(0, bool), sub)
        table = PairedTable.from_pairs(x, y, (lab1, lab2))
        res = mcnemar(table, method, level=level, diff_ci=diff_ci, outcome=col)
        rec: dict[str, Any] = {k: _plain(v) for k, v in zip(by, cell)}
        rec.update(_rates(sub, test, level))
        rec.update(
            n=table.n,
            rate1=table.p1,
            rate2=table.p2,
            b=table.b,
            c=table.c,
            chi2=res.statistic,
            p=res.pvalue,
            p_asymptotic=res.p_asymptotic,
            delta=res.difference.estimate,
            delta_low=res.difference.lower,
            delta_high=res.difference.upper,
            odds_ratio=res.odds_ratio.estimate,
            odds_ratio_low=res.odds_ratio.lower,
            odds_ratio_high=res.odds_ratio.upper,
        )
        flags = [res.note] if res.note else []
        rec["p_clustered"] = math.nan
        rec["clustered_test"] = ""
        if table.n and "parallel_id" in sub and sub["parallel_id"].duplicated().any():
            cres = _clustered(sub, x, y)
            rec["p_clustered"], rec["clustered_test"] = cres.pvalue, cres.method
            flags.append(f"items recur ({cres.n_clusters} clusters)")
            if cres.note and cres.note not in flags:  # why p (clustered) is missing
                flags.append(("no clustered p: " if math.isnan(cres.pvalue) else "clustered test: ") + cres.note)
        disc = (table.b + table.c) / table.n if table.n else math.nan
        rec["mde_80"] = (
            min_detectable_effect(table.n, disc, 1 - level, 0.8, method="normal") if table.n and disc > 0 else math.nan
        )
        rec["flag"] = "; ".join(flags)
        records.append(rec)
        results.append(res)
    labels = [cell_label(r, by) for r in records]
    fam = adjust(
        [r["p"] for r in records],
        labels,
        adjust_method,
        family=f"{title}: {len(records)} cells by " + (", ".join(by) or "nothing"),
    )
    for rec, padj in zip(records, fam.adjusted):
        rec["p_adjusted"] = padj
    results = [r.adjusted(padj, fam.method, fam.family, fam.m) for r, padj in zip(results, fam.adjusted)]
    has_cluster = any(r["clustered_test"] for r in records)
    cols = [Column(k, k, "num" if k == "sparsity" else "text", "right" if k == "sparsity" else "left") for k in by]
    cols += [Column("n", "n", "int")]
    cols += [
        Column("open", "open_acc", "rate"),
        Column("MC", "mc_acc", "rate"),
        Column(f"R [{100 * level:g}% CI]", "recog", "ci"),
    ]
    cols += [Column(lab1, "rate1", "rate"), Column(lab2, "rate2", "rate")] if test != "within" else []
    cols += [
        Column("b", "b", "int"),
        Column("c", "c", "int"),
        Column("χ²", "chi2", "num"),
        Column(f"p ({SHORT[method]})", "p", "p"),
        Column("p (asympt.)", "p_asymptotic", "p"),
        Column(f"p adj. ({fam.method})", "p_adjusted", "p"),
        Column(f"Δ [{100 * level:g}% CI]", "delta", "ci"),
    ]
    if has_cluster:
        cols.append(Column("p (clustered)", "p_clustered", "p"))
    cols.append(Column("flag", "flag", "text", "left"))
    unit = "item × language pairs" if test != "within" else "items (open and MC on the same item in one run)"
    notes = [
        f"Test: two-sided {METHOD_NAMES[method]}; the asymptotic McNemar p (no continuity correction) alongside. "
        f"b = {lab1} only, c = {lab2} only; n = paired {unit} per cell (column n).",
        f"Δ = {meaning}, {100 * level:g}% {DIFF_NAMES[diff_ci]} CI; R = recognition-only rate "
        f"({'the run' if test == 'within' or baseline else 'pruned run'}), {100 * level:g}% Wilson CI; "
        f"open/MC = accuracies{'' if test == 'within' else ' of the run' if baseline else ' of the pruned run'}.",
        "Multiple comparisons: " + fam.describe() + ".",
        f"CSV/JSON also carry the conditional odds ratio b/c with its CI and mde_80: the |Δ| a two-sided test at "
        f"α = {1 - level:.2g} detects with 80% power at the cell's n and observed discordance (Connor 1987).",
    ]
    if has_cluster:
        notes.append(
            "Where the same items recur in a cell (parallel items across languages or models), pairs are "
            "not independent: p (clustered) is the cluster-adjusted McNemar test (Obuchowski for equal "
            "cluster sizes or ≥ 50 clusters, else Durkalski), clustered by parallel item."
        )
    if test != "within":
        if tr.attrs.get("unfinished"):
            notes.append(
                "Runs not finished (still running, or stopped and not yet resumed): items not yet finished in both "
                "runs are left out (" + ", ".join(f"{k}: {v}" for k, v in sorted(tr.attrs["unfinished"].items())) + ")."
            )
        if tr.attrs.get("unpaired"):
            notes.append("Left out, with no reference run on their items: " + "; ".join(tr.attrs["unpaired"]) + ".")
    return ReportTable(f"mcnemar-{test}", title, cols, records, notes), results


def test_labels(test: str, tr: pd.DataFrame) -> tuple[str, str, str, str, str]:
    """`TESTS[test]`, worded for a baseline comparison ('each run vs the baseline', 'run', 'baseline') when
    the runs were paired with a baseline rather than pruned with dense."""
    col, *words = TESTS[test]
    if test != "within" and tr.attrs.get("baseline"):
        words = [baseline_wording(w) for w in words]
    title, lab1, lab2, meaning = words
    return col, title, lab1, lab2, meaning


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _run_table(df: pd.DataFrame) -> pd.DataFrame:
    runs = df[list(RUN_KEYS)].drop_duplicates()
    for k in RUN_KEYS:
        runs[k] = runs[k].astype(object)
    return runs


def _rates(sub: pd.DataFrame, test: str, level: float) -> dict[str, Any]:
    suffix = "" if test == "within" else "_pruned"
    n = len(sub)
    r = int(sub[f"recognition_only{suffix}"].sum()) if n else 0
    ci = wilson(r, n, level)
    return {
        "open_acc": float(sub[f"open_correct{suffix}"].mean()) if n else math.nan,
        "mc_acc": float(sub[f"mc_correct{suffix}"].mean()) if n else math.nan,
        "recog": ci.estimate,
        "recog_low": ci.lower,
        "recog_high": ci.upper,
    }


def _clustered(sub: pd.DataFrame, x: np.ndarray, y: np.ndarray):
    g = pd.DataFrame({"cl": sub["parallel_id"].astype(str).to_numpy(), "b": x & ~y, "c": ~x & y})
    agg = g.groupby("cl", sort=True).agg(b=("b", "sum"), c=("c", "sum"), n=("b", "size"))
    return clustered_mcnemar(agg["b"].to_numpy(), agg["c"].to_numpy(), agg["n"].to_numpy())


def language_report(
    tr: pd.DataFrame, test: str = "recognition", method: str = "midp", adjust_method: str = "holm", level: float = 0.95
) -> ReportTable:
    """Per pruned condition: pooled over languages, homogeneity across languages, cluster-adjusted test."""
    col, _title, lab1, lab2, _ = test_labels(test, tr)
    records = []
    for (model, cond), sub in tr.groupby(["model", "condition"], observed=True, sort=True):
        x, y, sub = _pairs(sub, test)
        langs = sorted(str(v) for v in sub["language"].unique())
        tables = {}
        for lang in langs:
            m = (sub["language"].astype(str) == lang).to_numpy()
            tables[lang] = PairedTable.from_pairs(x[m], y[m], (lab1, lab2))
        strat = stratified_mcnemar(tables, method)
        cres = _clustered(sub, x, y)
        ix = max(
            range(len(langs)),
            key=lambda i: abs(strat.per_stratum[i].difference.estimate) if strat.per_stratum[i].n else -1.0,
        )
        records.append(
            {
                "model": str(model),
                "condition": str(cond),
                "languages": len(langs),
                "n": strat.pooled.n,
                "b": strat.pooled.b,
                "c": strat.pooled.c,
                "p_pooled": strat.pooled.pvalue,
                "clustered_test": cres.method,
                "chi2_clustered": cres.statistic,
                "p_clustered": cres.pvalue,
                "homogeneity_chi2": strat.homogeneity.statistic,
                "homogeneity_df": strat.homogeneity.df,
                "p_homogeneity": strat.homogeneity.pvalue,
                "largest_change": f"{langs[ix]} {100 * strat.per_stratum[ix].difference.estimate:+.1f} pp",
                "per_language": {s: r.to_dict() for s, r in zip(strat.strata, strat.per_stratum)},
                "flag": "; ".join(n for n in (cres.note, strat.homogeneity.note) if n),
            }
        )
    fam = adjust(
        [r["p_clustered"] for r in records],
        [f"{r['model']} / {r['condition']}" for r in records],
        adjust_method,
        family=f"cluster-adjusted pooled {test} tests, one per pruned condition ({len(records)})",
    )
    for r, padj in zip(records, fam.adjusted):
        r["p_clustered_adjusted"] = padj
    cols = [
        Column("model", "model", "text", "left"),
        Column("condition", "condition", "text", "left"),
        Column("languages", "languages", "int"),
        Column("n", "n", "int"),
        Column("b", "b", "int"),
        Column("c", "c", "int"),
        Column("p pooled", "p_pooled", "p"),
        Column("clustered test", "clustered_test", "text", "left"),
        Column("χ² (clustered)", "chi2_clustered", "num"),
        Column("p (clustered)", "p_clustered", "p"),
        Column(f"p adj. ({fam.method})", "p_clustered_adjusted", "p"),
        Column("homogeneity χ²", "homogeneity_chi2", "num"),
        Column("df", "homogeneity_df", "int"),
        Column("p (homog.)", "p_homogeneity", "p"),
        Column("largest Δ", "largest_change", "text", "left"),
        Column("flag", "flag", "text", "left"),
    ]
    notes = [
        f"Outcome: {col}; b = {lab1} only, c = {lab2} only, pooled over languages; n = item × language pairs.",
        f"p pooled: {METHOD_NAMES[method]} on Σb, Σc (Mantel–Haenszel for matched pairs), valid only if items are "
        "independent across languages.",
        "p (clustered): cluster-adjusted McNemar test with pairs clustered by parallel item (Obuchowski 1998 for equal "
        "cluster sizes or ≥ 50 clusters, else Durkalski et al. 2003).",
        "Homogeneity: Pearson χ² on the languages × (b, c) table (H0: one conditional odds ratio for all languages); "
        "languages without discordant pairs carry no information and are left out.",
        "Multiple comparisons: " + fam.describe() + ".",
    ]
    return ReportTable(f"languages-{test}", f"Languages pooled and compared ({test})", cols, records, notes)


def cochran_report(df: pd.DataFrame, outcome: str = "recognition_only", adjust_method: str = "holm") -> ReportTable:
    """Cochran's Q across the dense run and every sparsity of one method (k ≥ 3), with pairwise follow-ups."""
    records = []
    for model, msub in df.groupby("model", observed=True, sort=True):
        dense = msub[msub["method"] == "dense"]
        if dense.empty:
            continue
        for (meth, pattern), sub in msub[msub["method"] != "dense"].groupby(
            ["method", "pattern"], observed=True, sort=True
        ):
            conds = sub[["condition", "sparsity"]].drop_duplicates().sort_values("sparsity")
            if len(conds) < 2:
                continue
            labels = ["dense"] + [str(c) for c in conds["condition"]]
            wide = pd.concat([dense, sub]).pivot_table(
                index="item_uid", columns="condition", values=outcome, aggfunc="first", observed=True
            )
            wide = wide[labels].dropna()
            res = cochran_q(wide.to_numpy(dtype=float), labels, adjust_method=adjust_method)
            records.append(
                {
                    "model": str(model),
                    "method": str(meth),
                    "pattern": str(pattern),
                    "k": res.k,
                    "n": res.n,
                    "conditions": ", ".join(labels),
                    "Q": res.statistic,
                    "df": res.df,
                    "p": res.pvalue,
                    "row": "Cochran's Q",
                    "flag": res.note,
                }
            )
            for r in res.pairwise:
                records.append(
                    {
                        "model": str(model),
                        "method": str(meth),
                        "pattern": str(pattern),
                        "k": 2,
                        "n": r.n,
                        "conditions": f"{r.labels[0]} vs {r.labels[1]}",
                        "Q": r.statistic,
                        "df": 1,
                        "p": r.pvalue,
                        "p_adjusted": r.adjustment.pvalue if r.adjustment else math.nan,
                        "row": "pairwise McNemar mid-p",
                        "b": r.b,
                        "c": r.c,
                        "flag": r.note,
                    }
                )
    cols = [
        Column("model", "model", "text", "left"),
        Column("method", "method", "text", "left"),
        Column("pattern", "pattern", "text", "left"),
        Column("test", "row", "text", "left"),
        Column("conditions", "conditions", "text", "left"),
        Column("n", "n", "int"),
        Column("Q / χ²", "Q", "num"),
        Column("df", "df", "int"),
        Column("p", "p", "p"),
        Column(f"p adj. ({adjust_method})", "p_adjusted", "p"),
        Column("flag", "flag", "text", "left"),
    ]
    notes = [
        f"Outcome: {outcome}; unit: item × language (items complete in every condition of the row); "
        "Cochran's Q tests equality of the k rates (dense and each sparsity of one method), df = k − 1.",
        "Pairwise follow-ups: McNemar mid-p tests (χ² shown is the asymptotic statistic), "
        f"{adjust_method} correction within each method's family of k(k − 1)/2 pairs.",
    ]
    return ReportTable(f"cochran-{outcome}", "Across sparsities (Cochran's Q)", cols, records, notes)


def did_report(
    tr: pd.DataFrame, group_a: str, group_b: str, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> ReportTable:
    """Per pruned condition: change in recognition-only rate (pruned − dense) in language A minus in B,
    with a percentile CI from the item-cluster bootstrap (items resampled with all their languages)."""
    from stats.bootstrap import difference_in_differences

    langs = set(tr["language"].astype(str)) if len(tr) else set()
    for g in (group_a, group_b):
        if g not in langs:
            raise UserError(f"--did: language {g!r} is not in the paired data (languages: {', '.join(sorted(langs))})")
    records = []
    for (model, cond), sub in tr.groupby(["model", "condition"], observed=True, sort=True):
        res = difference_in_differences(
            sub["parallel_id"].astype(str).to_numpy(),
            sub["language"].astype(str).to_numpy(),
            sub["recognition_only_dense"].to_numpy(bool),
            sub["recognition_only_pruned"].to_numpy(bool),
            group_a,
            group_b,
            n_boot=n_boot,
            seed=seed,
            level=level,
        )
        records.append(
            {
                "model": str(model),
                "condition": str(cond),
                "did": res.estimate,
                "did_low": res.lower,
                "did_high": res.upper,
                "se": res.se,
                "p": res.pvalue,
                "items": res.n_clusters,
                "n_boot": res.n_boot,
                "seed": res.seed,
            }
        )
    cols = [
        Column("model", "model", "text", "left"),
        Column("condition", "condition", "text", "left"),
        Column("items", "items", "int"),
        Column(f"DiD [{100 * level:g}% CI]", "did", "ci"),
        Column("SE", "se", "num"),
        Column("p (bootstrap)", "p", "p"),
    ]
    notes = [
        f"DiD = (recognition-only rate pruned − dense in {group_a}) − (the same in {group_b}).",
        f"Item-cluster bootstrap: items (parallel ids) resampled with replacement with all their languages, "
        f"B = {n_boot}, seed {seed}; percentile CI; two-sided p from the null-shifted bootstrap distribution. "
        "Not adjusted for multiplicity.",
    ]
    return ReportTable("did", f"Difference in differences, {group_a} vs {group_b}", cols, records, notes)


def default_glmm_formula(df: pd.DataFrame, outcome: str = "recognition_only") -> str:
    """`outcome ~ condition [+ model] [+ language] [+ dataset] + (1|item)`, each term only where it varies.

    With two or more model sizes, size is a numeric axis instead of the model factor: `log_params`
    (log10 parameters) and its interaction with sparsity, `sparsity:log_params`.
    """
    varies = {t: df[t].nunique() > 1 for t in ("condition", "model", "language", "dataset", "sparsity")}
    terms = [t for t in ("condition", "model") if varies[t]]
    if df["log_params"].dropna().nunique() > 1:
        terms = [t for t in terms if t != "model"] + ["log_params"] + (["sparsity:log_params"] * varies["sparsity"])
    terms = [*terms, *(t for t in ("language", "dataset") if varies[t])] or ["1"]
    return f"{outcome} ~ {' + '.join(terms)} + (1|item)"


def size_note(formula: str) -> str:
    """What the formula does with model size, said in the GLMM table."""
    if "log_params" in formula:
        return (
            "Model size is a numeric axis: log_params = log10(parameter count from the manifest); "
            "sparsity:log_params is the size × sparsity interaction (the change in the sparsity slope per "
            "tenfold more parameters)."
        )
    return ""


def glmm_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The columns a GLMM formula may name, with 0/1 outcomes and `item` = parallel item id."""
    out = pd.DataFrame(
        {
            "item": df["parallel_id"].astype(str).to_numpy(),
            "item_uid": df["item_uid"].astype(str).to_numpy(),
            "language": df["language"].astype(str).to_numpy(),
            "model": df["model"].astype(str).to_numpy(),
            "method": df["method"].astype(str).to_numpy(),
            "condition": df["condition"].astype(str).to_numpy(),
            "sparsity": df["sparsity"].to_numpy(float),
            "pattern": df["pattern"].astype(str).to_numpy(),
            "log_params": df["log_params"].to_numpy(float),
            "run_id": df["run_id"].astype(str).to_numpy(),
            "dataset": df["dataset"].astype(str).to_numpy(),
        }
    )
    for col in ("open_correct", "mc_correct", "recognition_only"):
        out[col] = df[col].to_numpy(bool).astype(int)
    out["shown_correct"] = df["shown_correct"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    out["method_sparsity"] = out["condition"]
    return out


GLMM_TITLE = "Mixed-effects logistic regression"
GLMM_COLUMNS = [
    Column("term", "term", "text", "left"),
    Column("estimate", "estimate", "num"),
    Column("SE", "se", "num"),
    Column("z", "z", "num"),
    Column("p", "p", "p"),
    Column("odds ratio", "odds_ratio", "num"),
    Column("OR low", "or_low", "num"),
    Column("OR high", "or_high", "num"),
]


def glmm_report(df: pd.DataFrame, formula: str, backend: str) -> tuple[ReportTable, Any]:
    """Fit the GLMM through `stats.glmm.fit_glmm` and tabulate its coefficients."""
    from stats.glmm import fit_glmm

    result = fit_glmm(glmm_frame(df), formula, backend=backend)
    coef = result.coef_table()
    records = [{k: _plain(v) for k, v in row.items()} for row in coef.to_dict(orient="records")]
    terms = {str(t) for t in coef["term"]}
    summary = [str(s) for s in result.summary_lines()]
    # the coefficient rows are this table; keep the summary's other lines (method, SEs, fit status)
    summary = [s for s in summary if not (s.split() and (s.split()[0] in terms or s.split()[0] == "term"))]
    notes = [
        f"Formula: {formula}; backend: {backend}; n = {len(df)} rows (item × run), "
        f"{df['parallel_id'].nunique()} items. Coefficient p-values are Wald tests, not adjusted for "
        "multiplicity."
    ]
    notes += [n for n in (size_note(formula),) if n] + summary
    return ReportTable("glmm", GLMM_TITLE, GLMM_COLUMNS, records, notes), result


def glmm_not_fitted(formula: str, backend: str, reason: str) -> ReportTable:
    """The GLMM's table where the model cannot be fitted to the data: no rows, the reason."""
    return ReportTable(
        "glmm", GLMM_TITLE, GLMM_COLUMNS, [], [f"Not fitted: {reason}", f"Formula: {formula}; backend: {backend}."]
    )
