"""The contract every designer keeps: hyper-parameters, validation, fitting, results.

A designer is configured by keyword hyper-parameters only, fitted on a problem, and read
through fitted attributes — scikit-learn's estimator protocol, so ``sklearn.base.clone`` and
parameter grids work on every designer of the library::

    designer = Designer(**hyperparameters)        # stores them as given, checks nothing
    designer.fit(problem) is designer             # problem: an object or its registry name
    designer.mechanism_ / .policy_                # the designed artefact
    designer.result_, .history_, .evaluation_     # how the fit went and how good it is
    designer.get_params(), designer.set_params(steps=10), repr(designer)
    designer.save(path); bilevel.load(path)        # one save/load verb for every artefact

Shared hyper-parameters have one name and one meaning across designers and the CLI
(:data:`GLOSSARY`); their old names are accepted for one release with a
``DeprecationWarning`` (each designer's ``_renamed`` table). Values are checked in ``fit``
against one table (:data:`RULES`) with one error template (:func:`bad_parameter`):
``"AMADesigner: expected steps as an int >= 1, got 0"``.

Every outer result (AMA search, PPO training, SPM and Stackelberg designs) speaks one
vocabulary (:class:`OuterResult`): ``success``, ``status`` (:class:`RunStatus`), ``message``,
``nit``, ``wall_time`` and ``stats``.
"""

from __future__ import annotations

import copy
import enum
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

__all__ = [
    "GLOSSARY",
    "RULES",
    "Designer",
    "OuterResult",
    "Rule",
    "RunStatus",
    "bad_parameter",
    "check_parameters",
    "choice_rule",
    "int_rule",
    "nonnegative_rule",
    "positive_rule",
]

GLOSSARY: Mapping[str, str] = {
    "seed": "seed of every random stream of the fit; results depend on it alone",
    "steps": "training budget in the method's unit: gradient steps (AMA first/zeroth order), "
             "environment steps (PPO designers)",
    "learning_rate": "step size of the optimiser (Adam unless stated)",
    "eval_every": "steps (AMA) or PPO updates between the held-out evaluations that choose "
                  "the returned checkpoint",
    "eval_samples": "fresh profiles or episodes of the final evaluation (0 skips it)",
    "threads": "torch intra-op threads during fit, restored afterwards (None: torch's setting)",
    "max_seconds": "wall-time limit of the fit (None: no limit); a run it stops says so",
    "progress": "show progress bars on stderr",
    "device": "torch device of the batched solvers",
    "objective": "what the designer maximises (or minimises: makespan)",
    "callback": "called after each step with the intermediate result; may raise StopIteration",
    "checkpoint": "where the fit saves its state to resume after a kill",
    "checkpoint_every": "seconds between checkpoint saves",
}
"""Shared hyper-parameter names and their meaning (the CLI flags are the same names)."""


class RunStatus(enum.StrEnum):
    """Why an outer run ended."""

    COMPLETED = "completed"
    """The budget was spent (or the method converged)."""
    STEP_LIMIT = "step_limit"
    """Stopped at ``max_steps`` before the method's own end."""
    TIME_LIMIT = "time_limit"
    """Stopped by ``max_seconds``."""
    CALLBACK = "callback"
    """Stopped by the callback (``StopIteration``)."""
    FAILED = "failed"
    """The run failed; ``message`` says why."""


@runtime_checkable
class OuterResult(Protocol):
    """What every outer result reports (AMA search, PPO training, SPM and Stackelberg)."""

    @property
    def success(self) -> bool:
        """False only if the run failed (stopping by a limit or callback is a success)."""
        ...

    @property
    def status(self) -> RunStatus:
        """Why the run ended."""
        ...

    @property
    def message(self) -> str:
        """The reason in words."""
        ...

    @property
    def nit(self) -> int:
        """Steps (or updates) run."""
        ...

    @property
    def wall_time(self) -> float:
        """Seconds spent."""
        ...

    @property
    def stats(self) -> Mapping[str, Any]:
        """Method-specific figures."""
        ...


# ---------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Rule:
    """One row of the validation table: what a value must be, and the test."""

    expects: str
    """Completes "expected <name> …", e.g. ``"as an int >= 1"``."""
    test: Callable[[Any], bool]
    error: type[Exception] = ValueError
    """Raised when the value has the right type but breaks the rule."""
    right_type: Callable[[Any], bool] | None = None
    """When given and False for a value, the error is a ``TypeError`` instead."""


def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _is_real(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))


def int_rule(low: int, *, optional: bool = False) -> Rule:
    """An int ``>= low`` (or None)."""
    text = f"as an int >= {low}" + (" or None" if optional else "")
    return Rule(text, lambda v: (optional and v is None) or (_is_int(v) and v >= low),
                right_type=lambda v: (optional and v is None) or _is_int(v))


def positive_rule(*, optional: bool = False) -> Rule:
    """A finite real ``> 0`` (or None)."""
    text = "as a finite float > 0" + (" or None" if optional else "")
    return Rule(text, lambda v: (optional and v is None)
                or (_is_real(v) and math.isfinite(v) and v > 0),
                right_type=lambda v: (optional and v is None) or _is_real(v))


def choice_rule(*options: Any) -> Rule:
    """One of ``options``."""
    return Rule(f"as one of {options}", lambda v: v in options)


