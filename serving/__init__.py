"""The ranking service: a thin FastAPI shell over ``recommender.ranking`` and ``.events``.

``serving.app.create_app`` builds the app; ``serving.app.run_serve`` serves it with uvicorn
(``python -m serving`` or ``recommender serve``).
"""
