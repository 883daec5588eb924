"""Which two tasks ask the same items in two formats (multiple choice and generation).

Recognised by name (`FORMAT_PAIRS`): `X` with `X_generative` (lm-eval's `mmlu_*` and
`mmlu_*_generative`), `X_mc` with `X_gen`, and `X_mc` with `X_generative`. Any other pair is
given explicitly (`--pair MC_TASK=GEN_TASK`); a new naming convention is a new entry here.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Mapping, Sequence

from engine.errors import UserError
from engine.safe_text import inert

FORMAT_PAIRS = (("{}", "{}_generative"), ("{}_mc", "{}_gen"), ("{}_mc", "{}_generative"))
HINT = "recognised pairs are X/X_generative, X_mc/X_gen and X_mc/X_generative, or give --pair MC_TASK=GEN_TASK"
MC, GEN = "multiple_choice", "generate_until"  # the two kinds of task (lm-eval's output types)


def check_explicit(explicit: Sequence[tuple[str, str]], tasks: Collection[str]) -> None:
    """Every task a `--pair` names is among the logs' tasks (of some model): a typo is an error, not a pair
    silently left out."""
    for a, b in explicit:
        missing = [n for n in (a, b) if n not in tasks]
        if missing:
            raise UserError(
                f"--pair {a}={b}: no task named {', '.join(missing)} in the logs (tasks: {', '.join(sorted(tasks))})"
            )


def pair_names(
    mc: Collection[str], gen: Collection[str], explicit: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """(MC task, generation task) pairs among the names: the explicit ones first, then by `FORMAT_PAIRS`."""
    pairs: list[tuple[str, str]] = []
    used: set[str] = set()
    for a, b in explicit:
        if (a in mc or a in gen) and (b in mc or b in gen):
            if a not in mc or b not in gen:
                raise UserError(f"--pair {a}={b}: {a} must be a multiple-choice task and {b} a generation task")
            pairs.append((a, b))
            used |= {a, b}
    for name in sorted(mc):
        if name in used:
            continue
        for mc_pat, gen_pat in FORMAT_PAIRS:
            m = re.fullmatch(re.escape(mc_pat).replace(r"\{\}", "(.+)"), name)
            twin = gen_pat.format(m.group(1)) if m else ""
            if twin in gen and twin not in used:
                pairs.append((name, twin))
                used |= {name, twin}
                break
    return pairs


def model_pairs(
    model: str, kinds: Mapping[str, str], explicit: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """The pairs among one model's tasks (`kinds`: task name -> MC, GEN or another kind), in name order. Tasks
    left without a twin are named on stderr and skipped; no pair at all is an error."""
    pairs = pair_names([n for n, k in kinds.items() if k == MC], [n for n, k in kinds.items() if k == GEN], explicit)
    used = {n for pair in pairs for n in pair}
    for name in sorted(set(kinds) - used):
        print(
            inert(
                f"prunescope import: skipped task {name} ({kinds[name] or 'no output_type'}): no twin in the "
                f"other format (model {model})"
            ),
            file=sys.stderr,
        )
    if not pairs:
        raise UserError(
            f"model {model!r}: no pair of tasks asking the same items as multiple choice and as generation "
            f"among {', '.join(sorted(kinds))}; {HINT}"
        )
    return sorted(pairs)
