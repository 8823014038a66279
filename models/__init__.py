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

register_env("sales", sales, "sequential sales of m identical items to unit-demand agents")
register_env("scheduling", scheduling, "task scheduling on n machines, makespan objective")
register_env("gridworld", gridworld, "shared walker on a torus grid, agents value cells")
register_env("matching", matching, "dynamic matching with stochastic arrivals and patience")

__all__ = [
    "EnvSpec",
    "Environment",
    "TabularMDP",
    "check_mdp",
    "custom_env",
    "gridworld",
    "list_envs",
    "make_env",
    "matching",
    "mdp_from_arrays",
    "mdp_from_successors",
    "register_env",
    "sales",
    "scheduling",
]
