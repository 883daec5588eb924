"""Figures (matplotlib Agg, PDF and PNG, no timestamps in the files): recognition-only rate vs sparsity
per language with Wilson CIs and a forest plot of GLMM effects (the paper's figures: `stats.paper_figures`).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.safe_text import inert
from stats.intervals import wilson
from stats.report import printed

_PDF_META = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}
_PNG_META = {"Software": None}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "prunescope", "pdf.compression": 6, "figure.dpi": 100})
    return plt


def _save(fig: Any, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = stem.with_suffix(".pdf"), stem.with_suffix(".png")
    fig.savefig(pdf, metadata=_PDF_META)
    fig.savefig(png, metadata=_PNG_META, dpi=150)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [pdf, png]


def recognition_vs_sparsity(df: pd.DataFrame, stem: Path, level: float = 0.95) -> list[Path]:
    """One panel per (model, method): recognition-only rate vs sparsity, one line per language, Wilson CIs."""
    plt = _plt()
    panels = []
    for (model, meth), _ in df[df["method"] != "dense"].groupby(["model", "method"], observed=True, sort=True):
        panels.append((str(model), str(meth)))
    if not panels:
        panels = [(str(m), "dense") for m in sorted(df["model"].astype(str).unique())]
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False, sharey=True)
    langs = sorted(df["language"].astype(str).unique())
    for ax, (model, meth) in zip(axes.flat, panels):
        sub = df[
            (df["model"].astype(str) == model)
            & (df["method"].astype(str).isin([meth, "dense"]))
            & (df["pattern"].astype(str) == "unstructured")
        ]
        for i, lang in enumerate(langs):
            ls = sub[sub["language"].astype(str) == lang]
            g = ls.groupby("sparsity", sort=True)["recognition_only"].agg(["sum", "size"])
            if g.empty:
                continue
            cis = [wilson(int(s), int(n), level) for s, n in zip(g["sum"], g["size"])]
            x = g.index.to_numpy(float) + 0.006 * (i - (len(langs) - 1) / 2)  # dodge so CIs stay readable
            y = np.array([c.estimate for c in cis])
            err = np.array([[c.estimate - c.lower for c in cis], [c.upper - c.estimate for c in cis]])
            ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, lw=1, label=inert(lang, 20))
        ax.set_title(inert(f"{model.split('/')[-1]} · {meth} (unstructured)", 70), fontsize=9)
        ax.set_xlabel("sparsity")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel(f"recognition-only rate ({100 * level:g}% Wilson CI)")
    axes[0, 0].legend(fontsize=7, title="language", title_fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


def glmm_forest(coef: pd.DataFrame, stem: Path, title: str = "GLMM fixed effects") -> list[Path]:
    """Odds ratios with CIs (log axis), intercept left out."""
    plt = _plt()
    rows = coef[~coef["term"].astype(str).str.contains("Intercept", case=False)].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * max(len(rows), 1) + 1.4))
    y = np.arange(len(rows))[::-1]
    if len(rows):
        # at the precision the report prints them, so the file is the same wherever the printed digits are
        orr, lo, hi = (
            np.array([printed(float(v), "num") for v in rows[k]]) for k in ("odds_ratio", "or_low", "or_high")
        )
        ax.errorbar(orr, y, xerr=[orr - lo, hi - orr], fmt="o", ms=4, capsize=2, color="black")
        ax.set_yticks(y)
        ax.set_yticklabels([inert(t, 40) for t in rows["term"].astype(str)], fontsize=8)
        ax.set_xscale("log")
        _plain_log_ticks(
            ax, float(np.nanmin(lo[lo > 0], initial=1.0)), float(np.nanmax(hi[np.isfinite(hi)], initial=1.0))
        )
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("odds ratio (95% CI)")
    ax.set_title("\n".join(textwrap.wrap(inert(title, 160), 48)), fontsize=9)
    fig.tight_layout()
    return _save(fig, stem)


def _plain_log_ticks(ax: Any, lo: float, hi: float) -> None:
    """Ticks at 1, 2, 5 × 10^k within [lo, hi] (and 1), labelled as plain numbers; no minor labels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ks = range(math.floor(math.log10(min(lo, 1.0))), math.ceil(math.log10(max(hi, 1.0))) + 1)
    ticks = sorted({1.0} | {m * 10.0**k for k in ks for m in (1, 2, 5) if lo <= m * 10.0**k <= hi})
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
