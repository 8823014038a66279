"""One generic registry of named constructors, and the registry of environments.

:class:`Registry` maps short names to keyword-only constructors (``builder(**params) -> T``)
and builds instances by name. The package keeps three of them, each behind thin functions:

* environments — :func:`register_env`, :func:`make_env`, :func:`list_envs` (this module);
* SPM settings — ``bilevel.models.spm``: ``register_spm_setting``, ``make_spm_setting``,
  ``list_spm_settings``;
* Stackelberg games — ``bilevel.models.stackelberg``: ``register_game``, ``make_game``,
  ``list_games`` (which also read the colon form ``"normal_form:game_2:randomized"``).

Every registered instance passes its conformance checker (``bilevel.models.check_env``,
``check_spm_setting``, ``check_game``); a test runs each checker over every registered name.

Examples
--------
>>> reg = Registry("a shape", returns=tuple)
>>> reg.register("square", lambda *, side=1: (side, side), "two equal sides")
>>> reg.make("square", side=3)
(3, 3)
>>> reg.names(), reg.list()[0].parameters
(['square'], {'side': 1})
>>> reg.make("circle")
Traceback (most recent call last):
...
ValueError: expected a shape in ['square'], got 'circle'
>>> reg.make("square", radius=2)
Traceback (most recent call last):
...
ValueError: expected parameters of 'square' among ['side'], got unknown ['radius']
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import inspect
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar, cast

from bilevel.models._env import Environment

__all__ = ["ENTRY_POINT_GROUP", "EnvSpec", "Registry", "Spec", "list_envs", "make_env",
           "register_env", "resolve_factory"]

#: The entry-point group of environment plugins: ``name = "package.module:factory"``.
ENTRY_POINT_GROUP = "bilevel.environments"


T = TypeVar("T")

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class Spec(Generic[T]):
    """A registered constructor.

    Attributes
    ----------
    name : str
        Registry name.
    builder : callable returning T
        Keyword-only constructor.
    description : str
        One line for listings.
    """

    name: str
    builder: Callable[..., T]
    description: str

    @property
    def parameters(self) -> dict[str, Any]:
        """Constructor parameters with their defaults (None where there is no default).

        ``*args`` / ``**kwargs`` of the builder are not listed (see :attr:`open_keywords`).
        """
        sig = inspect.signature(self.builder)
        return {
            k: (None if p.default is inspect.Parameter.empty else p.default)
            for k, p in sig.parameters.items()
            if p.kind not in _VARIADIC
        }

    @property
    def open_keywords(self) -> bool:
        """Whether the builder takes ``**kwargs`` (then any keyword is passed on)."""
        sig = inspect.signature(self.builder)
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


class Registry(Generic[T]):
    """Named keyword-only constructors of ``T``, built by name.

    Parameters
    ----------
    kind : str
        What a name designates, with its article, for messages: ``"an environment name"``
        gives "expected an environment name in ['gridworld', ...], got 'x'".
    returns : type or tuple of type, optional
        What every builder must return; :meth:`make` raises ``TypeError`` otherwise.
    spec_type : type of Spec, default Spec
        The record stored per name (a subclass such as :class:`EnvSpec`).
    forbidden : str, default ""
        Characters a registered name may not contain (``":"`` for games, whose colon form
        is parsed before the registry is asked).

    Notes
    -----
    **Duplicates**: registering a name that is already registered *replaces* the previous
    constructor (the last registration wins, with no warning), so a user can override a
    built-in entry; instances built before keep what they were built with.

    Examples
    --------
    See the module docstring.
    """

    def __init__(
        self,
        kind: str,
        *,
        returns: type | tuple[type, ...] | None = None,
        spec_type: type[Spec[T]] = Spec,
        forbidden: str = "",
    ) -> None:
        self.kind = kind
        self.returns = returns
        self.spec_type = spec_type
        self.forbidden = forbidden
        self._specs: dict[str, Spec[T]] = {}

    # ------------------------------------------------------------------ registering
    def register(self, name: str, builder: Callable[..., T], description: str = "") -> None:
        """Register ``builder`` under ``name``, replacing any previous constructor of that name.

        Parameters
        ----------
        name : str
            Non-empty, without the :attr:`forbidden` characters.
        builder : callable (**params) -> T
        description : str, optional
            One line for listings.

        Raises
        ------
        ValueError
            For an empty name or one with a forbidden character.
        TypeError
            If ``builder`` is not callable or ``description`` is not a str.
        """
        bad = [c for c in self.forbidden if isinstance(name, str) and c in name]
        if not isinstance(name, str) or not name or bad:
            without = f" without {self.forbidden!r}" if self.forbidden else ""
            raise ValueError(f"expected a registry name as a non-empty str{without}, got {name!r}")
        if not callable(builder):
            raise TypeError(f"expected a callable builder, got {type(builder).__name__}")
        if not isinstance(description, str):
            raise TypeError(f"expected description as a str, got {type(description).__name__}")
        self._specs[name] = self.spec_type(name, builder, description)

    # ------------------------------------------------------------------ looking up
    def names(self) -> builtins.list[str]:
        """The registered names, sorted."""
        return sorted(self._specs)

    def list(self) -> builtins.list[Spec[T]]:
        """The registered constructors, sorted by name."""
        return [self._specs[k] for k in self.names()]

    def get(self, name: str) -> Spec[T] | None:
        """The constructor registered under ``name``, or None."""
        return self._specs.get(name)

    def spec(self, name: str) -> Spec[T]:
        """The constructor registered under ``name``.

        Raises
        ------
        TypeError
            If ``name`` is not a str.
        ValueError
            For an unknown name: "expected <kind> in [<names>], got 'x'".
        """
        if not isinstance(name, str):
            raise TypeError(f"expected {self.kind} as a str, got {type(name).__name__}")
        spec = self._specs.get(name)
        if spec is None:
            raise ValueError(f"expected {self.kind} in {self.names()}, got {name!r}")
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    # ------------------------------------------------------------------ building
    def make(self, name: str, **kwargs: Any) -> T:
        """Build the instance registered under ``name`` from keyword arguments.

        Parameters
        ----------
        name : str
            A registered name (see :meth:`names`).
        **kwargs
            The constructor's keyword arguments; omitted ones take its defaults.

        Returns
        -------
        T

        Raises
        ------
        ValueError
            For an unknown name ("expected <kind> in [...], got 'x'") or a keyword the
            constructor does not take ("expected parameters of 'x' among [...], got unknown
            [...]").
        TypeError
            If ``name`` is not a str, or the builder returns something other than
            :attr:`returns`.
        """
        spec = self.spec(name)
        if not spec.open_keywords:
            known = spec.parameters
            unknown = sorted(set(kwargs) - set(known))
            if unknown:
                raise ValueError(
                    f"expected parameters of {name!r} among {sorted(known)}, got unknown {unknown}"
                )
        out = spec.builder(**kwargs)
        if self.returns is not None and not isinstance(out, self.returns):
            want = (
                self.returns.__name__
                if isinstance(self.returns, type)
                else " or ".join(t.__name__ for t in self.returns)
            )
            raise TypeError(
                f"expected the builder of {name!r} to return an instance of {want}, got "
                f"{type(out).__name__}"
            )
        return out


class EnvSpec(Spec[Environment]):
    """A registered environment constructor (see :class:`bilevel.models._registry.Spec`)."""


#: The registry of environments (:func:`make_env`); ``Environment.identity`` reads it.
ENVIRONMENTS: Registry[Environment] = Registry(
    "an environment name", returns=Environment, spec_type=EnvSpec
)


def register_env(name: str, builder: Callable[..., Environment], description: str = "") -> None:
    """Register an environment constructor under ``name`` (replacing any previous one).

    Parameters
    ----------
    name : str
        Non-empty.
    builder : callable (**params) -> Environment
    description : str, optional
        One line for ``bilevel envs``.

    Raises
    ------
    ValueError
        For an empty name.
    TypeError
        If ``builder`` is not callable.
    """
    ENVIRONMENTS.register(name, builder, description)


def resolve_factory(spec: str) -> Callable[..., Environment]:
    """The environment factory named ``"package.module:function"``, imported.

    Parameters
    ----------
    spec : str
        A module path and an attribute path, separated by one colon
        (``"my_envs:auction"``, ``"pkg.envs:Factories.auction"``).

    Returns
    -------
    callable (**params) -> Environment

    Raises
    ------
    ValueError
        If ``spec`` is not of that form, its module cannot be imported, it has no such
        attribute, or the attribute is not callable (one line, naming the spec).
    """
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr or ":" in attr or not all(
        part.isidentifier() for part in (*module.split("."), *attr.split("."))
    ):
        raise ValueError(
            f"expected an environment factory as 'package.module:function', got {spec!r}"
        )
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(
            f"expected an importable module in environment factory {spec!r}, got "
            f"{type(e).__name__}: {e} (is it on sys.path / PYTHONPATH?)"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(
                f"expected module {module!r} to define {attr!r} (environment factory "
                f"{spec!r}), got no attribute {part!r}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(
            f"expected environment factory {spec!r} to be callable, got {type(obj).__name__}"
        )
    return cast("Callable[..., Environment]", obj)


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _plugins() -> dict[str, Any]:
    """The entry points of :data:`ENTRY_POINT_GROUP` whose names are not registered."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)
            if ep.name not in ENVIRONMENTS}


