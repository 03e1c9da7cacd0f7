"""What ``modelmon demo`` runs, shipped inside the package so it works from a wheel.

- :mod:`.fastapi_app`: the served app (a breast-cancer classifier, also the FastAPI
  example: ``examples/fastapi_app.py`` re-exports it);
- :mod:`.traffic`: the load generator (normal traffic, then drift, errors, wrong labels);
- :mod:`.view`: the scraped metrics read into what the live screen shows;
- :mod:`.stack`: ``--with-prometheus``, Prometheus and Alertmanager with rendered rules;
- :mod:`.run`: the run itself, and its one-line errors.

The ``demo`` subcommand's arguments are in :mod:`modelmon._cli.demo`.
"""
