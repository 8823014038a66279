"""Torch backend of :func:`bilevel.solvers.solve_dp` (float64, any device).

Same results and tie-breaking as the numpy backend: backward induction over topological layers for
acyclic MDPs; otherwise plain policy iteration with exact linear-solve evaluation and the tie rule
of :mod:`bilevel.solvers._dp_discounted` (the numpy backend reaches the same policies faster, by
pointer doubling and a certified fast path, for deterministic MDPs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bilevel.models._mdp import TabularMDP
from bilevel.models.typing import FloatArray, IntArray

__all__ = ["solve_torch"]


def _sparse_rows(mdp: TabularMDP, rows: IntArray, device: torch.device) -> torch.Tensor:
    sub = mdp.P[rows].tocoo()
    idx = torch.as_tensor(np.vstack([sub.row, sub.col]), dtype=torch.int64)
    val = torch.as_tensor(sub.data, dtype=torch.float64)
    return torch.sparse_coo_tensor(
        idx, val, sub.shape, device=device, check_invariants=True
    ).coalesce()


def solve_torch(
    mdp: TabularMDP,
    c_np: FloatArray,
    occupancy: bool,
    tol: float,
    max_iter: int,
    device: str | None,
) -> tuple[FloatArray, IntArray, FloatArray | None, int, np.ndarray[Any, np.dtype[np.bool_]]]:
    """Solve with torch; returns numpy ``(V, policy, occupancy, nit, converged)``."""
    dev = torch.device(device or "cpu")
    c = torch.as_tensor(c_np, dtype=torch.float64, device=dev)
    K = c.shape[0]
    S, A = mdp.shape
    gamma = mdp.gamma
    mu0 = torch.tensor(mdp.mu0, dtype=torch.float64, device=dev)
    ok = np.ones(K, dtype=bool)
    nit = 0
    if mdp.layers is not None:
        layers = [torch.tensor(layer, device=dev) for layer in mdp.layers]
        succ = None if mdp.successor is None else torch.tensor(mdp.successor, device=dev)
        V = torch.zeros(K, S + 1, dtype=torch.float64, device=dev)
        pol = torch.zeros(K, S, dtype=torch.int64, device=dev)
        for li in range(len(layers) - 1, -1, -1):
            layer = layers[li]
            if succ is not None:
                future = V[:, succ[layer]]
            else:
                rows = (mdp.layers[li][:, None] * A + np.arange(A)).ravel()
                Pl = _sparse_rows(mdp, rows, dev)
                future = torch.sparse.mm(Pl, V[:, :S].T).T.reshape(K, layer.numel(), A)
            Q = c[:, layer, :] + gamma * future
            best = Q.argmax(dim=2)
            pol[:, layer] = best
            V[:, layer] = Q.gather(2, best[..., None])[..., 0]
        nit = len(layers)
        V = V[:, :S]
        x = None
        if occupancy:
            d = torch.zeros(K, S + 1, dtype=torch.float64, device=dev)
            d[:, :S] = mu0
            for li, layer in enumerate(layers):
                p = pol[:, layer]
                dl = d[:, layer]
                if succ is not None:
                    d.scatter_add_(1, succ[layer[None, :], p], gamma * dl)
                else:
                    rows_np = (mdp.layers[li][None, :] * A + p.cpu().numpy()).ravel()
                    Pl = _sparse_rows(mdp, rows_np, dev).to_dense().reshape(K, layer.numel(), S)
                    d[:, :S] += gamma * torch.einsum("kl,kls->ks", dl, Pl)
            x = torch.zeros(K, S, A, dtype=torch.float64, device=dev)
            x.scatter_(2, pol[..., None], d[:, :S, None])
    else:
        P = torch.as_tensor(mdp.dense_P(), device=dev)  # (S, A, S)
        eye = torch.eye(S, dtype=torch.float64, device=dev)
        ar = torch.arange(S, device=dev)
        pol = c.argmax(dim=2)
        active = torch.ones(K, dtype=torch.bool, device=dev)
        V = torch.zeros(K, S, dtype=torch.float64, device=dev)
        for _ in range(max_iter):
            idx = torch.nonzero(active).ravel()
            if idx.numel() == 0:
                break
            nit += 1
            p = pol[idx]
            P_pi = P[ar[None, :], p]
            c_pi = c[idx].gather(2, p[..., None])[..., 0]
            Vi = torch.linalg.solve(eye - gamma * P_pi, c_pi[..., None])[..., 0]
            V[idx] = Vi
            Q = c[idx] + gamma * torch.einsum("sat,kt->ksa", P, Vi)
            q_best = Q.max(dim=2).values
            q_cur = Q.gather(2, p[..., None])[..., 0]
            thr = q_cur + tol * torch.clamp(q_cur.abs(), min=1.0)
            improve = q_best > thr
            # Lowest index among the improving actions tied (within tol) with the best, as in
            # solvers/_dp_discounted.py: a plain argmax would let rounding pick among ties.
            near = q_best - tol * torch.clamp(q_best.abs(), min=1.0)
            cand = (thr[..., None] < Q) & (near[..., None] <= Q)
            best = cand.to(torch.int8).argmax(dim=2)  # first True
            pol[idx] = torch.where(improve, best, p)
            active[idx[~improve.any(dim=1)]] = False
        ok = ~active.cpu().numpy()
        x = None
        if occupancy:
            P_pi = P[ar[None, :], pol]
            d = torch.linalg.solve(
                eye - gamma * P_pi.transpose(1, 2), mu0.expand(K, S)[..., None]
            )[..., 0]
            x = torch.zeros(K, S, A, dtype=torch.float64, device=dev)
            x.scatter_(2, pol[..., None], d[..., None])
    x_np = None if x is None else x.cpu().numpy()
    return V.cpu().numpy(), pol.cpu().numpy(), x_np, nit, ok
