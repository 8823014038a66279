"""Learned sequential price mechanisms: a PPO-trained mechanism over the SPM decision process.

:class:`SPMDesigner` trains the mechanism on a setting of :mod:`bilevel.models.spm`, evaluates
it exactly where the value profiles can be enumerated, and compares it with the expected
optimum, random serial dictatorship and the best static mechanisms (:func:`best_values`).
The report (:func:`write_spm_report`) and the ``bilevel spm`` subcommand sit beside it.

"""

from bilevel.spm._designer import (
    SPMDesigner,
    SPMDesignResult,
    best_values,
    default_ppo_config,
    mechanism_of,
)
from bilevel.spm._report import (
    plot_spm_curves,
    spm_report_markdown,
    spm_report_rows,
    write_spm_report,
)

__all__ = [
    "SPMDesignResult",
    "SPMDesigner",
    "best_values",
    "default_ppo_config",
    "mechanism_of",
    "plot_spm_curves",
    "spm_report_markdown",
    "spm_report_rows",
    "write_spm_report",
]
