"""``exploitability``: one entry point for static-report, sequential-price and dynamic
mechanisms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bilevel.audit._result import Exploitability
from bilevel.models import Environment

if TYPE_CHECKING:
    from bilevel.models.dynamic import BanditAuctionSetting
    from bilevel.models.spm import SPMSetting
    from bilevel.spm import SPMDesigner

__all__ = ["exploitability"]


def exploitability(
    problem: Environment | str | SPMSetting | SPMDesigner | BanditAuctionSetting,
    mechanism: object = None,
    **options: Any,
) -> Exploitability:
    """Exploitability of a mechanism: the summed best unilateral deviation gains at truth.

    Dispatches on the problem:

    * an :class:`~bilevel.models.Environment` (or a registered environment name) — a
      static-report mechanism (AMA, VCG, the optimal mechanism, any ``DirectMechanism``) audited
      by :func:`~bilevel.audit.static_exploitability`: every agent's best misreport scored with
      its true type (options ``samples``, ``seed``, ``notion``, ``grid``, ``refine``, ``inner``,
      ``support``, ``inner_samples``);
    * an :class:`~bilevel.models.spm.SPMSetting` or a fitted :class:`~bilevel.spm.SPMDesigner`
      — a sequential price mechanism audited by :func:`~bilevel.audit.spm_exploitability`:
      every feasible bundle forced at every visit (options ``samples``, ``seed``,
      ``statistic``, ``tie``, ``horizon``, ``price_grid``, ``response``, ``exact_limit``);
    * a :class:`~bilevel.models.dynamic.BanditAuctionSetting` — a dynamic mechanism (reports
      every period, evolving types) audited by :func:`~bilevel.audit.dynamic_exploitability`
      (options ``estimator`` = "exact" | "clairvoyant" | "learned", ``episodes``, ``seeds``,
      ``eval_episodes``, ``seed``, ``strength``, ``config``, ``progress``, ``max_seconds``).

    Parameters
    ----------
    problem : Environment, str, SPMSetting, SPMDesigner or BanditAuctionSetting
    mechanism : object
        What the chosen auditor accepts.
    **options
        Keyword options of the chosen auditor (an unknown one raises TypeError).

    Returns
    -------
    Exploitability

    Examples
    --------
    >>> from bilevel import make_env, vcg
    >>> env = make_env("sales", n_agents=2, n_items=1)
    >>> exploitability(env, vcg(env), samples=200).max_gain <= 1e-9
    True
    >>> from bilevel.models.dynamic import make_bandit_setting, posted_price
    >>> s = make_bandit_setting("discrete", horizon=3)
    >>> round(exploitability(s, posted_price(s, 1.5)).total, 6)
    0.10932
    """
    if isinstance(problem, (Environment, str)):
        from bilevel.audit._static import static_exploitability

        # static_exploitability checks the mechanism's type itself (a one-line TypeError).
        return static_exploitability(problem, mechanism, **options)  # type: ignore[arg-type]
    from bilevel.models.spm import SPMSetting
    from bilevel.spm import SPMDesigner

    if isinstance(problem, (SPMSetting, SPMDesigner)):
        from bilevel.audit._spm import spm_exploitability

        return spm_exploitability(problem, mechanism, **options)
    from bilevel.audit._dynamic import dynamic_exploitability
    from bilevel.models.dynamic import BanditAuctionSetting

    if not isinstance(problem, BanditAuctionSetting):
        raise TypeError(
            "expected an Environment, an environment name, an SPMSetting, an SPMDesigner or a "
            f"BanditAuctionSetting, got {type(problem).__name__}"
        )
    return dynamic_exploitability(problem, mechanism, **options)
