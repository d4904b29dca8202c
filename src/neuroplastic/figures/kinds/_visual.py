"""Helpers of the visual-RL study's tables (switch_table, reference_table): row selection and formatting."""

from __future__ import annotations

import math

import pandas as pd

from neuroplastic.figures.base import FigureSpec


def select(spec: FigureSpec, df: pd.DataFrame) -> pd.DataFrame:
    if spec.labels:
        df = df[df["label"].isin(spec.labels)]
    if spec.envs:
        df = df[df["env"].isin(spec.envs)]
    return df


def label_order(spec: FigureSpec, df: pd.DataFrame) -> list[str]:
    return list(spec.labels or pd.unique(df["label"]))


def numeric(data: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Figure data read back from CSV has empty strings for missing numbers (`read_data` keeps them)."""
    data = data.copy()
    for col in columns:
        if col in data:
            data[col] = pd.to_numeric(data[col], errors="coerce")
    return data


def fmt(x: float, nd: int = 0) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{nd}f}"


def mean_std(mean: float, std: float) -> str:
    return "–" if math.isnan(mean) else f"{mean:.0f} ± {std:.0f}"
