"""The study spec (study.toml): parsing, validation and the expansion of its grid into runs.

A study is items × models × conditions. Conditions come from the `[pruning]` grid (every method ×
every unstructured sparsity, plus every method × every N:M pattern), the dense baseline, and any
explicit `[[conditions]]`. Each (model, condition) pair is one run folder named `<model>__<condition>`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from engine.config import CalibrationSpec, Condition, ItemsSpec, Method, ModelSpec, ProtocolConfig, Study
from engine.errors import UserError

METHODS = ("wanda", "sparsegpt", "magnitude")
_TOP_KEYS = {"name", "items", "models", "pruning", "calibration", "protocol", "conditions", "launcher"}


@dataclass(frozen=True)
class RunPlan:
    """One run of a study: a model under one condition, written to `<study>/<run_id>/`."""

    run_id: str
    model: ModelSpec
    condition: Condition


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(
            f"{path}: unknown key(s) {', '.join(unknown)} in {where} (allowed: {', '.join(sorted(allowed))})"
        )


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _build(cls: type, table: Mapping[str, Any], where: str, path: Path, **fixed: Any) -> Any:
    _check_keys(table, _fields(cls) - set(fixed), where, path)
    kwargs = dict(table)
    kwargs.update(fixed)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise UserError(f"{path}: {where}: {exc}") from None
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None and value is not None and type(default) in (int, float, bool, str):
            ok = isinstance(value, type(default)) or (
                type(default) is float and isinstance(value, int) and not isinstance(value, bool)
            )
            if not ok or (type(default) is int and isinstance(value, bool)):
                raise UserError(f"{path}: {where}.{f.name} must be {type(default).__name__}, got {value!r}")
    return obj


def _pattern(value: Any, where: str, path: Path) -> str:
    if value == "unstructured":
        return value
    parts = str(value).split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UserError(f"{path}: {where}: pattern must be 'unstructured' or 'N:M' like '2:4', got {value!r}")
    n, m = int(parts[0]), int(parts[1])
    if not 0 < n <= m:
        raise UserError(f"{path}: {where}: pattern {value!r} needs 0 < N <= M")
    return f"{n}:{m}"


def _condition(
    method: str,
    sparsity: float,
    pattern: str,
    calib: CalibrationSpec,
    reference_compatible: bool,
    where: str,
    path: Path,
) -> Condition:
    if method not in METHODS:
        raise UserError(
            f"{path}: {where}: unknown method {method!r} (choose from {', '.join(METHODS)}; 'dense' is added by include_dense)"
        )
    if pattern != "unstructured":
        n, m = (int(x) for x in pattern.split(":"))
        sparsity = 1 - n / m
    elif not 0.0 < float(sparsity) < 1.0:
        raise UserError(f"{path}: {where}: sparsity must be in (0, 1), got {sparsity!r}")
    return Condition(
        method=cast(Method, method),  # one of METHODS, checked above
        sparsity=float(sparsity),
        pattern=pattern,
        calibration=calib,
        reference_compatible=reference_compatible,
    )


def parse_study(path: Path, overrides: Mapping[str, Any] | None = None) -> Study:
    """Read and validate a study spec; every error names the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: study spec not found") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    return study_from_dict(raw, path, overrides)


def study_from_dict(raw: Mapping[str, Any], path: Path, overrides: Mapping[str, Any] | None = None) -> Study:
    """Build a `Study` from the spec's table; `overrides` replace `[section] key`s, e.g. {'items.n_per_language': 5}."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    _check_keys(raw, _TOP_KEYS, "the top level", path)
    name = raw.get("name") or path.stem
    items_tab = dict(raw.get("items", {}))
    if "languages" in items_tab:
        items_tab["languages"] = tuple(items_tab["languages"])
    items = _build(ItemsSpec, items_tab, "[items]", path)
    if items.n_per_language < 1:
        raise UserError(f"{path}: [items].n_per_language must be >= 1")
    models_raw = raw.get("models")
    if not models_raw or not isinstance(models_raw, list):
        raise UserError(f'{path}: needs at least one [[models]] table with an id (e.g. id = "demo")')
    models = []
    for i, m in enumerate(models_raw):
        if "id" not in m:
            raise UserError(f"{path}: [[models]] #{i + 1} has no id")
        models.append(_build(ModelSpec, m, f"[[models]] #{i + 1}", path))
    protocol = _build(ProtocolConfig, raw.get("protocol", {}), "[protocol]", path)
    if protocol.probes not in ("failed", "all", "none"):
        raise UserError(f"{path}: [protocol].probes must be 'failed', 'all' or 'none', got {protocol.probes!r}")
    calib = _build(CalibrationSpec, raw.get("calibration", {}), "[calibration]", path)
    pruning = dict(raw.get("pruning", {}))
    _check_keys(
        pruning, {"methods", "sparsities", "patterns", "include_dense", "reference_compatible"}, "[pruning]", path
    )
    ref = bool(pruning.get("reference_compatible", False))
    conditions: list[Condition] = []
    if pruning.get("include_dense", True):
        conditions.append(Condition())
    for method in pruning.get("methods", []):
        for s in pruning.get("sparsities", []):
            conditions.append(_condition(method, s, "unstructured", calib, ref, "[pruning]", path))
        for p in pruning.get("patterns", []):
            conditions.append(
                _condition(method, 0.0, _pattern(p, "[pruning].patterns", path), calib, ref, "[pruning]", path)
            )
    for i, c in enumerate(raw.get("conditions", [])):
        where = f"[[conditions]] #{i + 1}"
        _check_keys(c, {"method", "sparsity", "pattern", "reference_compatible"}, where, path)
        method = c.get("method", "dense")
        if method == "dense":
            conditions.append(Condition())
            continue
        conditions.append(
            _condition(
                method,
                c.get("sparsity", 0.0),
                _pattern(c.get("pattern", "unstructured"), where, path),
                calib,
                bool(c.get("reference_compatible", ref)),
                where,
                path,
            )
        )
    if not conditions:
        raise UserError(f"{path}: the study has no conditions (set [pruning] or include_dense = true)")
    unique = list(dict.fromkeys(conditions))
    return Study(name=name, items=items, models=tuple(models), conditions=tuple(unique), protocol=protocol)


def plan_runs(study: Study) -> list[RunPlan]:
    """Every (model, condition) run of the study, dense first, in spec order."""
    plans = []
    seen: set[str] = set()
    for model in study.models:
        for cond in study.conditions:
            run_id = f"{model.slug}__{cond.slug}"
            if cond.reference_compatible:
                run_id += "-ref"
            if run_id in seen:
                raise UserError(
                    f"two runs of the study would share the folder {run_id!r}; give the models distinct ids"
                )
            seen.add(run_id)
            plans.append(RunPlan(run_id=run_id, model=model, condition=cond))
    return plans
