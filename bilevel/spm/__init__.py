"""Learned sequential price mechanisms: a PPO-trained mechanism over the SPM decision process.

:class:`SPMDesigner` trains the mechanism on a setting of :mod:`bilevel.models.spm`, evaluates
it exactly where the value profiles can be enumerated, and compares it with the expected
optimum, random serial dictatorship and the best static mechanisms (:func:`best_values`).
The report (:func:`write_spm_report`) and the ``bilevel spm`` subcommand sit beside it.

"""

import importlib as _importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use, so that importing a submodule (``bilevel spm --help`` imports
# bilevel.spm._cli) loads neither torch nor matplotlib.
_SUBMODULE = {
    "SPMDesignResult": "bilevel.spm._designer",
    "SPMDesigner": "bilevel.spm._designer",
    "best_values": "bilevel.spm._designer",
    "default_ppo_config": "bilevel.spm._designer",
    "mechanism_of": "bilevel.spm._designer",
    "plot_spm_curves": "bilevel.spm._report",
    "spm_report_markdown": "bilevel.spm._report",
    "spm_report_rows": "bilevel.spm._report",
    "write_spm_report": "bilevel.spm._report",
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(_SUBMODULE[name]), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
