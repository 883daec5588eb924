"""lme4-style formulas for binary mixed models: parsing and R-compatible design matrices.

Supported: a 0/1 response column or `cbind(successes, trials - successes)` /
`cbind(successes, failures)`; fixed terms joined by `+` with `*` (main effects and all
interactions) and `:` (interaction only); `0`/`-1` to drop the intercept; `C(x)` or `factor(x)`
to treat a numeric column as a factor; random terms `(1|g)`, `(1|g1:g2)`, `(1|a/b)` (nested:
`(1|a) + (1|a:b)`), `(x|g)` and `(1 + x|g)` (correlated slope), `(0 + x|g)`.

Design matrices follow R's `model.matrix` with treatment contrasts: factor levels are the
categories of a pandas Categorical, otherwise the sorted distinct values; the first level is the
reference; a factor inside a term is coded by contrasts when the term without it is in the model,
else by indicators (R's rule), so column names match lme4's (`period2`, `conditionb:languagefr`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.errors import UserError

_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"
_FACTOR_WRAP = re.compile(rf"^(?:C|factor)\(\s*({_NAME})\s*\)$")
_CBIND = re.compile(rf"^cbind\(\s*({_NAME})\s*,\s*(?:({_NAME})\s*-\s*({_NAME})|({_NAME}))\s*\)$")


@dataclass(frozen=True)
class RandomTerm:
    """One `(slopes | group)` bar: `intercept` plus numeric slope columns, varying over `group`."""

    intercept: bool
    slopes: tuple[str, ...]
    group: tuple[str, ...]  # ('item',) or ('item', 'language') for item:language

    @property
    def group_label(self) -> str:
        return ":".join(self.group)

    @property
    def coef_names(self) -> list[str]:
        return (["(Intercept)"] if self.intercept else []) + list(self.slopes)

    def __str__(self) -> str:
        lhs = " + ".join((["1"] if self.intercept else ["0"]) + list(self.slopes))
        return f"({lhs} | {self.group_label})"


@dataclass(frozen=True)
class ParsedFormula:
    """The parts of a formula; `fixed_terms` are tuples of variable names in R's term order."""

    text: str
    response: str  # 0/1 column, or the successes column of cbind()
    trials: str | None  # cbind(k, n - k): n
    failures: str | None  # cbind(k, f): f
    intercept: bool
    fixed_terms: tuple[tuple[str, ...], ...]
    forced_factors: frozenset[str]
    random: tuple[RandomTerm, ...]

    @property
    def variables(self) -> list[str]:
        """Every data column the formula names, in first-mention order."""
        names = [self.response] + [n for n in (self.trials, self.failures) if n]
        for term in self.fixed_terms:
            names += list(term)
        for r in self.random:
            names += list(r.slopes) + list(r.group)
        return list(dict.fromkeys(names))


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise UserError(f"formula: unbalanced ')' in {text!r}")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise UserError(f"formula: unbalanced '(' in {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _var(token: str, forced: set[str], where: str) -> str:
    token = token.strip()
    m = _FACTOR_WRAP.match(token)
    if m:
        forced.add(m.group(1))
        return m.group(1)
    if not re.fullmatch(_NAME, token):
        raise UserError(f"formula: cannot read {token!r} in {where!r} (expected a column name, C(col) or factor(col))")
    return token


def _parse_random(inner: str, text: str) -> list[RandomTerm]:
    if "||" in inner:
        raise UserError(f"formula: uncorrelated random effects '||' are not supported in {text!r}; write separate bars")
    lhs, sep, rhs = inner.partition("|")
    if not sep:
        raise UserError(f"formula: random term ({inner}) has no '|'")
    intercept, slopes = True, []
    for tok in _split_top(lhs.replace("-", "+-"), "+"):
        if tok in ("1", ""):
            continue
        if tok in ("0", "-1"):
            intercept = False
            continue
        slopes.append(_var(tok, set(), f"({inner})"))
    if not intercept and not slopes:
        raise UserError(f"formula: random term ({inner}) has neither intercept nor slope")
    groups = [g.strip() for g in rhs.split("/")]
    terms: list[RandomTerm] = []
    prefix: list[str] = []
    for g in groups:
        parts = tuple(_var(p, set(), f"({inner})") for p in g.split(":"))
        prefix = prefix + list(parts)
        terms.append(RandomTerm(intercept, tuple(slopes), tuple(prefix)))
    return terms


def _expand_product(chunk: str, forced: set[str], text: str) -> list[tuple[str, ...]]:
    """`a*b:c` → [(a,), (b, c), (a, b, c)]; each factor of `*` may be a `:` interaction."""
    factors = []
    for part in _split_top(chunk, "*"):
        factors.append(tuple(dict.fromkeys(_var(v, forced, text) for v in _split_top(part, ":"))))
    out = []
    for k in range(1, len(factors) + 1):
        for combo in itertools.combinations(factors, k):
            out.append(tuple(dict.fromkeys(v for f in combo for v in f)))
    return out


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4-style binary-response formula (see module docstring); UserError on bad syntax."""
    if text.count("~") != 1:
        raise UserError(f"formula must have exactly one '~': {text!r}")
    lhs, rhs = (s.strip() for s in text.split("~"))
    trials = failures = None
    m = _CBIND.match(lhs.replace(" ", ""))
    if m:
        response = m.group(1)
        if m.group(2):
            if m.group(3) != response:
                raise UserError(f"formula: cbind(k, n - k) must subtract the successes column: {lhs!r}")
            trials = m.group(2)
        else:
            failures = m.group(4)
    elif re.fullmatch(_NAME, lhs):
        response = lhs
    else:
        raise UserError(f"formula: response must be a 0/1 column or cbind(successes, trials - successes), got {lhs!r}")
    forced: set[str] = set()
    intercept = True
    random: list[RandomTerm] = []
    fixed: list[tuple[str, ...]] = []
    for chunk in _split_top(rhs.replace("-", "+-"), "+"):
        if chunk == "":
            continue
        if chunk in ("0", "-1"):
            intercept = False
        elif chunk == "1":
            intercept = True
        elif chunk.startswith("(") and chunk.endswith(")") and "|" in chunk:
            random += _parse_random(chunk[1:-1], text)
        elif chunk.startswith("-"):
            raise UserError(f"formula: removing terms ({chunk!r}) is not supported except '-1'")
        else:
            fixed += _expand_product(chunk, forced, text)
    unique = list(dict.fromkeys(fixed))
    order = sorted(range(len(unique)), key=lambda i: (len(unique[i]), i))  # R: by degree, then as written
    return ParsedFormula(
        text=text,
        response=response,
        trials=trials,
        failures=failures,
        intercept=intercept,
        fixed_terms=tuple(unique[i] for i in order),
        forced_factors=frozenset(forced),
        random=tuple(random),
    )


@dataclass
class Design:
    """Numeric model frame shared by every backend."""

    formula: ParsedFormula
    y: np.ndarray  # successes (0/1 for Bernoulli rows)
    trials: np.ndarray  # 1 for Bernoulli rows
    X: np.ndarray
    fixed_names: list[str]
    groups: dict[str, np.ndarray]  # group label → integer codes per row
    group_levels: dict[str, int]
    slopes: dict[str, np.ndarray]  # numeric slope columns by name
    n_dropped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    @property
    def bernoulli(self) -> bool:
        return bool(np.all(self.trials == 1))

    def expanded_bernoulli(self) -> Design:
        """Binomial count rows expanded to one 0/1 row per trial (same fixed effects and θ)."""
        if self.bernoulli:
            return self
        reps = self.trials.astype(np.int64)
        ones = np.concatenate([np.r_[np.ones(int(k)), np.zeros(int(n - k))] for k, n in zip(self.y, reps)])

        def rep(a: np.ndarray) -> np.ndarray:
            return np.repeat(a, reps, axis=0)

        return Design(
            formula=self.formula,
            y=ones,
            trials=np.ones_like(ones),
            X=rep(self.X),
            fixed_names=self.fixed_names,
            groups={k: rep(v) for k, v in self.groups.items()},
            group_levels=self.group_levels,
            slopes={k: rep(v) for k, v in self.slopes.items()},
            n_dropped=self.n_dropped,
            notes=self.notes + ["binomial counts expanded to Bernoulli rows"],
        )


def _is_factor(series: pd.Series, forced: bool) -> bool:
    return forced or not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna().unique())
        return [c for c in series.cat.categories if c in present]
    return sorted(series.dropna().unique().tolist())


def _label(level: object) -> str:
    if isinstance(level, (bool, np.bool_)):
        return "TRUE" if level else "FALSE"
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def _check_columns(df: pd.DataFrame, formula: ParsedFormula) -> None:
    missing = [v for v in formula.variables if v not in df.columns]
    if missing:
        raise UserError(
            f"formula {formula.text!r} names column(s) not in the data: {', '.join(missing)}; "
            f"columns are: {', '.join(map(str, df.columns))}"
        )


def _response(df: pd.DataFrame, f: ParsedFormula) -> tuple[np.ndarray, np.ndarray]:
    def numeric(col: str) -> np.ndarray:
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            return s.to_numpy(dtype=float)
        if not pd.api.types.is_numeric_dtype(s):
            raise UserError(
                f"response column {col!r} must be numeric 0/1 (or counts in cbind); found {s.dtype} values such as {s.iloc[0]!r}"
            )
        return s.to_numpy(dtype=float)

    y = numeric(f.response)
    if f.trials is None and f.failures is None:
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"response column {f.response!r} must be 0/1; row {row} has {y[row]:g} "
                "(use cbind(successes, trials - successes) for counts)"
            )
        return y, np.ones_like(y)
    if f.trials is not None:
        n = numeric(f.trials)
    else:
        assert f.failures is not None  # a count response names trials or failures (checked above)
        n = y + numeric(f.failures)
    if np.any(y < 0) or np.any(y > n) or np.any(y != np.round(y)) or np.any(n != np.round(n)):
        row = int(np.flatnonzero((y < 0) | (y > n) | (y != np.round(y)) | (n != np.round(n)))[0])
        raise UserError(
            f"cbind response: row {row} has successes {y[row]:g} of trials {n[row]:g}; need integers 0 ≤ k ≤ n"
        )
    return y, n


def build_design(df: pd.DataFrame, formula: ParsedFormula | str) -> Design:
    """Model frame for `formula` on `df`: rows with a missing value in any used column are dropped."""
    f = parse_formula(formula) if isinstance(formula, str) else formula
    if not isinstance(df, pd.DataFrame):
        raise UserError(f"data must be a pandas DataFrame, got {type(df).__name__}")
    _check_columns(df, f)
    used = df[f.variables]
    keep = used.notna().all(axis=1).to_numpy()
    n_dropped = int((~keep).sum())
    data = df.loc[keep].reset_index(drop=True)
    if data.empty:
        raise UserError(f"no complete rows for formula {f.text!r} (all {len(df)} rows have a missing value)")
    y, trials = _response(data, f)

    fixed_vars = list(dict.fromkeys(v for t in f.fixed_terms for v in t))
    factor_levels: dict[str, list] = {}
    for v in fixed_vars:
        if _is_factor(data[v], v in f.forced_factors):
            lv = _levels(data[v])
            if len(lv) < 2:
                raise UserError(f"factor column {v!r} has a single level ({_label(lv[0])!r}); drop it from the formula")
            factor_levels[v] = lv

    present: set[frozenset[str]] = {frozenset(t) for t in f.fixed_terms}
    if f.intercept:
        present.add(frozenset())
    cols: list[np.ndarray] = []
    names: list[str] = []
    if f.intercept:
        cols.append(np.ones(len(data)))
        names.append("(Intercept)")
    for term in f.fixed_terms:
        blocks: list[list[tuple[str, np.ndarray]]] = []
        for v in term:
            if v in factor_levels:
                lv = factor_levels[v]
                # R's rule: contrasts when the term without this factor is in the model
                use = lv[1:] if frozenset(term) - {v} in present else lv
                vals = data[v].to_numpy()
                blocks.append([(f"{v}{_label(level)}", (vals == level).astype(float)) for level in use])
            else:
                blocks.append([(v, data[v].to_numpy(dtype=float))])
        # R varies the first factor fastest within an interaction's columns
        for combo in itertools.product(*reversed(blocks)):
            combo = combo[::-1]
            names.append(":".join(n for n, _ in combo))
            col = np.ones(len(data))
            for _, c in combo:
                col = col * c
            cols.append(col)
    X = np.column_stack(cols) if cols else np.empty((len(data), 0))
    if X.shape[1] and np.linalg.matrix_rank(X) < X.shape[1]:
        raise UserError(
            f"fixed-effects design of {f.text!r} is rank deficient ({np.linalg.matrix_rank(X)} of {X.shape[1]} "
            "columns independent): some terms are confounded or a factor combination is empty"
        )

    groups: dict[str, np.ndarray] = {}
    levels: dict[str, int] = {}
    slopes: dict[str, np.ndarray] = {}
    for r in f.random:
        key = data[list(r.group)].astype(str).agg(":".join, axis=1) if len(r.group) > 1 else data[r.group[0]]
        codes, uniques = pd.factorize(key, sort=True)
        if len(uniques) < 2:
            raise UserError(
                f"grouping factor {r.group_label!r} of {r} has {len(uniques)} level: a random effect needs 2 or more "
                "(lme4 refuses the same)"
            )
        groups[r.group_label] = codes.astype(np.int64)
        levels[r.group_label] = len(uniques)
        for s in r.slopes:
            if _is_factor(data[s], False):
                raise UserError(f"random slope {s!r} in {r} must be a numeric column (code a factor as 0/1 columns)")
            slopes[s] = data[s].to_numpy(dtype=float)
    if not 0 < float(y.sum()) < float(trials.sum()):
        raise UserError(
            f"the response of {f.text!r} is constant (every row {'0' if y.sum() == 0 else 'a success'}): there is "
            "nothing to model (lme4 refuses the same)"
        )
    notes = [f"dropped {n_dropped} row(s) with missing values in formula columns"] if n_dropped else []
    notes += _separated_levels(data, factor_levels, y, trials)
    return Design(f, y, trials, X, names, groups, levels, slopes, n_dropped, notes)


def _separated_levels(
    data: pd.DataFrame, factor_levels: dict[str, list], y: np.ndarray, trials: np.ndarray
) -> list[str]:
    """'separation: every response of language ar is 0' for each fixed-effect factor level whose
    responses are all 0 or all 1 (its log-odds, or the reference's, go to ±∞); at most 5 named."""
    found = []
    for v, lv in factor_levels.items():
        vals = data[v].to_numpy()
        for level in lv:
            rows = vals == level
            k, n = float(y[rows].sum()), float(trials[rows].sum())
            if k in (0.0, n):
                found.append(f"{v} {_label(level)} is {0 if k == 0 else 1}")
    if not found:
        return []
    more = f" (and {len(found) - 5} more levels)" if len(found) > 5 else ""
    return ["separation: every response of " + ", of ".join(found[:5]) + more]
