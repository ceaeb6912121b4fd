"""The served model: a holder swapped atomically, and a poller that follows the registry alias.

- :class:`ModelHolder` keeps the current :class:`ServedModel`; a swap is one reference
  assignment, and a request reads ``holder.current`` once, so it never mixes two models.
- :class:`ModelPoller` resolves the alias, loads and validates a new version in a background
  thread with a timeout, and swaps it in; on any failure the last good model keeps serving.
- With no model at all, a declared fallback catalogue is served by the uniform policy.

Default loader: ``recommender.bundle.load_effect_model(uri)`` (written by the training side),
imported lazily so serving runs (on the fallback) before a bundle exists.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, cast

from recommender.constants import CONTROL
from recommender.effect_model import CatalogueEntry, EffectModel
from recommender.ranking.eligibility import OrgCatalogue
from recommender.ranking.fallback import FallbackCatalogue

logger = logging.getLogger(__name__)

FALLBACK_VERSION = "fallback"
"""``model_version`` logged with decisions of the uniform fallback."""

LoadModel = Callable[[str], tuple[str, EffectModel]]
"""Loads a model URI; returns (version, model)."""
ResolveVersion = Callable[[str], str | None]
"""Resolves a model URI to the version it points at now (None: unknown without loading)."""
RefreshOutcome = Literal["loaded", "unchanged", "failed", "timeout", "busy", "disabled"]


class ModelValidationError(ValueError):
    """A loaded model that does not behave like an ``EffectModel``."""


@dataclass(frozen=True)
class ServedModel:
    """A model (or the fallback) as served, with per-organisation catalogue indexes.

    model: None for the uniform fallback over ``catalogue_source``.
    loaded_at: UTC time the model was swapped in.
    """

    version: str
    model: EffectModel | None
    loaded_at: dt.datetime
    nudge_types: tuple[str, ...]
    catalogue_source: EffectModel | FallbackCatalogue
    _indexes: dict[str, OrgCatalogue] = field(default_factory=dict, compare=False, repr=False)

    @property
    def fallback(self) -> bool:
        """True when no model is loaded and the uniform fallback serves."""
        return self.model is None

    @classmethod
    def of_model(cls, version: str, model: EffectModel) -> ServedModel:
        return cls(version, model, _now(), tuple(model.nudge_types), model)

    @classmethod
    def of_fallback(cls, catalogue: FallbackCatalogue) -> ServedModel:
        return cls(FALLBACK_VERSION, None, _now(), catalogue.nudge_types, catalogue)

    def org_catalogue(self, org_id: str) -> OrgCatalogue:
        """The indexed catalogue of ``org_id`` (built on first use, then cached)."""
        index = self._indexes.get(org_id)
        if index is None:
            index = OrgCatalogue.build(self.catalogue_source.catalogue(org_id), self.nudge_types)
            self._indexes[org_id] = index  # idempotent; a race only builds it twice
        return index


class ModelHolder:
    """Holds the current :class:`ServedModel`; swaps are single reference assignments."""

    def __init__(self, fallback: FallbackCatalogue | None = None) -> None:
        self.fallback_catalogue = fallback
        self._current: ServedModel | None = (
            ServedModel.of_fallback(fallback) if fallback is not None else None
        )

    @property
    def current(self) -> ServedModel | None:
        """The model to serve now; None when neither a model nor a fallback is available."""
        return self._current

    @property
    def ready(self) -> bool:
        """True once a model or the declared fallback can serve."""
        return self._current is not None

    def install(self, version: str, model: EffectModel) -> ServedModel:
        """Swap ``model`` in atomically and return it."""
        served = ServedModel.of_model(version, model)
        self._current = served
        return served


def validate_model(version: str, model: EffectModel, orgs: Iterable[str] = ()) -> None:
    """Check that ``model`` can serve: names, axes and every tenant org's catalogue.

    Raises ``ModelValidationError`` naming what is wrong.
    """
    if not isinstance(version, str) or not version:
        raise ModelValidationError("version must be a non-empty string")
    for name in ("catalogue", "manager_row", "encode", "predict", "reason"):
        if not callable(getattr(model, name, None)):
            raise ModelValidationError(f"model has no callable {name}()")
    types = tuple(model.nudge_types)
    outcomes = tuple(model.outcome_names)
    if not types or len(set(types)) != len(types) or CONTROL in types:
        raise ModelValidationError(f"nudge_types must be unique, non-empty, without {CONTROL!r}")
    if not outcomes or len(set(outcomes)) != len(outcomes):
        raise ModelValidationError("outcome_names must be unique and non-empty")
    for org_id in orgs:
        entries = model.catalogue(org_id)
        if not all(isinstance(e, CatalogueEntry) for e in entries):
            raise ModelValidationError(f"catalogue({org_id!r}) must return CatalogueEntry items")


def load_from_registry(uri: str) -> tuple[str, EffectModel]:
    """Default loader: ``recommender.bundle.load_effect_model(uri)`` -> (model.version, model)."""
    from recommender import bundle  # written by the training side; imported only when needed

    model: EffectModel = bundle.load_effect_model(uri, precompute_snapshot=True)
    return str(model.version), model


_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def resolve_registry_version(uri: str) -> str | None:
    """Version a ``models:/name@alias`` or ``models:/name/N`` URI points at; None otherwise.

    Uses the MLflow client on the tracking store of ``recommender.tracking`` (the one the bundle
    loader uses unless a tracking URI is set); its HTTP timeout and retries
    follow ``MLFLOW_HTTP_REQUEST_TIMEOUT`` / ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``.
    """
    fixed = _VERSION_URI.match(uri)
    if fixed:
        return fixed["version"]
    alias = _ALIAS_URI.match(uri)
    if alias is None:
        return None
    import mlflow

    uri_of_store = None
    if not mlflow.is_tracking_uri_set():  # same store the bundle loader uses
        from recommender.tracking import tracking_uri

        uri_of_store = tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri_of_store, registry_uri=uri_of_store)
    return str(client.get_model_version_by_alias(alias["name"], alias["alias"]).version)


class ModelPoller:
    """Follows ``uri``: resolves its version, loads + validates new versions, swaps them in.

    interval_s: seconds between polls (the first poll is :meth:`refresh` at start-up).
    timeout_s: bound on one resolve or load; a load that overruns is abandoned (its thread
        finishes in the background and is discarded) and the poll reports ``"timeout"``.
    orgs: tenant organisations whose catalogues a new model must serve.
    on_outcome: called with every poll's outcome (metrics).
    """

    def __init__(
        self,
        holder: ModelHolder,
        uri: str,
        load_model: LoadModel,
        *,
        resolve_version: ResolveVersion | None = None,
        orgs: Iterable[str] = (),
        interval_s: float = 60.0,
        timeout_s: float = 30.0,
        on_outcome: Callable[[RefreshOutcome], None] | None = None,
    ) -> None:
        self.holder = holder
        self.uri = uri
        self.load_model = load_model
        self.resolve_version = resolve_version
        self.orgs = tuple(orgs)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.on_outcome = on_outcome
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._pending: Future[object] | None = None

    async def refresh(self) -> RefreshOutcome:
        """One poll; never raises. Returns what happened."""
        outcome = await self._refresh()
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    async def run(self) -> None:
        """Poll every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.refresh()

    def close(self) -> None:
        """Stop the loader thread (a running load is abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _in_thread(self, fn: Callable[[], object]) -> object:
        future = self._executor.submit(fn)
        self._pending = future
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout=self.timeout_s)

    async def _refresh(self) -> RefreshOutcome:
        if not self.uri:
            return "disabled"
        if self._pending is not None and not self._pending.done():
            logger.warning("model_poll_skipped reason=previous_load_running")
            return "busy"
        current = self.holder.current
        current_version = None if current is None or current.fallback else current.version
        try:
            if self.resolve_version is not None:
                resolve = self.resolve_version
                target = await self._in_thread(lambda: resolve(self.uri))
                if target is not None and str(target) == current_version:
                    return "unchanged"
            loaded = cast(tuple[str, EffectModel], await self._in_thread(self._load_and_validate))
        except TimeoutError:
            logger.warning("model_load_timeout timeout_s=%s", self.timeout_s)
            return "timeout"
        except Exception as error:  # keep serving the last good model, whatever went wrong
            logger.warning("model_load_failed error=%s", type(error).__name__)
            return "failed"
        version, model = loaded
        if version == current_version:
            return "unchanged"
        self.holder.install(version, model)
        logger.info("model_swapped version=%s previous=%s", version, current_version)
        return "loaded"

    def _load_and_validate(self) -> tuple[str, EffectModel]:
        version, model = self.load_model(self.uri)
        validate_model(version, model, self.orgs)
        return version, model


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
