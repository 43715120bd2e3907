"""``jaxal annotate``: a local web page where a person labels the points jaxal picks.

Between batches a background worker trains the model on the labels so far and picks the
next batch with the jitted round. Labels, picks, rounds and the config live in one SQLite
store; ``export`` and ``import`` exchange picks and labels with other tools (Label
Studio's JSON formats among them).

One idea per module: ``store`` (SQLite) and ``records`` (what it holds, input checks),
``data`` (the pool: digits, an ``.npz``, a folder of images), ``render`` (pictures and
table rows), ``config`` (the settings kept in the store), ``learner`` (train, evaluate,
pick), ``worker`` (the background thread and its status hook), ``app`` (the page's
routes, validation, access token), ``server`` (binding and uvicorn), ``exchange`` (CSV,
JSON lines, Label Studio), ``cli`` (the options). The page itself is plain HTML, CSS and
JavaScript under ``static/``.

The web server (Starlette, uvicorn) and Pillow come with the ``annotate`` extra:
``pip install 'jaxal[annotate]'``. The library never imports this package.
"""
