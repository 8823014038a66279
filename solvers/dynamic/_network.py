"""The learned mechanism network of the bandit auction, and its weights-only files.

:class:`MechanismNet` is a torch module whose call ``net(history, cumulative)`` is a
:data:`bilevel.models.dynamic.Mechanism`: from the report profiles of periods ``0..τ``
(``history`` (E, τ+1, n, m), the last one current) and the allocations executed before ``τ``
(``cumulative`` (E, n, m)) it returns allocation probabilities (E, n+1, m) — row 0 is the null
buyer, a softmax per good over buyers + null, so each column sums to 1 — and payments (E, n),
unconstrained in sign.

Architecture (the paper's four input streams and two heads, with the widths we chose where it
is silent). Reports are scaled to [0, 1] by the setting's ``bounds``; then

* ``h_report = ReLU(Linear(n m → embed))`` of the current report profile;
* ``h_alloc = ReLU(Linear(n m → embed))`` of the cumulative allocation divided by ``T``;
* ``h_hist``: each past report profile goes through ``Linear(n m → hist)``, then one attention
  head with a learned query and keys and values of width ``hist`` pools them (an empty history,
  ``τ = 0``, pools to zeros; every row of a batch has the same ``τ``, so no padding is needed);
* the period ``τ / (T − 1)`` (0 when ``T = 1``);
* optionally ``h_type = ReLU(Linear(n m → embed))`` of a "type" stream (see ``type_stream``).

Their concatenation goes through a shared 2-layer MLP (``hidden``-``hidden``, ReLU); the
allocation head is ``Linear(hidden → (n+1) m)`` with a softmax per good, the payment head
``Linear(hidden → embed)``, ReLU, ``Linear(embed → n)``. Both heads start with small gains and
zero biases, so the initial mechanism allocates nearly uniformly and charges nearly nothing.

``type_stream``
    ``"none"`` (default): the network sees the reports only — the only choice under which
    exploitability (a buyer's gain from misreporting) means anything. ``"reports"``: the type
    slot receives the current reports again (the paper's four-stream architecture with nothing
    leaked). ``"true"``: the type slot receives the *true* current values passed as ``types``;
    this replicates the paper literally but lets the mechanism punish any misreport it can see,
    so the exploitability of such a mechanism is meaningless (an ablation only).

:func:`save_mechanism` writes a directory with ``weights.pt`` (``torch.save`` of the state dict:
tensors only) and ``config.json`` (:meth:`MechanismNet.to_config`); :func:`load_mechanism` reads
them back with ``torch.load(..., weights_only=True)`` and never unpickles an object.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bilevel.models.dynamic import BanditAuctionSetting
from bilevel.solvers.rl._policy import load_weights

__all__ = ["TYPE_STREAMS", "MechanismNet", "load_mechanism", "save_mechanism"]

Tensor = torch.Tensor

#: What the network's type slot receives (see the module docstring).
TYPE_STREAMS = ("none", "reports", "true")

#: Last-layer gains of the two heads: near-uniform allocations, near-zero payments at init.
_HEAD_GAIN = 0.01

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

_WEIGHTS = "weights.pt"
_CONFIG = "config.json"
_WRITER = "bilevel.solvers.dynamic.save_mechanism"


def _linear(d_in: int, d_out: int, gain: float, gen: torch.Generator, dtype: torch.dtype,
            bias: bool = True) -> nn.Linear:
    lin = nn.Linear(d_in, d_out, bias=bias, dtype=dtype)
    with torch.no_grad():
        nn.init.orthogonal_(lin.weight, gain=gain, generator=gen)
        if lin.bias is not None:
            nn.init.zeros_(lin.bias)
    return lin


def _positive_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected {what} as an int >= 1, got {value!r}")
    return value


def _shape(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


class MechanismNet(nn.Module):
    """A learned dynamic mechanism of the bandit auction; an instance is a ``Mechanism``.

    Parameters
    ----------
    setting : BanditAuctionSetting
        Gives ``n`` buyers, ``m`` goods, the horizon ``T`` and the report ``bounds``.
    type_stream : {"none", "reports", "true"}, optional
        What the type slot sees: nothing (default), the current reports again, or the true
        current values (an ablation that makes exploitability meaningless; see the module
        docstring).
    hidden : int, optional
        Width of the shared MLP (default 128).
    embed : int, optional
        Width of the report, type and cumulative-allocation embeddings and of the payment
        head's hidden layer (default 64).
    hist : int, optional
        Width of the past-report embeddings and of the attention keys and values (default 16).
    generator : torch.Generator, optional
        Source of the initial weights (default: a CPU generator seeded with 0).
    dtype : torch.dtype, optional
        ``torch.float64`` (default) or ``torch.float32``; inputs are cast to it.

    Raises
    ------
    TypeError
        For a setting that is not a :class:`BanditAuctionSetting`, or a bad generator / dtype.
    ValueError
        For an unknown ``type_stream`` or a width that is not an int >= 1.

    Examples
    --------
    >>> import torch
    >>> from bilevel.models.dynamic import make_bandit_setting
    >>> s = make_bandit_setting("discrete", n_buyers=2, horizon=3)
    >>> net = MechanismNet(s, generator=torch.Generator().manual_seed(0))
    >>> x, p = net(torch.full((4, 2, 2, 1), 2.0), torch.zeros(4, 2, 1))
    >>> x.shape, p.shape
    (torch.Size([4, 3, 1]), torch.Size([4, 2]))
    >>> bool(torch.allclose(x.sum(1), torch.ones_like(x[:, 0]), atol=1e-12))
    True
    """

    def __init__(
        self,
        setting: BanditAuctionSetting,
        *,
        type_stream: str = "none",
        hidden: int = 128,
        embed: int = 64,
        hist: int = 16,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if not isinstance(setting, BanditAuctionSetting):
            raise TypeError(f"expected a BanditAuctionSetting, got {type(setting).__name__}")
        if type_stream not in TYPE_STREAMS:
            raise ValueError(f"expected type_stream in {TYPE_STREAMS}, got {type_stream!r}")
        hidden = _positive_int(hidden, "hidden")
        embed = _positive_int(embed, "embed")
        hist = _positive_int(hist, "hist")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"expected a torch.Generator or None, got {type(generator).__name__}")
        if dtype not in _DTYPES.values():
            raise TypeError(f"expected dtype torch.float32 or torch.float64, got {dtype!r}")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.setting = setting
        self.type_stream = type_stream
        self.hidden, self.embed, self.hist = hidden, embed, hist
        self.dtype = dtype
        n, m = setting.n_buyers, setting.n_goods
        d, relu = n * m, math.sqrt(2.0)
        lo, hi = setting.bounds
        self._lo, self._span = float(lo), float(hi - lo) if hi > lo else 1.0

        self.f_type = _linear(d, embed, relu, gen, dtype) if type_stream != "none" else None
        self.f_report = _linear(d, embed, relu, gen, dtype)
        self.f_alloc = _linear(d, embed, relu, gen, dtype)
        self.f_hist = _linear(d, hist, 1.0, gen, dtype)
        self.key = _linear(hist, hist, 1.0, gen, dtype, bias=False)
        self.value = _linear(hist, hist, 1.0, gen, dtype, bias=False)
        query = torch.randn(hist, generator=gen, dtype=dtype) / math.sqrt(hist)
        self.query = nn.Parameter(query)
        d_shared = embed * (3 if self.f_type is not None else 2) + hist + 1
        self.shared = nn.Sequential(
            _linear(d_shared, hidden, relu, gen, dtype), nn.ReLU(),
            _linear(hidden, hidden, relu, gen, dtype), nn.ReLU(),
        )
        self.alloc_head = _linear(hidden, (n + 1) * m, _HEAD_GAIN, gen, dtype)
        self.pay_head = nn.Sequential(
            _linear(hidden, embed, relu, gen, dtype), nn.ReLU(),
            _linear(embed, n, _HEAD_GAIN, gen, dtype),
        )

    # ------------------------------------------------------------------ the mechanism

    def _check(self, history: object, cumulative: object, types: object) -> int:
        n, m, T = self.setting.n_buyers, self.setting.n_goods, self.setting.horizon
        if (not isinstance(history, Tensor) or history.ndim != 4
                or tuple(history.shape[2:]) != (n, m) or not 1 <= history.shape[1] <= T):
            raise ValueError(
                f"expected history of shape (E, τ+1, n, m) = (E, τ+1, {n}, {m}) with "
                f"1 <= τ+1 <= T = {T}, got {_shape(history)}"
            )
        E = int(history.shape[0])
        if not isinstance(cumulative, Tensor) or tuple(cumulative.shape) != (E, n, m):
            raise ValueError(
                f"expected cumulative of shape (E, n, m) = ({E}, {n}, {m}), got "
                f"{_shape(cumulative)}"
            )
        if self.type_stream == "true":
            if types is None:
                raise ValueError(
                    "expected types (the true current values, shape (E, n, m)) with "
                    "type_stream='true', got None"
                )
            if not isinstance(types, Tensor) or tuple(types.shape) != (E, n, m):
                raise ValueError(
                    f"expected types of shape (E, n, m) = ({E}, {n}, {m}), got {_shape(types)}"
                )
        return int(history.shape[1]) - 1

    def _scale(self, values: Tensor) -> Tensor:
        return (values.to(self.dtype) - self._lo) / self._span

    def forward(
        self, history: Tensor, cumulative: Tensor, types: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Allocation probabilities and payments of period ``τ = history.shape[1] − 1``.

        Parameters
        ----------
        history : Tensor, shape (E, τ+1, n, m)
            Report profiles of periods ``0..τ``; the last is the current one. ``τ <= T − 1``.
        cumulative : Tensor, shape (E, n, m)
            Allocations executed before ``τ`` (counts or summed probabilities).
        types : Tensor, shape (E, n, m), optional
            The true current values; read only with ``type_stream="true"`` (where it is
            required), ignored otherwise.

        Returns
        -------
        allocation : Tensor, shape (E, n+1, m)
            Row 0 is the null buyer; each column sums to 1.
        payments : Tensor, shape (E, n)

        Raises
        ------
        ValueError
            For inputs whose shapes do not match the setting, or missing ``types`` with
            ``type_stream="true"``.
        """
        tau = self._check(history, cumulative, types)
        n, m, T = self.setting.n_buyers, self.setting.n_goods, self.setting.horizon
        E = history.shape[0]
        reports = self._scale(history).reshape(E, tau + 1, n * m)
        current = reports[:, -1]
        h_report = torch.relu(self.f_report(current))
        h_alloc = torch.relu(self.f_alloc(cumulative.to(self.dtype).reshape(E, n * m) / T))
        if tau == 0:
            h_hist = current.new_zeros(E, self.hist)
        else:
            past = self.f_hist(reports[:, :-1])  # (E, τ, hist)
            scores = self.key(past) @ self.query / math.sqrt(self.hist)  # (E, τ)
            weights = torch.softmax(scores, dim=1)
            h_hist = (weights.unsqueeze(-1) * self.value(past)).sum(1)
        period = current.new_full((E, 1), tau / (T - 1) if T > 1 else 0.0)
        parts = [h_report, h_alloc, h_hist, period]
        if self.f_type is not None:
            # types is not None with "true": _check raised otherwise
            if self.type_stream == "true" and types is not None:
                slot = self._scale(types).reshape(E, n * m)
            else:
                slot = current
            parts.insert(0, torch.relu(self.f_type(slot)))
        h = self.shared(torch.cat(parts, dim=1))
        allocation = torch.softmax(self.alloc_head(h).reshape(E, n + 1, m), dim=1)
        payments = self.pay_head(h)
        return allocation, payments

    # ------------------------------------------------------------------ files

    def to_config(self) -> dict[str, Any]:
        """Everything but the weights, as JSON-safe data.

        Returns
        -------
        dict
            ``{"kind": "MechanismNet", "setting": {…the setting's fields…}, "type_stream",
            "hidden", "embed", "hist", "dtype"}``; the costs are nested lists.

        Examples
        --------
        >>> from bilevel.models.dynamic import make_bandit_setting
        >>> cfg = MechanismNet(make_bandit_setting("discrete")).to_config()
        >>> cfg["type_stream"], cfg["hidden"], cfg["setting"]["horizon"], cfg["dtype"]
        ('none', 128, 3, 'float64')
        """
        setting = json.loads(json.dumps(dataclasses.asdict(self.setting), allow_nan=False))
        dtype = next(k for k, v in _DTYPES.items() if v == self.dtype)
        return {
            "kind": "MechanismNet",
            "setting": setting,
            "type_stream": self.type_stream,
            "hidden": self.hidden,
            "embed": self.embed,
            "hist": self.hist,
            "dtype": dtype,
        }


