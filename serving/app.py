"""The FastAPI app factory, its lifespan, and the uvicorn entry ``run_serve``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

import recommender
from recommender.events import EventStore
from recommender.model_lifecycle import (
    LoadModel,
    ModelHolder,
    ModelPoller,
    RefreshOutcome,
    ResolveVersion,
    load_from_registry,
    resolve_registry_version,
)
from recommender.ranking.eligibility import RuleConfig
from recommender.ranking.fallback import load_catalogue
from recommender.ranking.policies import Sampler, make_policy
from recommender.ranking.service import RankingService
from serving.deps import Runner
from serving.errors import install_error_handlers
from serving.metrics import MetricsMiddleware, ServeMetrics
from serving.middleware import BodySizeLimitMiddleware
from serving.routers import events, model, ops, rank
from serving.settings import ServeSettings, load_settings

logger = logging.getLogger("serving")


def create_app(
    settings: ServeSettings | None = None,
    load_model: LoadModel | None = None,
    *,
    resolve_version: ResolveVersion | None = None,
) -> FastAPI:
    """Build the ranking API.

    settings: default reads ``NUDGE_*`` from the environment (``SettingsError`` names the bad
        variable).
    load_model: ``uri -> (version, EffectModel)``; default imports
        ``recommender.bundle.load_effect_model`` lazily.
    resolve_version: ``uri -> version | None`` used by the poller to skip unchanged versions;
        default (with the default loader) asks the MLflow registry; otherwise every poll loads.
    """
    settings = settings if settings is not None else load_settings()
    if load_model is None:
        load_model = load_from_registry
        resolve_version = resolve_version or resolve_registry_version
    metrics = ServeMetrics.create()
    app = FastAPI(
        title="Nudge recommender",
        version=recommender.__version__,
        summary="Which leadership nudge now, for this manager, with logged probabilities.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.tenants = settings.tenants()
    app.state.metrics = metrics
    app.state.load_model = load_model
    app.state.resolve_version = resolve_version
    for router in (rank.router, events.router, model.router, ops.router):
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts 413s too
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the store, load the model (or the fallback), start the registry poller."""
    settings: ServeSettings = app.state.settings
    metrics: ServeMetrics = app.state.metrics
    fallback = (
        load_catalogue(settings.fallback_catalogue)
        if settings.fallback_catalogue is not None
        else None
    )
    store = EventStore(
        settings.database_url(),
        table_prefix=settings.db_table_prefix,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    holder = ModelHolder(fallback)

    def on_outcome(outcome: RefreshOutcome) -> None:
        metrics.model_refreshes.labels(outcome).inc()
        served = holder.current
        metrics.set_model(
            None if served is None else served.version, served is None or served.fallback
        )

    poller = ModelPoller(
        holder,
        settings.model_uri,
        app.state.load_model,
        resolve_version=app.state.resolve_version,
        orgs=sorted(set(app.state.tenants.values())),
        interval_s=settings.model_poll_seconds,
        timeout_s=settings.model_timeout_seconds,
        on_outcome=on_outcome,
    )
    app.state.store = store
    app.state.runner = Runner(inline=store.url.startswith("sqlite"))
    app.state.holder = holder
    app.state.poller = poller
    app.state.service = RankingService(
        holder=holder,
        log=store,
        rules=RuleConfig(
            frequency_cap=settings.frequency_cap,
            frequency_window=dt.timedelta(hours=settings.frequency_window_hours),
            no_repeat_window=dt.timedelta(hours=settings.no_repeat_hours),
        ),
        policy=make_policy(
            settings.policy, epsilon=settings.epsilon, temperature=settings.temperature
        ),
        holdout_share=settings.holdout_share,
        sampler=Sampler(settings.random_seed),
    )
    outcome = await poller.refresh()
    served = holder.current
    logger.info(
        "startup model_outcome=%s ready=%s fallback=%s version=%s",
        outcome,
        served is not None,
        served is not None and served.fallback,
        None if served is None else served.version,
    )
    task = (
        asyncio.create_task(poller.run(), name="model-poller")
        if settings.model_uri and settings.model_poll_seconds > 0
        else None
    )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        poller.close()
        store.dispose()


def run_serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    settings: ServeSettings | None = None,
    load_model: LoadModel | None = None,
    log_level: str | None = None,
    access_log: bool = False,
) -> None:
    """Serve the API with uvicorn (one worker) until interrupted; ``recommender serve`` calls it.

    access_log: uvicorn's access log records client addresses; off by default (HR data).
    """
    import uvicorn

    settings = settings if settings is not None else load_settings()
    level = (log_level or settings.log_level).lower()
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings, load_model)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=level,
        access_log=access_log,
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )
