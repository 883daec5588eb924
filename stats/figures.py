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
    """Odds ratios with CIs (log axis), intercept left out. A term past the separation threshold
    (|log-odds| > 10) or without finite limits is named at the right edge as not estimable, not drawn."""
    from stats.glmm.backends.common import SEPARATION_LOG_ODDS

    plt = _plt()
    rows = coef[~coef["term"].astype(str).str.contains("Intercept", case=False)].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * max(len(rows), 1) + 1.4))
    y = np.arange(len(rows))[::-1]
    if len(rows):
        # at the precision the report prints them, so the file is the same wherever the printed digits are
        orr, lo, hi = (
            np.array([printed(float(v), "num") for v in rows[k]]) for k in ("odds_ratio", "or_low", "or_high")
        )
        est = rows["estimate"].to_numpy(float)
        ok = np.isfinite(orr) & np.isfinite(lo) & np.isfinite(hi) & (lo > 0) & (np.abs(est) <= SEPARATION_LOG_ODDS)
        ax.errorbar(orr[ok], y[ok], xerr=[orr[ok] - lo[ok], hi[ok] - orr[ok]], fmt="o", ms=4, capsize=2, color="black")
        ax.set_yticks(y)
        ax.set_yticklabels([inert(t, 40) for t in rows["term"].astype(str)], fontsize=8)
        ax.set_xscale("log")
        x_lo = float(np.min(lo[ok], initial=1.0)) if ok.any() else 0.5
        x_hi = float(np.max(hi[ok], initial=1.0)) if ok.any() else 2.0
        _plain_log_ticks(ax, x_lo, x_hi)
        ax.set_xlim(x_lo / 1.3, x_hi * 1.3)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        for yy in y[~ok]:
            ax.annotate(
                "not estimable (separation)",
                (1.0, yy),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=7,
                color="firebrick",
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


def layer_trace(pairs: pd.DataFrame, stem: Path, level: float = 0.95) -> list[Path]:
    """One panel per language (a row of panels per model) from the by-layer records of
    `stats.layer_trace.compared`: the median gold first-token rank by lens entry with its bootstrap CI
    band, dense in black and each pruned condition in colour; dots mark the entries where a pruned
    median lies outside the dense CI, a dotted line the first of them."""
    plt = _plt()
    models = sorted(pairs["model"].astype(str).unique())
    langs = sorted(pairs["language"].astype(str).unique())
    ncol = min(4, len(langs))
    per_model = math.ceil(len(langs) / ncol)
    fig, axes = plt.subplots(
        per_model * len(models),
        ncol,
        figsize=(3.3 * ncol, 2.7 * per_model * len(models) + 0.6),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    conditions = sorted(pairs["condition"].astype(str).unique())
    colour_of = {c: colours[i % len(colours)] for i, c in enumerate(conditions)}

    def band(ax: Any, g: pd.DataFrame, side: str, colour: str, label: str) -> None:
        x = g["layer"].to_numpy()
        lo, hi = g[f"{side}_low"].to_numpy(float), g[f"{side}_high"].to_numpy(float)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0)
        ax.plot(x, g[f"{side}_median"].to_numpy(float), color=colour, lw=1.6 if side == "dense" else 1.1, label=label)

    for m, model in enumerate(models):
        for i, lang in enumerate(langs):
            ax = axes[m * per_model + i // ncol, i % ncol]
            sub = pairs[(pairs["model"].astype(str) == model) & (pairs["language"].astype(str) == lang)]
            dense = sub.drop_duplicates("layer").sort_values("layer")  # every pruned run of a model has one reference
            band(ax, dense, "dense", "black", "dense")
            for cond, g in sub.groupby("condition", sort=True, observed=True):
                g = g.sort_values("layer")
                colour = colour_of[str(cond)]
                band(ax, g, "pruned", colour, inert(str(cond), 30))
                out = g[g["outside"] != ""]
                if len(out):
                    ax.plot(out["layer"], out["pruned_median"], "o", ms=2.5, color=colour)
                    ax.axvline(float(out["layer"].min()), color=colour, ls=":", lw=0.9)
            ax.set_yscale("log")
            ax.set_title(inert(f"{lang} · {model.split('/')[-1]}" if len(models) > 1 else lang, 50), fontsize=9)
            ax.grid(alpha=0.3)
        for j in range(len(langs), per_model * ncol):
            axes[m * per_model + j // ncol, j % ncol].set_visible(False)
    axes[0, 0].invert_yaxis()  # rank 1 (the model's choice) at the top; the axes share y
    axes[0, 0].legend(fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("median gold rank (1 at top)")
    for ax in axes[-1, :]:
        ax.set_xlabel("lens entry (0 = embeddings)")
    fig.suptitle(
        f"Gold first-token rank through the logit lens: median over items, {100 * level:g}% cluster-bootstrap band; "
        "dots: pruned median outside the dense band",
        fontsize=8,
    )
    fig.tight_layout()
    return _save(fig, stem)
