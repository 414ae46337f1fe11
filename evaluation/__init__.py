"""Evaluation of explanation methods: ``smug evaluate`` and ``smug report``.

* :mod:`smug.evaluation.store`: the SQLite file of one evaluation (:class:`Store`) and
  the settings it was made with (:class:`EvalConfig`);
* :mod:`smug.evaluation.runner`: the maps and scores of every (image, method) pair
  (:func:`evaluate`, resumable);
* :mod:`smug.evaluation.report`: the HTML page of a store (:func:`write_report`);
* :mod:`smug.evaluation.commands`: the ``evaluate`` and ``report`` subcommands of the
  CLI (:func:`add_commands`, :func:`run_command`).

Imports run one way: runner -> store <- report; commands -> runner, report.
"""
