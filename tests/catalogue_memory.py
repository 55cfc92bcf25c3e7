"""Fault catalogue rows: memory (gathered into tests/catalogue_cases.py's CASES; setups live here)."""

from __future__ import annotations

from catalogue_case import Case

CASES: list[Case] = []
