"""Environments as validated data: tabular MDPs, type distributions, mechanism-design settings.

This package imports nothing else from the project.
"""

from models._env import Environment, custom_env
from models._gridworld import gridworld
from models._matching import matching
from models._mdp import TabularMDP, check_mdp, mdp_from_arrays, mdp_from_successors
from models._registry import EnvSpec, list_envs, make_env, register_env
from models._sales import sales
from models._scheduling import scheduling
from models._single_parameter import (
    SingleParameter,
    ValueDistribution,
    check_single_parameter,
    exponential_values,
    uniform_values,
    value_distribution,
)
from models.games import StackelbergGame, list_games, make_game, register_game

register_env("sales", sales, "sequential sales of m identical items to unit-demand agents")
register_env("scheduling", scheduling, "task scheduling on n machines, makespan objective")
register_env("gridworld", gridworld, "shared walker on a torus grid, agents value cells")
register_env("matching", matching, "dynamic matching with stochastic arrivals and patience")

__all__ = [
    "EnvSpec",
    "Environment",
    "SingleParameter",
    "StackelbergGame",
    "TabularMDP",
    "ValueDistribution",
    "check_mdp",
    "check_single_parameter",
    "custom_env",
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
