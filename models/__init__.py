"""Environments as validated data: tabular MDPs, type distributions, mechanism-design settings.

This package imports nothing else from the project.
"""

from bilevel.models._env import Environment, check_count, custom_env
from bilevel.models._gridworld import gridworld
from bilevel.models._matching import matching
from bilevel.models._mdp import TabularMDP, check_mdp, mdp_from_arrays, mdp_from_successors
from bilevel.models._profiles import ProfileStream, draw_profiles
from bilevel.models._registry import EnvSpec, list_envs, make_env, register_env
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

register_env("sales", sales, "sequential sales of m identical items to unit-demand agents")
register_env("scheduling", scheduling, "task scheduling on n machines, makespan objective")
register_env("gridworld", gridworld, "shared walker on a torus grid, agents value cells")
register_env("matching", matching, "dynamic matching with stochastic arrivals and patience")

__all__ = [
    "EnvSpec",
    "Environment",
    "ProfileStream",
    "SingleParameter",
    "StackelbergGame",
    "TabularMDP",
    "ValueDistribution",
    "check_count",
    "check_mdp",
    "check_single_parameter",
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