def _load_plugin(name: str, ep: Any) -> None:
    """Register the builder of plugin entry point ``ep`` under ``name``."""
    try:
        builder = ep.load()
    except Exception as e:  # a broken plugin: one line naming it
        raise ValueError(
            f"expected environment plugin {name!r} ({ep.value!r}, entry-point group "
            f"{ENTRY_POINT_GROUP!r}) to load, got {type(e).__name__}: {e}"
        ) from None
    ENVIRONMENTS.register(name, builder, _first_line(builder))


def list_envs() -> list[EnvSpec]:
    """All registered environments, sorted by name.

    Environment plugins (entry points of the group ``"bilevel.environments"``) are loaded and
    listed too; one that fails to load is left out with a warning.
    """
    for name, ep in _plugins().items():
        try:
            _load_plugin(name, ep)
        except ValueError as e:
            warnings.warn(str(e), RuntimeWarning, stacklevel=2)
    return cast("list[EnvSpec]", ENVIRONMENTS.list())


def make_env(name: str, **kwargs: Any) -> Environment:
    """Build a registered environment, a plugin's or a factory's.

    Parameters
    ----------
    name : str
        One of ``[spec.name for spec in list_envs()]`` (``"sales"``, ``"scheduling"``,
        ``"gridworld"``, ``"matching"``, the names of :func:`register_env` and of installed
        plugins: entry points of the group ``"bilevel.environments"``), or an environment
        factory ``"package.module:function"`` (:func:`resolve_factory`), called with
        ``**kwargs``.
    **kwargs
        The constructor's keyword arguments (see each environment's docstring).

    Returns
    -------
    Environment
        Remembering its name and keywords (it pickles as them, so it reaches worker
        processes, which rebuild it; its identity is them).

    Raises
    ------
    ValueError
        For an unknown name or an unknown parameter, a bad factory spec or a factory that
        cannot be imported.
    TypeError
        If the name is not a str or the builder does not return an Environment.

    Examples
    --------
    >>> env = make_env("sales", n_agents=3, n_items=2, dist="uniform")
    >>> env.mdp.shape
    (5, 4)
    >>> make_env("bilevel.models:sales", n_agents=2).mdp.shape == make_env(
    ...     "sales", n_agents=2).mdp.shape
    True
    """
    if isinstance(name, str) and ":" in name:
        builder = resolve_factory(name)
        factory: Registry[Environment] = Registry(
            "an environment factory", returns=Environment, spec_type=EnvSpec)
        factory.register(name, builder)
        env = factory.make(name, **kwargs)
    else:
        if isinstance(name, str) and name not in ENVIRONMENTS:
            ep = _plugins().get(name)
            if ep is not None:
                _load_plugin(name, ep)
        env = ENVIRONMENTS.make(name, **kwargs)
    return dataclasses.replace(env, origin=(name, dict(kwargs)))
