"""Which LP back ends can run here, with a quiet, cached MOSEK licence check.

MOSEK is optional (``pip install bilevel[mosek]``) and commercial: having the ``mosek`` package
installed is not enough, a licence must also be found. cvxpy tries MOSEK first whenever the package
is importable, licensed or not, so every cvxpy call in :mod:`bilevel.solvers` names its solver
explicitly, and MOSEK is used only when asked for *and* :func:`mosek_licensed` is true.
"""

from __future__ import annotations

import functools

__all__ = ["available_lp_solvers", "mosek_licensed"]


@functools.cache
def mosek_licensed() -> bool:
    """Whether MOSEK is installed *and* a licence can be checked out.

    The check imports ``mosek``, creates an environment and checks out (then returns) the
    ``pts`` feature licence. It never raises and never prints; the answer is cached for the
    life of the process.

    Returns
    -------
    bool
        True only if a MOSEK solve can actually run.

    Examples
    --------
    >>> isinstance(mosek_licensed(), bool)
    True
    """
    try:
        import mosek  # optional dependency, imported lazily

        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
            env.checkinlicense(mosek.feature.pts)
    except Exception:  # not installed, no licence, expired, server down, ...
        return False
    return True


def available_lp_solvers() -> tuple[str, ...]:
    """Names accepted by ``solve_lp(..., solver=...)`` that can run on this machine.

    Returns
    -------
    tuple of str
        ``("highs", "cvxpy")``, plus ``"mosek"`` when :func:`mosek_licensed` is true.

    Examples
    --------
    >>> available_lp_solvers()[:2]
    ('highs', 'cvxpy')
    """
    return ("highs", "cvxpy", "mosek") if mosek_licensed() else ("highs", "cvxpy")
