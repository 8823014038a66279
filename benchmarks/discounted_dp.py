"""Discounted exact DP on the gridworld: previous policy iteration vs the current one, side by side.

Setting (the paper's gridworld grid search): ``gridworld`` with ``dist="onecell"``,
``gamma = 0.9``; C candidate boosts (VCG, i.e. zero boosts, plus C - 1 drawn at random from the
first ``--pool`` Sobol points of the grid search) × K type profiles;
for every candidate and profile the factual problem (values, greedy policy and occupancy) and
the n counterfactual problems (values and policy), exactly as ``bilevel.batch_outcomes``
solves them: ``C * K * (n + 1)`` discounted solves per run.

The *previous* algorithm is a verbatim copy of the old ``bilevel.solvers._dp._policy_iteration`` and
``_discounted_state_occupancy`` (dense ``np.linalg.solve`` per round, ``einsum`` Q-values,
plain ``argmax``). The *current* one is :func:`bilevel.solvers.solve_values` +
:func:`bilevel.solvers.occupancy_of_policy`. The script checks that values and occupancies agree to
1e-9 (relative) and that the policies are identical except where the previous code chose between
exactly tied actions by rounding noise: there it reports how many such problems there were and
checks (a) that both policies are optimal with equal values and (b) that the previous
algorithm with a rounding-proof choice among tied actions returns the current policy exactly.

BLAS/torch threads are pinned to 1 (set before numpy is imported).

Usage::

    python benchmarks/discounted_dp.py [--grid 4] [--n-agents 2] [--candidates 64]
        [--profiles 500] [--pool 10000] [--repeat 3] [--seed 0] [--json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bilevel.models import make_env  # noqa: E402
from bilevel.models.typing import FloatArray, IntArray  # noqa: E402
from bilevel.search._grid import sobol_candidates  # noqa: E402
from bilevel.solvers import occupancy_of_policy, solve_values  # noqa: E402

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


# ---------------------------------------------------------------------- previous algorithm


def reference_policy_iteration(
    P_dense: FloatArray, gamma: float, c: FloatArray, tol: float = 1e-12, max_iter: int = 1000,
    *, robust_ties: bool = False,
) -> tuple[FloatArray, IntArray, int, BoolArray]:
    """The previous ``_policy_iteration`` (verbatim), optionally with a rounding-proof tie choice.

    With ``robust_ties`` the new action of an improving state is the lowest index among the
    improving actions within ``tol * max(1, |max Q|)`` of the best, instead of ``argmax``.
    """
    K = c.shape[0]
    S = P_dense.shape[0]
    rows = np.arange(S)
    pol = c.argmax(axis=2)
    eye = np.eye(S)
    active = np.ones(K, dtype=bool)
    V = np.zeros((K, S))
    nit = 0
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        nit += 1
        p = pol[idx]
        P_pi = P_dense[rows[None, :], p]  # (k, S, S)
        c_pi = np.take_along_axis(c[idx], p[..., None], axis=2)[..., 0]
        Vi = np.linalg.solve(eye - gamma * P_pi, c_pi[..., None])[..., 0]
        V[idx] = Vi
        Q = c[idx] + gamma * np.einsum("sat,kt->ksa", P_dense, Vi)
        best = Q.argmax(axis=2)
        q_best = np.take_along_axis(Q, best[..., None], axis=2)[..., 0]
        q_cur = np.take_along_axis(Q, p[..., None], axis=2)[..., 0]
        thr = q_cur + tol * np.maximum(1.0, np.abs(q_cur))
        improve = q_best > thr
        if robust_ties:
            near = q_best - tol * np.maximum(1.0, np.abs(q_best))
            best = ((thr[..., None] < Q) & (near[..., None] <= Q)).argmax(axis=2)
        new = np.where(improve, best, p)
        changed = improve.any(axis=1)
        pol[idx] = new
        active[idx[~changed]] = False
    return V, pol, nit, ~active


def reference_occupancy(
    P_dense: FloatArray, gamma: float, mu0: FloatArray, policy: IntArray
) -> FloatArray:
    """The previous discounted occupancy (one dense linear solve per problem), shape (K, S, A)."""
    K, S = policy.shape
    P_pi = P_dense[np.arange(S)[None, :], policy]  # (K, S, S)
    lhs = np.eye(S) - gamma * np.swapaxes(P_pi, 1, 2)
    d = np.linalg.solve(lhs, np.broadcast_to(mu0, (K, S))[..., None])[..., 0]
    x = np.zeros((K, S, P_dense.shape[1]))
    x[np.arange(K)[:, None], np.arange(S)[None, :], policy] = d
    return x


# ---------------------------------------------------------------------- benchmark


def _rel(a: FloatArray, b: FloatArray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if a.size else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--n-agents", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--profiles", type=int, default=500)
    parser.add_argument("--pool", type=int, default=10_000, help="Sobol candidates to draw from")
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--repeat", type=int, default=3, help="timing repetitions (best of)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env = make_env("gridworld", n_agents=args.n_agents, grid=args.grid, dist="onecell",
                   gamma=args.gamma)
    mdp = env.mdp
    S, A = mdp.shape
    n = env.n_agents
    # A realistic slice of a grid-search row: VCG (Sobol point 0, exact ties everywhere) plus
    # candidates drawn from the whole pool (early Sobol points are structured and tie-heavy).
    assert env.boost_box is not None
    weights, boosts = sobol_candidates(args.pool, n, (S, A), env.boost_box, False)
    pick = np.random.default_rng(args.seed + 1).choice(
        np.arange(1, args.pool), size=args.candidates - 1, replace=False
    )
    sel = np.concatenate([[0], np.sort(pick)])
    weights, boosts = weights[sel], boosts[sel]
    types = env.sample_types(np.random.default_rng(args.seed), args.profiles)
    R = env.rewards(types)  # (K, n, S, A)
    R_cf = np.stack([env.rewards(env.counterfactual(types, i)) for i in range(n)])
    c = (np.einsum("cn,knsa->cksa", weights, R) + boosts[:, None]).reshape(-1, S, A)
    c_cf = (np.einsum("cn,iknsa->ciksa", weights, R_cf) + boosts[:, None, None]).reshape(-1, S, A)
    P_dense = mdp.dense_P()
    mu0 = mdp.mu0
    gamma = mdp.gamma

    def old() -> tuple[FloatArray, IntArray, FloatArray, FloatArray, IntArray]:
        V, pol, _, ok = reference_policy_iteration(P_dense, gamma, c)
        x = reference_occupancy(P_dense, gamma, mu0, pol)
        V_cf, pol_cf, _, ok_cf = reference_policy_iteration(P_dense, gamma, c_cf)
        assert ok.all() and ok_cf.all()
        return V @ mu0, pol, x, V_cf @ mu0, pol_cf

    def new() -> tuple[FloatArray, IntArray, FloatArray, FloatArray, IntArray]:
        value, pol = solve_values(mdp, c)
        x = occupancy_of_policy(mdp, pol)
        value_cf, pol_cf = solve_values(mdp, c_cf)
        return value, pol, x, value_cf, pol_cf

    solve_values(mdp, c[:8])  # warm-up (plan cache)
    t_old, t_new, cpu_old, cpu_new = [], [], [], []
    for _ in range(args.repeat):  # interleaved, so that both see the same machine load
        t, u = time.perf_counter(), time.process_time()
        ref = old()
        t_old.append(time.perf_counter() - t)
        cpu_old.append(time.process_time() - u)
        t, u = time.perf_counter(), time.process_time()
        cur = new()
        t_new.append(time.perf_counter() - t)
        cpu_new.append(time.process_time() - u)
    n_solves = c.shape[0] + c_cf.shape[0]
    old_s, new_s = min(t_old), min(t_new)

    # Agreement.
    v_ref = np.concatenate([ref[0], ref[3]])
    v_cur = np.concatenate([cur[0], cur[3]])
    pol_ref = np.concatenate([ref[1], ref[4]])
    pol_cur = np.concatenate([cur[1], cur[4]])
    differ = (pol_ref != pol_cur).any(axis=1)
    same = ~differ[: c.shape[0]]
    c_all = np.concatenate([c, c_cf])
    # Differences must be ties: the old policy is optimal for the same rewards (same value) ...
    x_old_pol = reference_occupancy(P_dense, gamma, mu0, pol_ref[differ])
    v_old_pol = np.einsum("ksa,ksa->k", x_old_pol, c_all[differ])
    ties_ok = _rel(v_old_pol, v_cur[differ]) <= 1e-9
    # ... and the old algorithm with a rounding-proof tie choice reproduces the new policy.
    _, pol_robust, _, _ = reference_policy_iteration(P_dense, gamma, c_all[differ],
                                                     robust_ties=True)
    robust_equal = bool(np.array_equal(pol_robust, pol_cur[differ]))
    out = {
        "setting": f"gridworld onecell G={args.grid} (S={S}, A={A}) n={n} gamma={gamma}, "
        f"{args.candidates} candidates x {args.profiles} profiles x (n + 1) = {n_solves} "
        f"solves",
        "n_solves": n_solves,
        "old_seconds": old_s,
        "new_seconds": new_s,
        "old_us_per_solve": 1e6 * old_s / n_solves,
        "new_us_per_solve": 1e6 * new_s / n_solves,
        "ratio": old_s / new_s,
        "old_cpu_seconds": min(cpu_old),
        "new_cpu_seconds": min(cpu_new),
        "ratio_cpu": min(cpu_old) / min(cpu_new),
        "values_max_rel_diff": _rel(v_cur, v_ref),
        "occupancy_max_rel_diff_same_policy": _rel(cur[2][same], ref[2][same]),
        "policy_mismatches": int(differ.sum()),
        "mismatches_are_exact_ties": bool(ties_ok),
        "mismatches_match_old_with_rounding_proof_ties": robust_equal,
        "agree": bool(
            _rel(v_cur, v_ref) <= 1e-9
            and _rel(cur[2][same], ref[2][same]) <= 1e-9
            and ties_ok
            and robust_equal
        ),
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, val in out.items():
            print(f"{key:48s} {val}")


if __name__ == "__main__":
    main()
