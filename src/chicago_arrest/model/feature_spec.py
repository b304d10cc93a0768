"""The feature catalogue: which columns exist, and which of them the encoder uses.

:data:`ALL_COLUMNS` is every column :class:`~chicago_arrest.model.features.RawFeatures` produces; a
:class:`FeatureSpec` picks some of them and groups them by how they are encoded (:data:`DEFAULT_FEATURES`
for the served model). Names only (no scikit-learn): the transformers are in
:mod:`chicago_arrest.model.features`, the encoding chain built from a spec in :mod:`chicago_arrest.model.encoding`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chicago_arrest.data.enrich import DISTANCE, HAS_COORDINATES

#: Interactions of two raw fields (``"THEFT|DEPARTMENT STORE"``): a shoplifter is caught far more often than a
#: thief on the street. Built from raw fields, target-encoded like the other high-cardinality columns.
INTERACTIONS = {
    "type_location": ("primary_type", "location_description"),
    "iucr_location": ("iucr", "location_description"),
    "hour_type": ("hour_of_day", "primary_type"),
}
#: Calendar features whose values a model trained on part of a year has never seen at serving time (a model
#: trained on January–June that split on month would extrapolate in July). Never used by :data:`DEFAULT_FEATURES`;
#: computed for models pickled before issue 11 and for ablations.
SEASONAL = ("month_sin", "month_cos", "season")


@dataclass(frozen=True)
class FeatureSpec:
    """Which :class:`RawFeatures` columns the encoder uses, and how.

    Attributes:
        skewed: Heavy-tailed numeric columns: IQR clipping, log1p, scaling.
        numeric: Numeric columns used as they are (then scaled).
        one_hot: Low-cardinality categoricals: one-hot.
        target: High-cardinality categoricals: cross-fitted (out-of-fold) target encoding.
        frequency: Categoricals also encoded by their share of the training rows.
    """

    skewed: tuple[str, ...]
    numeric: tuple[str, ...]
    one_hot: tuple[str, ...]
    target: tuple[str, ...]
    frequency: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns()) - set(ALL_COLUMNS))
        if unknown:
            raise ValueError(f"FeatureSpec: unknown feature(s) {unknown}; known: {list(ALL_COLUMNS)}")

    def columns(self) -> tuple[str, ...]:
        """Every input column used, once, in order."""
        return tuple(
            dict.fromkeys((*self.skewed, *self.numeric, *self.one_hot, *self.target, *self.frequency))
        )

    def without(self, *names: str) -> FeatureSpec:
        """The same spec without ``names`` (in every group)."""
        drop = set(names)
        return FeatureSpec(*(tuple(c for c in group if c not in drop) for group in self._groups()))

    def plus(self, group: str, *names: str) -> FeatureSpec:
        """The same spec with ``names`` added to ``group`` (``numeric``, ``one_hot``, ``target``, ...)."""
        groups = dict(
            zip(("skewed", "numeric", "one_hot", "target", "frequency"), self._groups(), strict=True)
        )
        groups[group] = (*groups[group], *(n for n in names if n not in groups[group]))
        return FeatureSpec(**groups)

    def _groups(self) -> tuple[tuple[str, ...], ...]:
        return (self.skewed, self.numeric, self.one_hot, self.target, self.frequency)


#: Every column :class:`RawFeatures` produces (a superset of what any encoder uses).
ALL_COLUMNS: tuple[str, ...] = (
    *(DISTANCE, HAS_COORDINATES, "hour_sin", "hour_cos", "dow_sin", "dow_cos", "month_sin", "month_cos"),
    *("is_weekend", "is_midnight", "is_first_of_month", "day_of_month"),
    *("primary_type", "fbi_code", "district", "domestic", "season", "part_of_day", "hour_of_day"),
    *("iucr", "description", "location_description", "beat", "ward", "community_area", *INTERACTIONS),
)
#: The features of the served model: no month-of-year or season (see :data:`SEASONAL`); every other calendar
#: feature (hour, day of week, weekend, midnight, first of the month) takes all its values within any month.
#: Chosen by the walk-forward ablation in docs/model.md.
DEFAULT_FEATURES = FeatureSpec(
    skewed=(DISTANCE,),
    numeric=(
        *(HAS_COORDINATES, "hour_sin", "hour_cos", "dow_sin", "dow_cos"),
        *("is_weekend", "is_midnight", "is_first_of_month"),
    ),
    one_hot=("primary_type", "fbi_code", "district", "domestic", "part_of_day"),
    target=(
        *("iucr", "description", "location_description", "beat", "ward", "community_area"),
        *("type_location", "iucr_location"),
    ),
    frequency=("iucr", "location_description", "beat"),
)
#: The features before issue 11 (month and season included): for ablations and the extrapolation test only.
LEGACY_FEATURES = DEFAULT_FEATURES.plus("numeric", "month_sin", "month_cos").plus("one_hot", "season")
MISSING = "__MISSING__"
