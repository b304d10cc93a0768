"""The web page for the people who use the model, served by the model server itself at ``/ui/``.

One page, plain HTML, CSS and JavaScript shipped with this package (:data:`STATIC_DIR`, no build step, nothing
loaded from elsewhere): a what-if form answered with explanations by every version that serves traffic, the
served versions with their test metrics and model cards, and the scoring of a CSV file. Its data comes from
``/ui/api/...`` (:mod:`arrest_server.ui.routes`), which reads the predictor this process serves, so the page
always talks to the model that is actually serving.

The static files hold no data and are open even when ``ARREST_SERVER_API_TOKEN`` is set
(:func:`arrest_server.ui.paths.is_static`);
every ``/ui/api/`` call needs the token like any other data route. ``ARREST_SERVER_UI=false`` installs nothing.
"""
