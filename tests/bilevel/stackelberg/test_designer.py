"""StackelbergDesigner: smoke training that learns the reference optima of small games, exact
evaluation, save/load, the report, the CLI and bad input (reference §3.1 values)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bilevel.models.stackelberg import make_game
from bilevel.solvers.rl._policy import ActorCritic
from bilevel.solvers.rl._protocol import ActionSpec
from bilevel.solvers.stackelberg._exact import payoff_table
from bilevel.stackelberg._cli import register
from bilevel.stackelberg._designer import StackelbergDesigner
from bilevel.stackelberg._evaluation import evaluate_leader, worst_certified_value
from bilevel.stackelberg._report import compare_critics, stackelberg_report
from bilevel.stackelberg._result import StackelbergResult, load_stackelberg


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def game1() -> StackelbergResult:
    # normal-form game 1 ("Escape"): committing to row 2 earns 30/30 = 1.0 (reference §3.1)
    torch.set_num_threads(1)  # module-scoped fixtures run before the autouse one
    return StackelbergDesigner("normal_form:game_1", steps=20_000, seed=0, num_envs=16,
                               eval_every=5).fit()


def test_learns_normal_form_game1(game1: StackelbergResult) -> None:
    assert game1.leader_table == (2,)
    assert game1.value == pytest.approx(1.0, abs=1e-9)
    assert game1.certified and game1.bcce_gap <= 0.05
    assert game1.optimum == pytest.approx(1.0)
    assert game1.eval_steps.size == game1.eval_values.size >= 2
    assert game1.curve_objective.size > 0 and game1.env_steps >= 20_000


def test_simple_allocation_m1_value_is_one_third() -> None:
    r = StackelbergDesigner("simple_allocation:1", steps=3_000, seed=1, num_envs=4,
                            eval_every=0).fit()
    assert r.value == pytest.approx(1 / 3, abs=1e-9)
    assert r.certified


def test_evaluate_leader_of_a_hand_set_network() -> None:
    # a network whose Gaussian mean is (0.3, 0.7, 0) commits to that mixture in game 2:
    # the follower's response is column 0 and the leader earns (20·0.3 + 30·0.7)/30 = 0.9
    net = ActorCritic(1, 1, ActionSpec(continuous=3), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.actor.parameters():
            p.zero_()
        last = net.actor[-1]
        assert isinstance(last, torch.nn.Linear)
        last.bias.copy_(torch.tensor([0.3, 0.7, 0.0]))
    ev = evaluate_leader("normal_form:game_2:randomized", net, iterations=33)
    np.testing.assert_allclose(ev.table[0], [0.3, 0.7, 0.0], atol=1e-6)
    assert ev.value == pytest.approx(0.9, abs=1e-6)
    assert ev.episode_value == pytest.approx(0.9, abs=1e-6)
    assert ev.certified and ev.gap == pytest.approx(0.0, abs=1e-12)


def test_save_load_roundtrip(game1: StackelbergResult, tmp_path: Path) -> None:
    game1.save(tmp_path / "r")
    back = load_stackelberg(tmp_path / "r")
    assert back.value == game1.value and back.leader_table[0].tolist() == 2
    np.testing.assert_array_equal(back.eval_values, game1.eval_values)
    assert back.policy is not None
    obs = torch.ones(1, 1)
    mask = (torch.ones(1, 3, dtype=torch.bool),)
    assert game1.policy is not None
    assert torch.equal(back.policy.act(obs, mask).categorical,
                       game1.policy.act(obs, mask).categorical)
    with pytest.raises(ValueError, match=r"expected a directory with result\.json"):
        load_stackelberg(tmp_path / "missing")


def test_report_and_basic_pomdp(tmp_path: Path) -> None:
    res = compare_critics("simple_allocation:1", seeds=(0, 1), variants=("plain", "basic"),
                          steps=500, num_envs=4, eval_every=1)
    assert [len(v) for v in res.values()] == [2, 2]
    report = stackelberg_report(res, tmp_path)
    text = report.read_text()
    assert "| plain | 2 |" in text and "| basic | 2 |" in text and "0.3333" in text
    assert (tmp_path / "exact_value.png").stat().st_size > 0
    assert (tmp_path / "training_objective.png").stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {r["variant"] for r in summary["rows"]} == {"plain", "basic"}
    for r in res["basic"]:  # the basic POMDP only ever shows PPO the 30 reward games
        assert r.env_steps % (4 * 30) == 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bilevel")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["stackelberg", "simple_allocation:1", "--steps", "500",
                                 "--envs", "4", "--eval-every", "0", "--out", str(tmp_path),
                                 "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["game"] == "simple_allocation:1"
    assert out["summary"][0]["value"] == pytest.approx(1 / 3)
    assert (tmp_path / "centralized_seed0" / "result.json").is_file()
    assert (tmp_path / "report.md").is_file()


def test_cli_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["stackelberg", "no_such_game", "--steps", "10"])
    assert args.func(args) == 2
    assert "bilevel: error: expected" in capsys.readouterr().err
    args = _parser().parse_args(["stackelberg", "matrix_design", "--steps", "0"])
    assert args.func(args) == 2
    assert "expected steps >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["stackelberg", "matrix_design", "--critic", "bogus"])


def test_designer_bad_input() -> None:
    with pytest.raises(ValueError, match="expected critic"):
        StackelbergDesigner("matrix_design", critic="mappo").fit()
    with pytest.raises(ValueError, match="expected followers"):
        StackelbergDesigner("matrix_design", followers="q").fit()
    with pytest.raises(TypeError, match="expected steps as an int"):
        StackelbergDesigner("matrix_design", steps=1.5).fit()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a game name"):
        StackelbergDesigner(3).fit()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected num_envs >= 1"):
        StackelbergDesigner("matrix_design", num_envs=0).fit()
    with pytest.raises(ValueError, match="expected learning_rate > 0"):
        StackelbergDesigner("matrix_design", learning_rate=-1.0).fit()
    with pytest.raises(ValueError, match="expected threads"):
        StackelbergDesigner("matrix_design", threads=0).fit()
    with pytest.raises(ValueError, match="expected variants"):
        compare_critics("matrix_design", variants=("bogus",))


# --- best certified snapshot, worst certified response ---------------------------------------

def test_returned_leader_is_the_best_certified_snapshot() -> None:
    r = StackelbergDesigner("normal_form:game_2", steps=2_000, seed=0, num_envs=8,
                            eval_every=1).fit()
    certified = r.eval_values[r.eval_gaps <= 0.05]
    assert certified.size >= 2
    assert r.value == pytest.approx(float(certified.max()), abs=1e-12)
    assert r.best_value == r.value
    assert r.final_value == pytest.approx(float(r.eval_values[-1]), abs=1e-12)
    # the returned network is the snapshot: its deterministic leader scores the same value
    assert r.policy is not None
    again = evaluate_leader("normal_form:game_2", r.policy, iterations=33)
    assert again.value == pytest.approx(r.value, abs=1e-12)


def _grid_worst(t: np.ndarray, delta: float, step: float = 0.02) -> float:
    # naive check: minimum welfare over a grid of the 4-outcome simplex under the CCE constraints
    g = make_game("matrix_design")
    u = (g.payoffs_normalised + t).reshape(4, 2)
    w = g.payoffs_normalised.reshape(4, 2).sum(1)
    n = round(1 / step)
    best = np.inf
    for i in range(n + 1):
        for j in range(n + 1 - i):
            k = np.arange(n + 1 - i - j)
            x = np.stack([np.full_like(k, i), np.full_like(k, j), k, n - i - j - k], 1) / n
            ok = np.ones(len(k), dtype=bool)
            for f in range(2):
                for d in range(2):
                    dev = [(d, b) if f == 0 else (a, d) for a in (0, 1) for b in (0, 1)]
                    gain = np.array([u[2 * a + b, f] for a, b in dev]) - u[:, f]
                    ok &= x @ gain <= delta + 1e-12
            if ok.any():
                best = min(best, float((x[ok] @ w).min()))
    return best


def test_worst_certified_value_against_a_grid_and_dominance() -> None:
    g = make_game("matrix_design")
    both = np.zeros((2, 2, 2))  # both optimal outcomes equilibria (what PPO learns against MW)
    both[0, 0], both[0, 1], both[1, 0] = (4.48, 3.72), 10.0, 10.0
    dom = np.zeros((2, 2, 2))  # (0, 1) dominant by wide margins
    dom[0, 1], dom[0, 0, 0], dom[1, 1, 1] = 10.0, 10.0, 10.0
    tabs = np.stack([np.zeros((2, 2, 2)), both, dom])
    w = worst_certified_value(payoff_table(g, tabs), 0.05)
    for b in range(3):  # the LP minimum is below every feasible grid point, and close to one
        grid = _grid_worst(tabs[b], 0.05)
        assert w[b] <= grid + 1e-9 and grid - w[b] < 0.05
    # no transfers: (0.7, 0.1, 0.1, 0.1) on (00, 01, 10, 11) is the worst CCE, welfare 1.1
    assert w[0] == pytest.approx(1.1, abs=1e-9)
    assert w[1] < 1.3 and w[2] > 1.65  # dominance is what the worst response rewards
    # matrix design trains for (and selects snapshots by) the worst certified value
    r = StackelbergDesigner("matrix_design", steps=2_000, seed=0, num_envs=4, eval_every=2).fit()
    assert r.config["objective"] == "worst-certified" and r.worst_value is not None
    assert r.worst_value == pytest.approx(
        float(worst_certified_value(payoff_table(g, r.leader_table[0]))[0]), abs=1e-9)
    assert r.worst_value <= r.value + 1e-9  # the MW response is one of the certified ones
    with pytest.raises(ValueError, match="one type per follower"):
        worst_certified_value(payoff_table(make_game("simple_allocation:2"), [0, 1]))
    with pytest.raises(ValueError, match="threshold"):
        worst_certified_value(payoff_table(g, dom), 0.0)
    with pytest.raises(ValueError, match="objective"):
        StackelbergDesigner("matrix_design", objective="bogus").fit()
    with pytest.raises(ValueError, match="complete-information"):
        StackelbergDesigner("simple_allocation:2", objective="worst-certified").fit()


# --- convergence (slow): reference §3.1 optima, one seed each ---------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(
    ("game", "steps", "target"),
    [("simple_allocation:2", 300_000, 0.65), ("simple_allocation:3", 400_000, 0.98),
     ("matrix_design", 300_000, 1.60), ("normal_form:game_2:randomized", 3_000_000, 0.90),
     ("mspm:PI:2", 1_000_000, -0.005)],
)
def test_convergence(game: str, steps: int, target: float) -> None:
    r = StackelbergDesigner(game, steps=steps, seed=0).fit()
    assert r.value >= target
    assert r.certified and r.bcce_gap <= 0.05


def test_matrix_design_dominance_diagnostic(tmp_path: Path) -> None:
    from bilevel.models.stackelberg import MatrixDesignGame, make_game
    from bilevel.stackelberg._report import dominant_outcome

    g = make_game("matrix_design")
    assert isinstance(g, MatrixDesignGame)
    assert dominant_outcome(g, np.zeros((2, 2, 2))) is None  # the untransferred game
    t = np.zeros((2, 2, 2))
    t[1, 1, 0], t[0, 0, 1] = 1.0, 0.5  # mirror of reference §3.1: (1, 0) dominant
    assert dominant_outcome(g, t) == (1, 0)
    t[1, 1, 0] = 0.6  # t1(1,1) − t1(0,1) = 0.6 < 4/6: the threshold τ ≥ 4 is not met
    assert dominant_outcome(g, t) is None
    # coordination transfers (both optimal outcomes are equilibria) are not dominance
    coord = np.zeros((2, 2, 2))
    coord[0, 1], coord[1, 0] = 10.0, 10.0
    assert dominant_outcome(g, coord) is None
    res = compare_critics("matrix_design", seeds=(0,), variants=("plain",), steps=500,
                          num_envs=4, eval_every=0)
    text = stackelberg_report(res, tmp_path).read_text()
    assert "Outcome in dominant strategies" in text and "* plain: " in text


@pytest.mark.slow
def test_matrix_design_learns_dominance() -> None:
    # issue 6 acceptance: value >= 1.60 with a welfare-optimal outcome in dominant strategies
    from bilevel.stackelberg._report import dominant_outcome

    r = StackelbergDesigner("matrix_design", steps=300_000, seed=0).fit()
    assert r.value >= 1.60
    assert dominant_outcome(make_game("matrix_design"), r.leader_table[0]) in ((0, 1), (1, 0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_msgspace_3_reaches_loss_zero(seed: int) -> None:
    # issue 6 acceptance: MSGSpace k = 3, 2 messages: loss >= -0.01, certified (optimum 0);
    # measured: both seeds reach 0 at an evaluation, and the best certified snapshot is returned
    r = StackelbergDesigner("mspm:MSGSpace:3:2", steps=1_000_000, seed=seed).fit()
    assert r.value >= -0.01
    assert r.certified and r.bcce_gap <= 0.05
