"""Closed-form optimal mechanisms: Myerson's optimal mechanism as an AMA, and VCG for welfare.

In a single-parameter environment (``r_i = v_i · q_i`` with independent scalar values and
type-independent quantities ``q_i(s, a)``) with regular value distributions, the
revenue-optimal truthful mechanism maximises the virtual welfare
``Σ_i φ_i(v_i) q_i(x)`` (Myerson 1981, *Optimal Auction Design*, §6 Theorem 2). When every
virtual value is affine, ``φ_i(v) = a_i v − c_i`` with ``a_i > 0``, this maximiser is itself an
affine maximizer: dividing by ``a_max = max_i a_i``,

    Σ_i φ_i(v_i) q_i(x) / a_max = Σ_i w_i v_i q_i(x) + b(x),
    w_i = a_i / a_max,   b(s, a) = −Σ_i c_i q_i(s, a) / a_max,

e.g. unit weights and boost −0.5 on every selling action for U[0, 1] values, −1/(2i) for
U[0, 1/i]. With the counterfactual report at the lower end of each support, its AMA payments
``p_i = v_i q_i(x) − ∫_{lo}^{v_i} q_i(x(t, v_{−i})) dt`` (envelope theorem) are Myerson's
threshold prices, so the mechanism is exactly truthful, individually rational and optimal.
"""

from __future__ import annotations

import numpy as np

from bilevel._bounds import ObjectiveSpec
from bilevel._evaluate import Evaluation, evaluate
from bilevel._mechanism import AMA, vcg
from bilevel._objectives import resolve_objective
from bilevel.models import Environment, check_single_parameter

__all__ = ["optimal_evaluation", "optimal_mechanism"]

_CHECK_PROFILES = 64


def optimal_mechanism(env: Environment, objective: ObjectiveSpec = "revenue") -> AMA:
    """The optimal truthful mechanism of ``env`` for ``objective``, when it is a known AMA.

    * ``"welfare"``: VCG (``w = 1``, ``b = 0``) maximises welfare on every profile.
    * ``"revenue"``: Myerson's (1981) optimal mechanism, as the AMA of the module docstring.
      Requires ``env.single_parameter`` with ``public_information=False``, allocation
      quantities independent of the types (checked on sampled profiles, with the factorisation
      ``r_i = v_i q_i``), every value distribution regular with an affine virtual value, and
      every agent's counterfactual report at the lower end of its value support.

    Parameters
    ----------
    env : Environment
    objective : str or Objective, default "revenue"

    Returns
    -------
    AMA
        Named ``"optimal"``; ``meta`` records the environment, its parameters and the objective.

    Raises
    ------
    ValueError
        With one line saying why no closed-form optimal AMA exists (multi-parameter types,
        private non-value information, a non-regular or non-affine virtual value, an objective
        other than revenue or welfare) or why the declaration does not fit the environment.

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=3, n_items=2, dist="asymmetric")
    >>> mech = optimal_mechanism(env)
    >>> mech.weights, mech.boosts[0].round(4)   # boost -1/(2i) for selling to agent i
    (array([1., 1., 1.]), array([ 0.    , -0.5   , -0.25  , -0.1667]))
    """
    obj = resolve_objective(env, objective)
    meta = {"env": env.name, "params": dict(env.params), "objective": obj.name}
    if obj.kind == "welfare":
        base = vcg(env)
        return AMA(base.weights, base.boosts, name="optimal", meta={**meta, "rule": "vcg"})
    if obj.kind != "revenue":
        raise ValueError(f"objective {obj.name!r}: no closed-form optimal mechanism")
    sp = env.single_parameter
    if sp is None:
        raise ValueError(f"{env.name}: multi-parameter types, no closed-form optimum")
    if sp.public_information:
        raise ValueError(
            f"{env.name}: {sp.nonvalue_part} is private information; only a public-information "
            "bound exists (objective_bound)"
        )
    types = env.sample_types(np.random.default_rng(0), _CHECK_PROFILES)
    check_single_parameter(env, types)
    if not sp.types_independent_allocation(types):
        raise ValueError(
            f"{env.name}: the allocation quantities q depend on the types; declare "
            "public_information=True (only a bound exists then)"
        )
    for i, d in enumerate(sp.distributions):
        if not d.regular:
            lo, hi = d.decreasing_on if d.decreasing_on is not None else d.support
            raise ValueError(
                f"non-regular value distribution for agent {i + 1} (virtual value decreases on "
                f"[{lo:.4g}, {hi:.4g}]); ironing is not supported"
            )
    for i, d in enumerate(sp.distributions):
        if d.affine is None:
            raise ValueError(
                f"the optimum is a virtual-welfare maximiser but not an affine maximizer (agent "
                f"{i + 1}'s virtual value for {d.name} is not affine)"
            )
    for i, d in enumerate(sp.distributions):
        cf = sp.values(env.counterfactual(types, i))[:, i]
        if not np.allclose(cf, d.support[0], rtol=0.0, atol=1e-12):
            raise ValueError(
                f"expected agent {i + 1}'s counterfactual value at the lower end of its support "
                f"({d.support[0]:g}) so that AMA payments are Myerson's, got {float(cf[0]):g}"
            )
    a = np.array([d.affine[0] for d in sp.distributions if d.affine is not None])
    c = np.array([d.affine[1] for d in sp.distributions if d.affine is not None])
    scale = float(a.max())
    q = sp.allocation(types[:1])[0]  # (n, S, A), the same for every profile
    boosts = -np.einsum("n,nsa->sa", c, q) / scale
    return AMA(a / scale, boosts + 0.0, name="optimal", meta={**meta, "rule": "myerson"})


def optimal_evaluation(
    env: Environment,
    ev: Evaluation,
    objective: ObjectiveSpec = None,
) -> Evaluation | None:
    """Evaluate :func:`optimal_mechanism` on the profiles of an existing evaluation.

    Uses ``ev``'s seed, number of samples and batch size (so the profiles are the same), paired
    with VCG.

    Parameters
    ----------
    env : Environment
    ev : Evaluation
        An evaluation made with an integer seed.
    objective : str or Objective, optional
        Defaults to ``ev.objective``.

    Returns
    -------
    Evaluation or None
        ``None`` when no closed-form optimal mechanism exists for the objective or ``ev`` was
        not seeded by an integer (its profiles cannot be redrawn).
    """
    if ev.seed is None:
        return None
    spec = ev.objective if objective is None else objective
    try:
        mech = optimal_mechanism(env, spec)
    except ValueError:
        return None
    return evaluate(env, mech, n_samples=ev.n_samples, seed=ev.seed, objective=spec,
                    batch_size=ev.batch_size)
