"""The read API, as a package: ``app.py`` builds the app (middleware, error bodies, routers), ``deps.py``
holds the one access rule every route depends on, ``routes/`` one router per resource, ``params.py``
the bounded parsing of parameters, ``state.py`` what the server holds (lake, page cache, links),
``schemas.py`` the response models, ``exports.py`` the export store and the runner that runs exports
in processes of their own, ``docs.py`` the offline ``/docs`` and ``/redoc``. See ``app.py`` for the
routes and the rules they share."""

from pipelines.api.app import create_app
from pipelines.api.docs import DOCS_CSP, STATIC_DIR
from pipelines.api.state import PUBLIC_URL_ENV

__all__ = ["DOCS_CSP", "PUBLIC_URL_ENV", "STATIC_DIR", "create_app"]
