"""bilevel: automated design of dynamic mechanisms.

Affine maximizer mechanisms (AMAs) on MDPs, designed by outer search over weights and boosts
with exact inner solvers, and always compared with VCG.

Examples
--------
>>> from bilevel import AMADesigner, make_env
>>> env = make_env("sales", n_agents=3, n_items=2, dist="uniform")
>>> designer = AMADesigner(method="grid", n_points=16, n_profiles=200, eval_samples=500)
>>> designer.fit(env).mechanism_.boosts.shape
(5, 4)
"""


import importlib as _importlib
import warnings as _warnings
from typing import Any as _Any

import lazy_loader as _lazy

__version__ = "0.1.0"

# Names are imported on first use (``import bilevel`` loads neither torch nor cvxpy); the
# type stub ``__init__.pyi`` lists them.
_getattr, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
__all__ = [*__all__, "__version__"]

# Names that moved into the family namespaces: kept for one release, with a warning.
_SPM = ["SPMDesigner", "SPMDesignResult", "best_values", "default_ppo_config", "mechanism_of",
        "plot_spm_curves", "spm_report_markdown", "write_spm_report"]
_STACKELBERG = ["LeaderEvaluation", "StackelbergDesigner", "StackelbergResult", "evaluate_leader",
                "load_stackelberg", "worst_certified_value", "compare_critics",
                "dominant_outcome", "stackelberg_report"]
_MOVED: dict[str, tuple[str, str]] = {
    "FULL": ("bilevel.reproduce", "FULL"),
    "QUICK": ("bilevel.reproduce", "QUICK"),
    "paper_rows": ("bilevel.reproduce", "paper_rows"),
    "Protocol": ("bilevel.reproduce", "Budget"),
    "list_games": ("bilevel.models", "list_games"),
    "make_game": ("bilevel.models", "make_game"),
    **{name: ("bilevel.spm", name) for name in _SPM},
    **{name: ("bilevel.stackelberg", name) for name in _STACKELBERG},
}


def __getattr__(name: str) -> _Any:
    if name not in _MOVED:
        return _getattr(name)
    module, attr = _MOVED[name]
    _warnings.warn(
        f"bilevel.{name} is now {module}.{attr}; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(_importlib.import_module(module), attr)
