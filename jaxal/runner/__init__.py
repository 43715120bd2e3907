"""The experiment runner behind the ``jaxal run`` and ``jaxal plot`` commands.

It builds on the library (pool, model, strategies, data, train); the library never imports
it. Modules, each importing only those listed before it:

- :mod:`~jaxal.runner.checkpoint`: atomic files, a pytree plus arrays plus JSON in one ``.npz``.
- :mod:`~jaxal.runner.experiment`: one experiment (a strategy and a seed), round by round.
- :mod:`~jaxal.runner.stop`: the stopping rules of a run, their outputs, state and record.
- :mod:`~jaxal.runner.plot`: learning curves from ``results.json``.
- :mod:`~jaxal.runner.config`: :class:`~jaxal.runner.config.RunConfig`, read and checked.
- :mod:`~jaxal.runner.prepare`: the dataset read once, the normalization chosen from it, each
  seed's split with the source row of every point.
- :mod:`~jaxal.runner.setup`: datasets, model, trainer and strategies of a run.
- :mod:`~jaxal.runner.report`: progress bar, tables, ``results.json`` and the figure.
- :mod:`~jaxal.runner.loop`: new or resumed runs, and the loop over experiments and rounds.
"""
