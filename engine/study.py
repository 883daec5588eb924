"""The study spec (study.toml): parsing, validation and the expansion of its grid into runs.

A study is items × models × conditions. Conditions come from the `[pruning]` grid (every method ×
every unstructured sparsity, plus every method × every N:M pattern), the dense baseline, and any
explicit `[[conditions]]`. Each (model, condition) pair is one run folder named `<model>__<condition>`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from engine.config import (
    DTYPES,
    LENSES,
    MC_RULES,
    CalibrationSpec,
    Condition,
    ItemsSpec,
    Method,
    ModelSpec,
    ProtocolConfig,
    Study,
)
from engine.contract.labels import UNSTRUCTURED, parse_pattern, pattern_sparsity
from engine.errors import UserError
from engine.matching import parse_guards
from engine.preflight import DEVICE_RE, DEVICES, check_calibration_source

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


def _type_ok(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if origin is typing.Literal:
        return isinstance(value, str) and value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value)
    if origin in (dict, Mapping, collections.abc.Mapping):
        return isinstance(value, dict)
    raise TypeError(f"no spec type check for {hint!r}")


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {_type_name(args[0])}s"
    if origin in (dict, Mapping, collections.abc.Mapping):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f">= {low}"


def _one_of(values: Sequence[str]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in values), "one of " + ", ".join(repr(v) for v in values)


MAX_NEW_TOKENS = 32768  # a decoding cache is preallocated for every row: 10**12 tokens fail at allocation

# Ranges and choices of keys whose type alone does not say what is allowed (None always passes).
_RULES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "ProtocolConfig": {
        "max_new_tokens": ((lambda v: 1 <= v <= MAX_NEW_TOKENS), f"between 1 and {MAX_NEW_TOKENS}"),
        "batch_size": _at_least(1),
        "mc_rule": _one_of(MC_RULES),
        "lens": _one_of(LENSES),
        "beam_width": _at_least(1),
        "n_samples": _at_least(1),
        "temperature": ((lambda v: 0 < v < math.inf), "> 0 and finite (sampling at temperature <= 0 is not defined)"),
        "top_p": ((lambda v: 0 < v <= 1), "in (0, 1]"),
        "demotion_max_rank": _at_least(1),
        "seed": _at_least(0),
    },
    "CalibrationSpec": {
        "source": ((lambda v: bool(v.strip())), "a non-empty string"),
        "nsamples": _at_least(1),
        "seqlen": _at_least(2),
        "seed": _at_least(0),
    },
    "ItemsSpec": {
        "source": ((lambda v: bool(v.strip())), "a non-empty string"),
        "n_per_language": _at_least(1),
        "seed": _at_least(0),
    },
    "ModelSpec": {
        "id": ((lambda v: bool(v.strip())), "a non-empty string"),
        "dtype": _one_of(DTYPES),
        "device": ((lambda v: bool(DEVICE_RE.fullmatch(v))), DEVICES),
    },
    "LaunchOptions": {
        "num_workers": _at_least(1),
        "max_retries": _at_least(0),
        "time_min": _at_least(1),
        "gpus_per_task": _at_least(0),
        "cpus_per_task": _at_least(1),
        "mem_gb": _at_least(1),
        "array_parallelism": _at_least(1),
    },
}


def build_table(cls: type, table: Any, where: str, path: Path, flags: Mapping[str, str] | None = None) -> Any:
    """`cls(**table)` after checking keys, types and ranges; every error names `path` and the key, or the
    command-line flag that gave the key's value (`flags`: key -> flag)."""
    if not isinstance(table, dict):
        raise UserError(f"{path}: {where} must be a table, got {table!r}")
    _check_keys(table, _fields(cls), where, path)
    hints = typing.get_type_hints(cls)
    rules = _RULES.get(cls.__name__, {})
    for key, value in table.items():
        name = (flags or {}).get(key) or f"{path}: {where}.{key}"
        if not _type_ok(value, hints[key]):
            raise UserError(f"{name} must be {_type_name(hints[key])}, got {value!r}")
        if key in rules and value is not None and not rules[key][0](value):
            raise UserError(f"{name} must be {rules[key][1]}, got {value!r}")
    kwargs = dict(table)
    for key, value in kwargs.items():
        if typing.get_origin(hints[key]) is tuple:
            kwargs[key] = tuple(value)
        elif hints[key] is float:
            kwargs[key] = float(value)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UserError(f"{path}: {where}: {exc}") from None