def nonnegative_rule() -> Rule:
    """A finite real ``>= 0``."""
    return Rule("as a finite float >= 0", lambda v: _is_real(v) and math.isfinite(v) and v >= 0,
                right_type=_is_real)


RULES: Mapping[str, Rule] = {
    "seed": int_rule(0),
    "steps": int_rule(1),
    "learning_rate": positive_rule(optional=True),
    "eval_every": int_rule(1),
    "eval_samples": int_rule(0),
    "threads": int_rule(1, optional=True),
    "max_seconds": positive_rule(optional=True),
    "max_steps": int_rule(1, optional=True),
    "progress": Rule("as a bool", lambda v: isinstance(v, (bool, np.bool_)), TypeError),
    "checkpoint_every": nonnegative_rule(),
    "callback": Rule("as a callable or None", lambda v: v is None or callable(v), TypeError),
    "executor": Rule("as a concurrent.futures.Executor or None",
                     lambda v: v is None or isinstance(v, Executor), TypeError),
}
"""The validation table of the shared hyper-parameters (designers add their own rows)."""


def bad_parameter(owner: str, name: str, expects: str, value: Any,
                  error: type[Exception] = ValueError) -> Exception:
    """The one error template of every designer: ``"<owner>: expected <name> <expects>, got
    <value>"``."""
    shown = repr(value) if not isinstance(value, type) else value.__name__
    if len(shown) > 80:
        shown = f"a {type(value).__name__}"
    return error(f"{owner}: expected {name} {expects}, got {shown}")


def check_parameters(owner: str, params: Mapping[str, Any],
                     rules: Mapping[str, Rule] | None = None) -> None:
    """Check every parameter that has a rule (shared :data:`RULES` plus ``rules``).

    Raises
    ------
    TypeError
        On the first value of the wrong type (a float for an int), in the template of
        :func:`bad_parameter`.
    ValueError
        On the first value of the right type that breaks its rule.
    """
    table = {**RULES, **(rules or {})}
    for name, value in params.items():
        rule = table.get(name)
        if rule is not None and not rule.test(value):
            wrong_type = rule.right_type is not None and not rule.right_type(value)
            raise bad_parameter(owner, name, rule.expects, value,
                                TypeError if wrong_type else rule.error)


# ---------------------------------------------------------------------------- the base class

D = TypeVar("D", bound="Designer")


def _differs(value: Any, default: Any) -> bool:
    if value is default:
        return False
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # arrays and other objects without a plain ==
        return True


class Designer:
    """Base class of the designers: scikit-learn's ``get_params``/``set_params``/``clone``.

    Subclasses store every ``__init__`` argument unchanged under its own name (validation
    happens in ``fit``) and declare the old names of renamed hyper-parameters in
    ``_renamed``; ``__init__`` passes its ``**renamed`` keyword arguments to
    :meth:`_accept_renamed`.
    """

    _renamed: ClassVar[Mapping[str, str]] = {}
    """Deprecated hyper-parameter name -> its glossary name (accepted for one release)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(
            p.name for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values()
                if p.default is not inspect.Parameter.empty}

    def _renamed_to(self, name: str) -> str:
        new = self._renamed.get(name)
        if new is None:
            return name
        warnings.warn(
            f"{type(self).__name__}: the parameter {name!r} is now {new!r}; the old name goes "
            "in the next release",
            DeprecationWarning,
            stacklevel=4,
        )
        return new

    def _accept_renamed(self, renamed: Mapping[str, Any]) -> None:
        """Apply deprecated keyword arguments of ``__init__`` (warning once each)."""
        for old, value in renamed.items():
            if old not in self._renamed:
                raise TypeError(
                    f"{type(self).__name__}: expected a parameter among "
                    f"{self._param_names()}, got {old!r}"
                )
            setattr(self, self._renamed_to(old), value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as passed to ``__init__`` (scikit-learn's estimator protocol).

        Parameters
        ----------
        deep : bool, default True
            Also list the parameters of nested objects that have ``get_params`` (e.g. the
            searcher), as ``"<name>__<parameter>"``.
        """
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
            out[name] = value
        return out

    def set_params(self: D, **params: Any) -> D:
        """Set hyper-parameters; ``"<name>__<parameter>"`` sets a nested one.

        Returns
        -------
        Designer
            ``self``.

        Raises
        ------
        ValueError
            For a name that is not a hyper-parameter.
        """
        valid = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = self._renamed_to(key).partition("__")
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__}: expected a parameter among {valid}, got {key!r}"
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            target = getattr(self, name)
            if not hasattr(target, "set_params"):
                raise ValueError(
                    f"{type(self).__name__}: expected {name} with nested parameters, got "
                    f"{type(target).__name__}"
                )
            target.set_params(**sub_params)
        return self

    def __sklearn_clone__(self: D) -> D:
        """An unfitted copy with the same hyper-parameters (``sklearn.base.clone``).

        Executors are shared, not copied (they hold threads and processes); everything else
        is deep-copied, as scikit-learn does.
        """
        params = {
            k: v if isinstance(v, Executor) else copy.deepcopy(v)
            for k, v in self.get_params(deep=False).items()
        }
        return type(self)(**params)

    def __repr__(self) -> str:
        defaults = self._defaults()
        shown = [
            f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
            if k not in defaults or _differs(v, defaults[k])
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise ValueError(
                f"{type(self).__name__}: expected a fitted designer (call fit first), got an "
                "unfitted one"
            )
