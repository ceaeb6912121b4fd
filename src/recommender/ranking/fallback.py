"""The catalogue the fallback policy serves from when no model is loaded.

Read once at start-up from ``nudges.csv`` or ``nudges.parquet`` (columns per data/README.md;
``text`` is not kept: it stays with the delivery layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from recommender.constants import CONTEXTS, CONTROL, GLOBAL_ORG
from recommender.effect_model import CatalogueEntry

REQUIRED_COLUMNS = ("nudge_id", "org_id", "nudge_type", "competency_id", "contexts")


class CatalogueError(ValueError):
    """A catalogue file that cannot be served from; the message names file, column and row."""


@dataclass(frozen=True)
class FallbackCatalogue:
    """Catalogue entries by owning org (``GLOBAL_ORG`` for the global ones)."""

    by_org: Mapping[str, tuple[CatalogueEntry, ...]]

    @property
    def nudge_types(self) -> tuple[str, ...]:
        """Every nudge type in the catalogue, sorted."""
        return tuple(sorted({e.nudge_type for es in self.by_org.values() for e in es}))

    def catalogue(self, org_id: str) -> tuple[CatalogueEntry, ...]:
        """Nudges available to ``org_id``: its own, then the global ones."""
        own = () if org_id == GLOBAL_ORG else self.by_org.get(org_id, ())
        return own + tuple(self.by_org.get(GLOBAL_ORG, ()))


def load_catalogue(path: Path) -> FallbackCatalogue:
    """Read and check a ``nudges`` table (CSV or Parquet) into a :class:`FallbackCatalogue`.

    Raises ``CatalogueError`` naming file, column, row (0-based data row) and rule.
    """
    import pandas as pd  # start-up only; the request path stays free of pandas

    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"{path}: catalogue file not found")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        raise CatalogueError(f"{path}: expected a .csv or .parquet file")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogueError(f"{path}: missing column(s) {', '.join(missing)}")
    by_org: dict[str, list[CatalogueEntry]] = {}
    seen: set[str] = set()
    for row_number, record in enumerate(frame[list(REQUIRED_COLUMNS)].itertuples(index=False)):
        nudge_id, org_id, nudge_type, competency_id, contexts = (
            "" if pd.isna(v) else str(v) for v in record
        )

        def fail(column: str, rule: str, row: int = row_number) -> CatalogueError:
            return CatalogueError(f"{path}: column {column}, row {row}: {rule}")

        if not nudge_id:
            raise fail("nudge_id", "must be non-empty")
        if nudge_id in seen:
            raise fail("nudge_id", f"duplicate id {nudge_id!r}")
        if not org_id:
            raise fail("org_id", "must be non-empty")
        if not nudge_type or nudge_type == CONTROL:
            raise fail("nudge_type", f"must be non-empty and not {CONTROL!r}")
        tags = frozenset(t.strip() for t in contexts.split(";") if t.strip())
        unknown = sorted(tags - set(CONTEXTS))
        if unknown:
            raise fail("contexts", f"unknown context(s) {', '.join(unknown)}")
        seen.add(nudge_id)
        by_org.setdefault(org_id, []).append(
            CatalogueEntry(nudge_id, org_id, nudge_type, competency_id or None, tags)
        )
    return FallbackCatalogue({org: tuple(entries) for org, entries in by_org.items()})
