"""Strength of evidence of a comparison: the learned score and the calibrated LR.

:func:`attach_evidence` runs after the Congruent Matching Cells search.  It keeps the
CMC count and its score (``Comparison.cmc_score``), adds the learned score
(:mod:`._learned`, logistic regression on features of the comparison, trained with whole
firearms left out) with each feature's contribution, and converts the score into a
bounded log10 likelihood ratio with an :class:`~ballistics.calibration.LRSystem`
(the shipped system of the scans' instrument family, applied only inside its
domain, or a lab's own).

The learned score was trained on the native pipeline's comparisons; comparisons made
with ``pipeline="cmcr"`` (preset ``"cmcr"``) keep the CMC score, and an LR system fitted
on another kind of score gives no LR for them (``Comparison.lr`` says why).

References
----------
Zemmels, J., Hofmann, H., VanderPlas, S. (2023). Automatic cartridge case comparison
(ACES): combining comparison features in a statistical model.
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of likelihood
ratio methods used for forensic evidence evaluation. FSI 276, 142-153.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

from ..errors import BallisticsError
from ._learned import contributions, learned_score
from ._result import Comparison

log = logging.getLogger(__name__)

#: What ``lr_system`` may be: a shipped system's name, a file path, an LRSystem, or None.
LRSystemLike = Any


@functools.lru_cache(maxsize=8)
def _load(name_or_path: str, stamp: tuple[int, int] | None) -> Any:
    """A lab's system file loaded (and checksum-verified) once per file version."""
    from ..calibration import get_system
    return get_system(name_or_path)


def _system(lr_system: LRSystemLike) -> Any:
    from ..calibration import LRSystem
    if isinstance(lr_system, LRSystem) or lr_system == "default":
        return lr_system
    if isinstance(lr_system, (str, os.PathLike)):
        key = os.fspath(lr_system)
        try:   # a lab's own file: reloaded when it changes; a shipped name: loaded once
            st = os.stat(key)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        return _load(key, stamp)
    from ..errors import ParameterError
    raise ParameterError(f"lr_system must be a system name, a file path, an LRSystem or None, got {lr_system!r}")


def attach_evidence(result: Comparison, lr_system: LRSystemLike = "default", scans: Sequence[Any] | None = None,
                    lr_outside_domain: bool | None = None) -> Comparison:
    """Fill the learned score and the likelihood ratio of a comparison (in place).

    Parameters
    ----------
    result : Comparison
        Output of the CMC search; ``result.score`` holds the CMC score on entry.
    lr_system : str, path-like, LRSystem or None
        ``"default"``: the shipped system of the scans' instrument family, applied only
        inside its domain; the name of a shipped system, the path of a lab's own system
        file or an LRSystem: that system, even outside its domain (marked so); None: no LR.
    scans : (Scan, Scan), optional
        The two compared scans, whose metadata give the instrument family.
    lr_outside_domain : bool, optional
        Give an LR outside the system's domain (default: only for an explicit system).

    Returns
    -------
    Comparison
        The same object: ``cmc_score``, ``score`` (learned where it applies),
        ``score_kind``, ``learned_score``, ``score_contributions``, ``llr`` (bounded
        log10 LR, or None with the reason in ``lr["warnings"]`` and ``warnings``),
        ``llr_interval`` and ``lr`` (the system's account, its domain, the interval's
        bound flag).
    """
    from ..calibration import evaluate_comparison, scan_domain

    result.cmc_score = float(result.score)
    if result.params.get("pipeline", "native") == "native":
        result.learned_score = float(learned_score(result))
        result.score_contributions = {k: float(v) for k, v in contributions(result).items()}
        result.score = result.learned_score
        result.score_kind = "learned"
    else:
        result.score_kind = "cmc"
    if lr_system is None:
        return result
    doms = [scan_domain(s) for s in scans] if scans else None
    try:
        ev = evaluate_comparison(result, _system(lr_system), scans=doms, outside_domain=lr_outside_domain)
    except BallisticsError as exc:   # e.g. a score the system does not take
        log.warning("LR of %s vs %s not computed: %s", result.a_name, result.b_name, exc)
        ev = {"llr": None, "warnings": [f"no LR: {exc}"]}
    result.lr = ev
    result.llr = None if ev.get("llr") is None else float(ev["llr"])
    result.llr_interval = tuple(ev["interval"]) if ev.get("interval") and result.llr is not None else None
    notes = [w for w in ev.get("warnings") or []
             if w.startswith(("no LR", "LR given outside")) or "did not meet the bar" in w]
    if ev.get("interval_at_bound") and result.llr is not None:
        notes.append(f"the LR interval is {ev.get('interval_note')}")
    result.warnings = list(result.warnings) + [w for w in notes if w not in result.warnings]
    for w in ev.get("warnings") or []:
        log.info("%s vs %s: %s", result.a_name, result.b_name, w)
    return result
