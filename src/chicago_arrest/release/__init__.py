"""Releasing a model version: one set of operations (deploy, canary, promote, rollback, status) for every target.

* :mod:`~chicago_arrest.release.ops`: :class:`~chicago_arrest.release.ops.Release`, written once, and
  :func:`~chicago_arrest.release.ops.open_release`, which builds one for a target.
* :mod:`~chicago_arrest.release.base`: the ``Traffic`` contract; :mod:`~chicago_arrest.release.local` (the local
  serving state that ``make serve`` watches) and :mod:`~chicago_arrest.release.kserve` (the InferenceService,
  imported only for ``cluster``) implement it.
* :mod:`~chicago_arrest.release.gate`: the champion/challenger gate of the training pipeline.

What this layer reads and writes in the registry (aliases, their history, the serving state's schema) lives one
layer down, in :mod:`chicago_arrest.registry`, which the model server imports without this package.
"""