def _list(table: Mapping[str, Any], key: str, where: str, path: Path, example: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise UserError(f"{path}: {where}.{key} must be a list, e.g. {key} = {example}; got {value!r}")
    return value


def _once(values: list[Any], key: str, path: Path) -> None:
    """Refuse a `[pruning]` list that names one value twice (0.5 and 0.50 are one sparsity)."""
    for i, v in enumerate(values):
        if v in values[:i]:
            raise UserError(f"{path}: [pruning].{key} lists {v!r} twice; list each once")


def _pattern(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str):
        raise UserError(f"{path}: {where}: pattern must be 'unstructured' or 'N:M' like '2:4', got {value!r}")
    try:
        nm = parse_pattern(value, prunes=True)
    except ValueError as exc:
        raise UserError(f"{path}: {where}: {exc}") from None
    return UNSTRUCTURED if nm is None else f"{nm[0]}:{nm[1]}"


def _condition(
    method: Any,
    sparsity: Any,
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
    nm_sparsity = pattern_sparsity(pattern)
    if nm_sparsity is not None:
        if sparsity is not None and not (
            isinstance(sparsity, (int, float)) and math.isclose(sparsity, nm_sparsity, abs_tol=1e-12)
        ):
            raise UserError(
                f"{path}: {where}: sparsity {sparsity!r} contradicts pattern {pattern!r} (which prunes {nm_sparsity:g}); "
                "leave sparsity out for N:M"
            )
        sparsity = nm_sparsity
    elif sparsity is None:
        raise UserError(f"{path}: {where}: unstructured pruning needs a sparsity in (0, 1), e.g. sparsity = 0.5")
    elif isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 < float(sparsity) < 1.0:
        raise UserError(f"{path}: {where}: sparsity must be a number in (0, 1), got {sparsity!r}")
    return Condition(
        method=cast(Method, method),  # one of METHODS, checked above
        sparsity=float(sparsity),
        pattern=pattern,
        calibration=calib,
        reference_compatible=reference_compatible,
    )


def _bool(table: Mapping[str, Any], key: str, default: bool, where: str, path: Path) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise UserError(f"{path}: {where}.{key} must be true or false, got {value!r}")
    return value


def read_spec(path: Path) -> tuple[str, dict[str, Any]]:
    """The spec's text and its TOML table; every read or syntax error names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except FileNotFoundError:
        raise UserError(f"{path}: study spec not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give the study spec file (study.toml)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the study spec ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None


OVERRIDE_FLAGS = {"items.n_per_language": "--n-per-language", "items.languages": "--languages"}
"""The spec keys `prunescope run` flags override, with the flag that does."""


def parse_study(path: Path, overrides: Mapping[str, Any] | None = None) -> Study:
    """Read and validate a study spec; every error names the file and the key."""
    return study_from_dict(read_spec(path)[1], Path(path), overrides)


def study_from_dict(raw: Mapping[str, Any], path: Path, overrides: Mapping[str, Any] | None = None) -> Study:
    """Build a `Study` from the spec's table, checking every table (types, ranges, cross-key rules) so that
    nothing heavy starts on a bad spec; `overrides` replace `[section] key`s, e.g. {'items.n_per_language': 5}."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        table = raw.setdefault(section, {})
        if isinstance(table, dict):  # otherwise the section is refused below, naming what it is
            table[key] = value
    _check_keys(raw, _TOP_KEYS, "the top level", path)
    name = raw.get("name") or path.stem
    if not isinstance(name, str):
        raise UserError(f"{path}: name must be a string, got {name!r}")
    if isinstance(raw.get("items"), list):
        raise UserError(
            f"{path}: [[items]]: a study has one item source ([items]); to analyse several datasets together, "
            "run one study per dataset with the same [[models]] and [pruning] and pool them with "
            "`prunescope stats STUDY_A STUDY_B` (the dataset becomes a factor)"
        )
    given = {
        dotted.split(".", 1)[1]: OVERRIDE_FLAGS[dotted] for dotted in overrides or {} if dotted.startswith("items.")
    }
    items = build_table(ItemsSpec, raw.get("items", {}), "[items]", path, given)
    models_raw = raw.get("models")
    if not models_raw or not isinstance(models_raw, list):
        raise UserError(f'{path}: needs at least one [[models]] table with an id (e.g. id = "demo")')
    models = []
    for i, m in enumerate(models_raw):
        if not isinstance(m, dict) or "id" not in m:
            raise UserError(f"{path}: [[models]] #{i + 1} has no id")
        models.append(build_table(ModelSpec, m, f"[[models]] #{i + 1}", path))
    marked = [m.id for m in models if m.baseline]
    if len(marked) > 1:
        raise UserError(f"{path}: [[models]] {', '.join(map(repr, marked))} all say baseline = true; mark one")
    protocol_tab = raw.get("protocol", {})
    if isinstance(protocol_tab, dict) and "guards" in protocol_tab:
        try:
            protocol_tab = {**protocol_tab, "guards": parse_guards(protocol_tab["guards"])}
        except UserError as exc:
            raise UserError(f"{path}: [protocol].{exc}") from None
    protocol = build_table(ProtocolConfig, protocol_tab, "[protocol]", path)
    if protocol.mc_rule == "letter" and not protocol.letter:
        raise UserError(f"{path}: [protocol].mc_rule = 'letter' needs [protocol].letter = true")
    calib = build_table(CalibrationSpec, raw.get("calibration", {}), "[calibration]", path)
    if "launcher" in raw:
        from engine.launch import LaunchOptions

        build_table(LaunchOptions, raw["launcher"], "[launcher]", path)
    pruning = raw.get("pruning", {})
    if not isinstance(pruning, dict):
        raise UserError(f"{path}: [pruning] must be a table, got {pruning!r}")
    _check_keys(
        pruning, {"methods", "sparsities", "patterns", "include_dense", "reference_compatible"}, "[pruning]", path
    )
    ref = _bool(pruning, "reference_compatible", False, "[pruning]", path)
    methods = _list(pruning, "methods", "[pruning]", path, '["wanda", "sparsegpt"]')
    sparsities = _list(pruning, "sparsities", "[pruning]", path, "[0.5, 0.7]")
    patterns = _list(pruning, "patterns", "[pruning]", path, '["2:4"]')
    if methods and not (sparsities or patterns):
        raise UserError(f"{path}: [pruning].methods is set but neither sparsities nor patterns: no run would prune")
    if (sparsities or patterns) and not methods:
        raise UserError(f'{path}: [pruning] has sparsities or patterns but no methods (e.g. methods = ["wanda"])')
    for method in methods:
        if method not in METHODS:
            raise UserError(
                f"{path}: [pruning].methods: unknown method {method!r} (choose from {', '.join(METHODS)}; 'dense' is "
                "added by include_dense)"
            )
    patterns = [_pattern(p, "[pruning].patterns", path) for p in patterns]
    _once(methods, "methods", path)
    _once(sparsities, "sparsities", path)
    _once(patterns, "patterns", path)
    origin: dict[Condition, str] = {}  # each condition → the spec entry that added it

    def add(condition: Condition, where: str) -> None:
        if condition in origin:
            raise UserError(
                f"{path}: {where}: condition {condition.slug!r} is already in the study (from {origin[condition]}); "
                "list each condition once"
            )
        origin[condition] = where

    if _bool(pruning, "include_dense", True, "[pruning]", path):
        add(Condition(), "[pruning].include_dense, true by default")
    for method in methods:
        for s in sparsities:
            add(_condition(method, s, "unstructured", calib, ref, "[pruning].sparsities", path), "[pruning]")
        for p in patterns:
            add(_condition(method, None, p, calib, ref, "[pruning]", path), "[pruning]")
    explicit = raw.get("conditions", [])
    if not isinstance(explicit, list):
        raise UserError(f"{path}: conditions must be [[conditions]] tables, got {explicit!r}")
    for i, c in enumerate(explicit):
        where = f"[[conditions]] #{i + 1}"
        if not isinstance(c, dict):
            raise UserError(f"{path}: {where} must be a table, got {c!r}")
        _check_keys(c, {"method", "sparsity", "pattern", "reference_compatible"}, where, path)
        if "method" not in c:
            raise UserError(f"{path}: {where} has no method (one of dense, {', '.join(METHODS)})")
        if c["method"] == "dense":
            extra = sorted(set(c) - {"method"})
            if extra:
                raise UserError(f"{path}: {where}: method 'dense' takes no {', '.join(extra)}")
            add(Condition(), where)
            continue
        add(
            _condition(
                c["method"],
                c.get("sparsity"),
                _pattern(c.get("pattern", "unstructured"), where, path),
                calib,
                _bool(c, "reference_compatible", ref, where, path),
                where,
                path,
            ),
            where,
        )
    conditions = list(origin)
    if not conditions:
        raise UserError(f"{path}: the study has no conditions (set [pruning] or include_dense = true)")
    if any(c.uses_calibration for c in conditions):
        check_calibration_source(calib.source, f"{path}: [calibration].source")
        if calib.source == "bundled" and "seqlen" not in raw.get("calibration", {}):
            raise UserError(
                f"{path}: [calibration].seqlen: the bundled calibration text is short (its longest document is "
                f"about 1,100 tokens), so the default seqlen of {calib.seqlen} cannot be sampled from it; set "
                "seqlen (the demo study uses 128) or give a calibration source of your own"
            )
    return Study(name=name, items=items, models=tuple(models), conditions=tuple(conditions), protocol=protocol)


def plan_runs(study: Study) -> list[RunPlan]:
    """Every (model, condition) run of the study, dense first, in spec order."""
    plans = []
    seen: dict[str, int] = {}  # run folder → the [[models]] table it came from (1-based)
    for m, model in enumerate(study.models, 1):
        for cond in study.conditions:
            run_id = f"{model.slug}__{cond.slug}"
            if cond.reference_compatible:
                run_id += "-ref"
            if run_id in seen:
                first = study.models[seen[run_id] - 1]
                raise UserError(
                    f"[[models]] #{seen[run_id]} (id {first.id!r}) and #{m} (id {model.id!r}) would both write the "
                    f"run folder {run_id!r}; give the models distinct ids"
                )
            seen[run_id] = m
            plans.append(RunPlan(run_id=run_id, model=model, condition=cond))
    return plans