def save_mechanism(net: MechanismNet, path: str | Path) -> Path:
    """Write a :class:`MechanismNet` as a directory: ``weights.pt`` and ``config.json``.

    Parameters
    ----------
    net : MechanismNet
    path : str or Path
        The directory (created if needed; the two files in it are overwritten).

    Returns
    -------
    Path
        The directory.

    Raises
    ------
    TypeError
        If ``net`` is not a :class:`MechanismNet`.
    """
    if not isinstance(net, MechanismNet):
        raise TypeError(f"expected a MechanismNet, got {type(net).__name__}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    torch.save(state, out / _WEIGHTS)
    text = json.dumps(net.to_config(), indent=2, sort_keys=True, allow_nan=False)
    (out / _CONFIG).write_text(text + "\n")
    return out


def _read_config(path: Path) -> dict[str, Any]:
    file = path / _CONFIG
    if not file.is_file():
        raise FileNotFoundError(
            f"expected a directory written by {_WRITER} holding {_CONFIG}, got {str(path)!r}"
        )
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        cfg = None
    if (not isinstance(cfg, dict) or cfg.get("kind") != "MechanismNet"
            or not isinstance(cfg.get("setting"), dict)
            or cfg.get("dtype") not in _DTYPES):
        raise ValueError(
            f"expected {str(file)!r} to be the JSON config of a MechanismNet (written by "
            f"{_WRITER}), got a garbled or foreign file"
        )
    return cfg


def load_mechanism(path: str | Path) -> MechanismNet:
    """Read a :class:`MechanismNet` written by :func:`save_mechanism`.

    The weights are read with ``torch.load(..., weights_only=True)``: a file holding anything but
    tensors and plain data is refused and never unpickled. The setting is rebuilt (and
    re-validated) from the JSON config.

    Parameters
    ----------
    path : str or Path
        The directory holding ``weights.pt`` and ``config.json``.

    Returns
    -------
    MechanismNet
        In evaluation mode (it has no dropout or normalisation, so this changes nothing).

    Raises
    ------
    FileNotFoundError
        If either file is missing.
    ValueError
        One line, for a garbled config, an invalid setting or architecture, a weights file that
        is not tensors only, or weights that do not fit the architecture.
    """
    folder = Path(path)
    cfg = _read_config(folder)
    weights = folder / _WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(
            f"expected a directory written by {_WRITER} holding {_WEIGHTS}, got {str(folder)!r}"
        )
    try:
        setting = BanditAuctionSetting(**cfg["setting"])
        net = MechanismNet(
            setting,
            type_stream=cfg.get("type_stream", "none"),
            hidden=cfg.get("hidden", 128),
            embed=cfg.get("embed", 64),
            hist=cfg.get("hist", 16),
            dtype=_DTYPES[cfg["dtype"]],
        )
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"expected a valid MechanismNet config in {str(folder / _CONFIG)!r}, got: {e}"
        ) from None
    state = load_weights(weights, _WRITER)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ValueError(
            f"expected {str(weights)!r} to hold a state dict of tensors, got "
            f"{type(state).__name__}"
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError:
        expected = sorted(net.state_dict())
        raise ValueError(
            f"expected the weights in {str(weights)!r} to fit the config ({len(expected)} "
            f"tensors: {', '.join(expected)} of the configured shapes), got "
            f"{len(state)} tensors that do not"
        ) from None
    return net.eval()
