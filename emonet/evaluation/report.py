"""The text a person reads after an evaluation, rendered from the metrics dict.

:func:`emonet.evaluation.evaluate.evaluate_run` returns (and writes to
``metrics.json``) a result dict; :func:`format_evaluation` turns that dict, fresh or
read back from JSON, into the summary that ``emonet evaluate`` and ``emonet train``
print: the full report of the run's model, the ablation / baseline table, and a
closing line naming ``metrics.json``. Nothing here prints or writes.

Examples
--------
>>> import json
>>> path = "runs/fusion-seed1/metrics.json"
>>> print(format_evaluation(json.loads(open(path).read()), metrics_path=path))  # doctest: +SKIP
fusion-seed1: fusion model on val split of ...: UAR 85.1%  accuracy ...
"""

from pathlib import Path

from emonet.evaluation.metrics import ablation_table, format_report, percent
from preprocessing.errors import ConfigError

__all__ = ["ablation_rows", "format_evaluation"]

#: Keys of an evaluation result (see ``evaluate_run``) that the summary needs.
_RESULT_KEYS = ("run", "store", "split", "mode", "n", "report", "ablation", "baselines")


def ablation_rows(result):
    """The rows of the ablation table: the run's model, its ablations, then the baselines.

    Parameters
    ----------
    result : dict
        An evaluation result: ``mode`` (str), ``ablation`` (``{mode: {"accuracy", "uar",
        "macro_f1", "auc_ovo", "n"}}``, the run's own mode first) and ``baselines`` (list
        of rows of :func:`emonet.evaluation.baselines.run_baselines`, without ``report``).

    Returns
    -------
    list of dict
        Ready for :func:`emonet.evaluation.metrics.ablation_table`; the run's model is
        named ``"EmoNet <mode> (this run)"``, an ablation ``"EmoNet <mode>"``.
    """
    rows = [{"name": f"EmoNet {mode}" + (" (this run)" if mode == result["mode"] else ""), **summary}
            for mode, summary in result["ablation"].items()]
    return rows + [{k: v for k, v in row.items() if k != "report"} for row in result["baselines"]]


def format_evaluation(result, *, metrics_path):
    """The summary printed after an evaluation.

    Parameters
    ----------
    result : dict
        As returned by ``evaluate_run`` or read back from its ``metrics.json``: ``run``,
        ``store`` (paths as str), ``split``, ``mode`` (str), ``n`` (int, clips scored),
        ``report`` (a :func:`~emonet.evaluation.metrics.classification_report`),
        ``ablation`` and ``baselines`` (see :func:`ablation_rows`).
    metrics_path : str or os.PathLike
        Where ``metrics.json`` was written; named on the last line.

    Returns
    -------
    str
        No trailing newline: the report (headline, per-class table, confusion matrix),
        a blank line, the Markdown ablation table, a blank line, and
        ``"UAR 43.1%  accuracy 45.2%  (n=175) -> <metrics_path>"``.
    """
    if not isinstance(result, dict):
        raise ConfigError(f"result must be the dict returned by evaluate_run(); received {type(result).__name__}")
    missing = [key for key in _RESULT_KEYS if key not in result]
    if missing:
        raise ConfigError(f"result is missing keys {missing}; pass the dict returned by evaluate_run() "
                          f"or read from its metrics.json")
    report = result["report"]
    title = f"{Path(result['run']).name}: {result['mode']} model on {result['split']} split of {result['store']}"
    if result.get("temperature") is not None:
        title += f" (probabilities at temperature {result['temperature']:.2f}, train.calibrate)"
    closing = (f"UAR {percent(report['uar'])}  accuracy {percent(report['accuracy'])}  (n={result['n']}) "
               f"-> {Path(metrics_path)}")
    return "\n\n".join([format_report(report, title=title), ablation_table(ablation_rows(result)), closing])
