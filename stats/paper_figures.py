"""Figures of the paper's analyses, one panel per model: demoted vs erased per condition, the gold
first-token rank dense vs each condition, and the format ladder (accuracy by format × sparsity).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from engine.safe_text import inert
from stats.demotion import DemotionRule, both_traced, label
from stats.figures import _plt, _save
from stats.intervals import wilson

_SHARES = (
    ("open correct", "#4c72b0", ""),
    ("demoted", "#dd8452", "demoted"),
    ("erased", "#c44e52", "erased"),
    ("not probed", "#9a9a9a", "not_probed"),
)
_FORMATS = (("open_correct", "open"), ("shown_correct", "shown"), ("mc_correct", "mc"))
_FORMAT_TITLES = {"open": "open generation", "shown": "candidates shown", "mc": "multiple choice"}


def _short(model: str) -> str:
    return inert(model.split("/")[-1], 40)


def _reference(tr: pd.DataFrame) -> str:
    """What the `_dense` side of the pairs is called: 'baseline' when the runs were paired with one."""
    return "baseline" if tr.attrs.get("baseline") else "dense"


def _models(frame: pd.DataFrame) -> list[str]:
    """Models, smallest first (by parameter count, then name)."""
    sizes = frame.groupby("model", observed=True)["n_params"].first()
    return [str(m) for m in sorted(sizes.index, key=lambda m: (int(sizes[m]), str(m)))]


def _grid(plt, n: int, width: float, height: float, ncol: int = 3, **kw):
    ncol = min(ncol, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, height * nrow), squeeze=False, **kw)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, axes


def demotion_shares(tr: pd.DataFrame, stem: Path, rule: DemotionRule) -> list[Path]:
    """Stacked shares of all items: open correct / demoted / erased (/ not probed, where some failure had
    none of the rule's probes), dense (or the baseline) and each condition, per model (conditions whose
    pruned or dense run has no rank and no probe result left out; no figure when none has them)."""
    reference = _reference(tr)
    tr = tr.groupby(["model", "condition"], observed=True).filter(both_traced)
    if tr.empty:
        return []
    plt = _plt()
    models = _models(tr)
    fig, axes = _grid(plt, len(models), 6.0, 3.6, ncol=2, sharey=True)
    for ax, model in zip(axes.flat, models):
        sub = tr[tr["model"].astype(str) == model]
        conds = sorted(sub["condition"].astype(str).unique())
        dense = sub.drop_duplicates("item_uid")
        bars = [(reference, label(dense, rule, "_dense"))]
        bars += [(c, label(sub[sub["condition"].astype(str) == c], rule, "_pruned")) for c in conds]
        x = np.arange(len(bars))
        bottom = np.zeros(len(bars))
        shown = [s for s in _SHARES if s[2] != "not_probed" or any((lab == "not_probed").any() for _, lab in bars)]
        for name, color, key in shown:
            share = np.array([(lab == key).mean() if len(lab) else 0.0 for _, lab in bars])
            ax.bar(x, share, bottom=bottom, color=color, label=name, width=0.7)
            bottom += share
        ax.set_xticks(x)
        ax.set_xticklabels([inert(n, 30) for n, _ in bars], rotation=40, ha="right", fontsize=8)
        ax.set_title(_short(model), fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("share of items")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    probe = " or a probe recovered" if rule.probes else ""
    fig.suptitle(inert(f"Rank ≤ {rule.max_rank}{probe} → demoted", 100), fontsize=9)
    fig.tight_layout()
    return _save(fig, stem)


def first_token_rank(tr: pd.DataFrame, stem: Path) -> list[Path]:
    """ECDF of the gold answer's first-token rank, dense (or the baseline) vs each pruned condition, one
    panel per model (no figure when no rank was recorded: imported runs)."""
    if not tr[["first_token_rank_dense", "first_token_rank_pruned"]].notna().any().any():
        return []
    reference = _reference(tr)
    plt = _plt()
    models = _models(tr)
    fig, axes = _grid(plt, len(models), 5.2, 3.8, ncol=2, sharey=True)
    for ax, model in zip(axes.flat, models):
        sub = tr[tr["model"].astype(str) == model]
        dense = sub.drop_duplicates("item_uid")["first_token_rank_dense"].dropna().to_numpy(float)
        series = [(reference, dense)] + [
            (str(c), s["first_token_rank_pruned"].dropna().to_numpy(float))
            for c, s in sub.groupby("condition", observed=True, sort=True)
        ]
        for i, (name, ranks) in enumerate(series):
            if ranks.size == 0:
                continue
            xs = np.sort(ranks)
            ys = np.arange(1, xs.size + 1) / xs.size
            ax.step(
                xs,
                ys,
                where="post",
                lw=2.0 if i == 0 else 1.0,
                color="black" if i == 0 else None,
                label=inert(name, 40),
            )
        for k in (1, 5, 10):
            ax.axvline(k, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("gold first-token rank (1 = greedy choice)")
        ax.set_title(_short(model), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    axes[0, 0].set_ylabel("fraction of items with rank ≤ x")
    fig.tight_layout()
    return _save(fig, stem)


def format_ladder(df: pd.DataFrame, stem: Path, level: float = 0.95) -> list[Path]:
    """Accuracy by format × sparsity, one line per method (N:M patterns as their own markers), rows = models."""
    plt = _plt()
    models = _models(df)
    fig, axes = plt.subplots(
        len(models), len(_FORMATS), figsize=(3.6 * len(_FORMATS), 3.0 * len(models)), squeeze=False, sharey=True
    )
    # only dense runs (imported ones, compared with a baseline): their points alone, not empty panels
    methods = sorted(m for m in df["method"].astype(str).unique() if m != "dense") or ["dense"]
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for row, model in enumerate(models):
        sub = df[df["model"].astype(str) == model]
        dense = sub[sub["method"].astype(str) == "dense"]
        for col, (fmt, name) in enumerate(_FORMATS):
            ax = axes[row, col]
            for i, meth in enumerate(methods):
                for pattern, psub in sub[sub["method"].astype(str) == meth].groupby("pattern", observed=True):
                    nm = str(pattern) != "unstructured"
                    pts = psub if nm or meth == "dense" else pd.concat([dense, psub])
                    g = pts.groupby("sparsity", sort=True)[fmt].agg(
                        lambda s: (int(s.astype("boolean").dropna().sum()), int(s.notna().sum()))
                    )
                    if g.empty:
                        continue
                    cis = [wilson(k, n, level) for k, n in g]
                    y = np.array([c.estimate for c in cis])
                    err = np.clip([[c.estimate - c.lower for c in cis], [c.upper - c.estimate for c in cis]], 0, None)
                    x = g.index.to_numpy(float) + 0.008 * (i - (len(methods) - 1) / 2) + (0.02 if nm else 0.0)
                    ax.errorbar(
                        x,
                        y,
                        yerr=err,
                        color=colors[meth],
                        marker="s" if nm else "o",
                        ms=4 if nm else 3,
                        ls="none" if nm else "-",
                        lw=1,
                        capsize=2,
                        label=inert(f"{meth} {pattern}" if nm else str(meth), 30),
                    )
            if not sub[fmt].notna().any():  # the format was not run (or not recorded): say so, not an empty panel
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="grey")
            k = sub["n_options"].dropna().astype(float)
            if name == "mc" and len(k[k > 0]):
                ax.axhline(float((1.0 / k[k > 0]).mean()), color="grey", lw=0.8, ls="--", label="chance")
            ax.set_title(inert(f"{_short(model)} · {_FORMAT_TITLES[name]}", 70), fontsize=9)
            ax.set_xlabel("sparsity")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[row, 0].set_ylabel(f"accuracy ({100 * level:g}% Wilson CI)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, stem)
