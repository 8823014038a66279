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

from bilevel._bounds import Bound, NoBoundError, bound_values, objective_bound
from bilevel._designer import AMADesigner, DesignResult
from bilevel._evaluate import Estimate, Evaluation, evaluate, mean_se
from bilevel._mechanism import AMA, load_mechanism, vcg
from bilevel._memory import MemoryLimitError, memory_limit, set_memory_limit
from bilevel._objectives import Objective, resolve_objective
from bilevel._optimal import optimal_evaluation, optimal_mechanism
from bilevel._outcomes import ExactInner, Outcomes, batch_outcomes, counterfactual_rewards
from bilevel._plots import plot_gridworld_boosts, plot_learning_curves, plot_makespan_distribution
from bilevel._report import (
    bound_line,
    comparison_rows,
    design_report,
    format_table,
    write_design,
)
from bilevel._reproduce import FULL, QUICK, Protocol, paper_rows, reproduce
from bilevel._run import mechanism_outcomes
from bilevel._spm import SPMDesigner, SPMDesignResult, best_values, default_ppo_config, mechanism_of
from bilevel._spm_report import plot_spm_curves, spm_report_markdown, write_spm_report
from bilevel._stackelberg import (
    LeaderEvaluation,
    StackelbergDesigner,
    StackelbergResult,
    evaluate_leader,
    load_stackelberg,
    worst_certified_value,
)
from bilevel._stackelberg_report import compare_critics, dominant_outcome, stackelberg_report
from bilevel._store import ResultStore
from bilevel.search import (
    CMAES,
    DesignProblem,
    FirstOrder,
    GridSearch,
    Intermediate,
    MultiStart,
    SearchResult,
    ZerothOrder,
    run_search,
    sobol_candidates,
)
from models import (
    Environment,
    EnvSpec,
    SingleParameter,
    TabularMDP,
    ValueDistribution,
    check_mdp,
    check_single_parameter,
    custom_env,
    exponential_values,
    list_envs,
    list_games,
    make_env,
    make_game,
    mdp_from_arrays,
    mdp_from_successors,
    register_env,
    uniform_values,
    value_distribution,
)
from solvers import (
    EntropicSolver,
    InnerSolution,
    InnerSolveError,
    Status,
    mosek_licensed,
    solve_dp,
    solve_entropic,
    solve_lp,
)

__version__ = "0.1.0"

__all__ = [
    "AMA",
    "CMAES",
    "FULL",
    "QUICK",
    "AMADesigner",
    "Bound",
    "DesignProblem",
    "DesignResult",
    "EntropicSolver",
    "EnvSpec",
    "Environment",
    "Estimate",
    "Evaluation",
    "ExactInner",
    "FirstOrder",
    "GridSearch",
    "InnerSolution",
    "InnerSolveError",
    "Intermediate",
    "LeaderEvaluation",
    "MemoryLimitError",
    "MultiStart",
    "NoBoundError",
    "Objective",
    "Outcomes",
    "Protocol",
    "ResultStore",
    "SPMDesignResult",
    "SPMDesigner",
    "SearchResult",
    "SingleParameter",
    "StackelbergDesigner",
    "StackelbergResult",
    "Status",
    "TabularMDP",
    "ValueDistribution",
    "ZerothOrder",
    "__version__",
    "batch_outcomes",
    "best_values",
    "bound_line",
    "bound_values",
    "check_mdp",
    "check_single_parameter",
    "compare_critics",
    "comparison_rows",
    "counterfactual_rewards",
    "custom_env",
    "default_ppo_config",
    "design_report",
    "dominant_outcome",
    "evaluate",
    "evaluate_leader",
    "exponential_values",
    "format_table",
    "list_envs",
    "list_games",
    "load_mechanism",
    "load_stackelberg",
    "make_env",
    "make_game",
    "mdp_from_arrays",
    "mdp_from_successors",
    "mean_se",
    "mechanism_of",
    "mechanism_outcomes",
    "memory_limit",
    "mosek_licensed",
    "objective_bound",
    "optimal_evaluation",
    "optimal_mechanism",
    "paper_rows",
    "plot_gridworld_boosts",
    "plot_learning_curves",
    "plot_makespan_distribution",
    "plot_spm_curves",
    "register_env",
    "reproduce",
    "resolve_objective",
    "run_search",
    "set_memory_limit",
    "sobol_candidates",
    "solve_dp",
    "solve_entropic",
    "solve_lp",
    "spm_report_markdown",
    "stackelberg_report",
    "uniform_values",
    "value_distribution",
    "vcg",
    "worst_certified_value",
    "write_design",
    "write_spm_report",
]
