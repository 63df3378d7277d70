"""Figures of likelihood-ratio systems: Tippett, ECE, PAV, score densities (issue 12)."""

from __future__ import annotations

__all__: list[str] = []
