"""Environments as validated data: tabular MDPs, type distributions, mechanism-design settings.

This package imports nothing else from the project. Every registered instance passes its
conformance checker: :func:`check_env` (environments), :func:`check_game` (Stackelberg games),
:func:`check_spm_setting` (SPM settings; imported on first use, with ``bilevel.models.spm``).
"""

from typing import TYPE_CHECKING, Any

from bilevel.models._checks import check_env, check_game
from bilevel.models._env import Environment, check_count, custom_env
from bilevel.models._gridworld import gridworld
from bilevel.models._matching import matching
from bilevel.models._mdp import TabularMDP, check_mdp, mdp_from_arrays, mdp_from_successors
from bilevel.models._profiles import ProfileStream, draw_profiles
from bilevel.models._registry import EnvSpec, Registry, Spec, list_envs, make_env, register_env
from bilevel.models._sales import sales
from bilevel.models._scheduling import scheduling
from bilevel.models._single_parameter import (
    SingleParameter,
    ValueDistribution,
    check_single_parameter,
    exponential_values,
    uniform_values,
    value_distribution,
)
from bilevel.models.stackelberg import StackelbergGame, list_games, make_game, register_game

if TYPE_CHECKING:
    from bilevel.models.spm import check_spm_setting

register_env("sales", sales, "sequential sales of m identical items to unit-demand agents")
register_env("scheduling", scheduling, "task scheduling on n machines, makespan objective")
register_env("gridworld", gridworld, "shared walker on a torus grid, agents value cells")
register_env("matching", matching, "dynamic matching with stochastic arrivals and patience")

__all__ = [
    "EnvSpec",
    "Environment",
    "ProfileStream",
    "Registry",
    "SingleParameter",
    "Spec",
    "StackelbergGame",
    "TabularMDP",
    "ValueDistribution",
    "check_count",
    "check_env",
    "check_game",
    "check_mdp",
    "check_single_parameter",
    "check_spm_setting",
    "custom_env",
    "draw_profiles",
    "exponential_values",
    "gridworld",
    "list_envs",
    "list_games",
    "make_env",
    "make_game",
    "matching",
    "mdp_from_arrays",
    "mdp_from_successors",
    "register_env",
    "register_game",
    "sales",
    "scheduling",
    "uniform_values",
    "value_distribution",
]


def __getattr__(name: str) -> Any:
    # check_spm_setting lives with the SPM settings (torch): imported on first use only.
    if name == "check_spm_setting":
        from bilevel.models.spm import check_spm_setting

        return check_spm_setting
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
