"""The batched Stackelberg POMDP: episode layout (Brero et al., *Stackelberg POMDP*, §4,
Definition 4.1, as in the authors' maintained code, SP-B), the commitment of one action per
observation within an episode, critic features, the basic-POMDP ablation (§5.1), and
hand-worked episodes against the known optima of the paper's games (§5, Appendices G and H)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bilevel.models.stackelberg import make_game
from bilevel.solvers.rl._protocol import Action, EnvStep
from bilevel.solvers.stackelberg._cores import LeaderGameCore, SimpleAllocationCore, core_from_game
from bilevel.solvers.stackelberg._pomdp import StackelbergPOMDP

Tensor = torch.Tensor
Policy = Callable[[EnvStep], Action]

# the matrix design game of Brero et al., Stackelberg POMDP, Appendix G.2 (Figure 5), raw units
MD = [[[3.0, 3.0], [6.0, 4.0]], [[4.0, 6.0], [2.0, 2.0]]]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # tiny tensors: intra-op threads only add contention on the shared 2-core machine
    torch.set_num_threads(1)


def game2(randomized: bool = True) -> LeaderGameCore:
    return core_from_game(make_game("normal_form", game=2, randomized=randomized))


def md() -> LeaderGameCore:
    return core_from_game("matrix_design")


def pi_core() -> LeaderGameCore:
    return core_from_game("mspm:PI:2")


def const(E: int, cat: list[int], con: list[float]) -> Action:
    return Action(torch.tensor([cat] * E, dtype=torch.long).reshape(E, len(cat)),
                  torch.tensor([con] * E).reshape(E, len(con)))


def run_episode(env: StackelbergPOMDP, policy: Policy, seed: int = 0,
                ) -> tuple[list[EnvStep], EnvStep]:
    """Reset, then step one whole episode; return every step and the final one."""
    g = torch.Generator().manual_seed(seed)
    s = env.reset(g)
    steps = [s]
    for _ in range(env.horizon):
        s = env.step(policy(s), g)
        steps.append(s)
    return steps, s


def random_policy(core: LeaderGameCore, E: int, seed: int = 1) -> Policy:
    g = torch.Generator().manual_seed(seed)
    spec = core.action_spec

    def pol(s: EnvStep) -> Action:
        cats = [torch.multinomial(m.float(), 1, generator=g)[:, 0] for m in s.masks]
        cat = torch.stack(cats, 1) if cats else torch.zeros(E, 0, dtype=torch.long)
        con = spec.low + (spec.high - spec.low) * torch.rand(E, spec.continuous, generator=g)
        return Action(cat, con)
    return pol


# --- episode layout -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("core", "kw", "horizon"),
    [
        (SimpleAllocationCore(3), {"iterations": 33, "reward_games": 30}, 33 * 3 + 30),
        (SimpleAllocationCore(2), {"iterations": 5, "flavour": "sampled"}, 5 * 2 + 1),
        (md(), {"iterations": 33}, 33 * 4 + 1),
        (md(), {"iterations": 7, "flavour": "sampled"}, 7 * 4 + 1),
        (game2(), {"iterations": 33}, 33 * 3 + 1),
        # MSPM PI: (100 response + 16 reward games) x 2 steps = 232 (the authors' code, SP-B)
        (pi_core(), {"iterations": 25, "reward": "exact"}, 232),
    ],
)
def test_episode_length_has_no_dummy_steps(core: LeaderGameCore, kw: dict[str, object],
                                           horizon: int) -> None:
    E = 3
    env = StackelbergPOMDP(core, E, **kw)  # type: ignore[arg-type]
    assert env.horizon == horizon
    steps, last = run_episode(env, random_policy(core, E))
    dones = torch.stack([s.done for s in steps[1:]])
    assert bool(dones[-1].all()) and not bool(dones[:-1].any())
    assert "objective" in last.info
    rewards = torch.stack([s.reward for s in steps[1:]])
    n_resp = env.n_response_games * core.horizon
    assert float(rewards[:n_resp].abs().max()) == 0.0
    torch.testing.assert_close(rewards.sum(0), last.info["objective"], rtol=0, atol=1e-6)


def test_every_response_step_is_a_decision_on_the_queried_messages() -> None:
    # exact flavour, m = 3: the leader sees messages 0, 1, 2 in every iteration, then reward games
    env = StackelbergPOMDP(SimpleAllocationCore(3), 2, iterations=4, reward_games=2)
    steps, _ = run_episode(env, random_policy(env.core, 2))
    seen = [int(s.obs[0].argmax()) for s in steps[: 12]]
    assert seen == [0, 1, 2] * 4


def test_phase_flag_is_set_on_the_first_reward_action() -> None:
    # the observation of the first reward-phase action carries flag 1 (the authors' first
    # release, SP-A, set it one step late)
    core = SimpleAllocationCore(2)
    env = StackelbergPOMDP(core, 2, iterations=3, reward_games=4)
    steps, _ = run_episode(env, random_policy(core, 2))
    flag_col = core.obs_dim
    flags = [float(s.critic_obs[0, flag_col]) for s in steps[:-1]]  # obs before each action
    assert flags == [0.0] * 6 + [1.0] * 4
    assert float(steps[-1].critic_obs[0, flag_col]) == 0.0  # next episode starts in response


def test_critic_features() -> None:
    core = md()
    env = StackelbergPOMDP(core, 2, iterations=2)
    s = env.reset(torch.Generator().manual_seed(0))
    # obs, phase flag, progress, 2 x 2 weights, 2 x 1 type one-hots, 2 x 2 action one-hots
    assert env.critic_obs_dim == core.obs_dim + 2 + 4 + 2 + 4
    torch.testing.assert_close(s.critic_obs[:, : core.obs_dim], s.obs)
    w = s.critic_obs[:, core.obs_dim + 2: core.obs_dim + 6]
    torch.testing.assert_close(w, torch.ones(2, 4))  # uniform weights / their max
    acts = s.critic_obs[:, core.obs_dim + 8:]
    torch.testing.assert_close(acts, torch.tensor([[1.0, 0.0, 1.0, 0.0]] * 2))  # query (0, 0)
    plain = StackelbergPOMDP(core, 2, iterations=2, critic="plain")
    sp = plain.reset(torch.Generator().manual_seed(0))
    assert plain.critic_obs_dim == core.obs_dim
    torch.testing.assert_close(sp.critic_obs, sp.obs)


def test_basic_pomdp_marks_exactly_the_response_transitions() -> None:
    # hidden = the action was taken in the response phase (SP-A excluded one step too many)
    core = pi_core()
    env = StackelbergPOMDP(core, 2, iterations=3, reward="exact", hide_response=True)
    steps, _ = run_episode(env, random_policy(core, 2))
    hidden = [bool(s.info["hidden"][0]) for s in steps[1:]]
    assert hidden == [True] * (3 * 4 * 2) + [False] * (16 * 2)


# --- commitment cache ------------------------------------------------------------------------

def test_commitment_same_observation_same_action_within_episode() -> None:
    core = md()
    E = 4
    env = StackelbergPOMDP(core, E, iterations=5)
    pol = random_policy(core, E, seed=3)
    g = torch.Generator().manual_seed(0)
    s = env.reset(g)
    first: dict[tuple[int, int], Tensor] = {}
    overridden = 0
    for _ in range(env.horizon):
        key = s.obs.argmax(1)
        prop = pol(s)
        nxt = env.step(prop, g)
        ex = nxt.executed.continuous if nxt.executed is not None else prop.continuous
        for e in range(E):
            k = (e, int(key[e]))
            if k in first:
                torch.testing.assert_close(ex[e], first[k])
                overridden += int(not torch.equal(prop.continuous[e], ex[e]))
            else:
                torch.testing.assert_close(ex[e], prop.continuous[e])
                first[k] = ex[e].clone()
        s = nxt
    assert overridden > 0 and len(first) == E * 4


def test_commitment_is_cleared_between_episodes() -> None:
    # the first action of a new episode is a fresh proposal (SP-A reused the previous
    # episode's commitments on it)
    core = SimpleAllocationCore(1)
    env = StackelbergPOMDP(core, 2, iterations=2, reward_games=1)
    g = torch.Generator().manual_seed(0)
    env.reset(g)
    for _ in range(env.horizon):
        s = env.step(const(2, [0], []), g)
    assert bool(s.done.all())
    assert env.last_commitment is not None
    assert int(env.last_commitment.categorical[0, 0, 0]) == 0
    s = env.step(const(2, [2], []), g)
    assert s.executed is None  # item 2 was executed, not the stale item 0
    s = env.step(const(2, [1], []), g)
    assert s.executed is not None
    assert s.executed.categorical[:, 0].tolist() == [2, 2]


# --- hand-worked episodes against known values -----------------------------------------------

def test_simple_allocation_m1_is_one_third_for_any_committed_item() -> None:
    env = StackelbergPOMDP(SimpleAllocationCore(1), 3, iterations=2, reward="exact")
    _, last = run_episode(env, lambda s: const(3, [2], []))
    torch.testing.assert_close(last.info["objective"], torch.full((3,), 1 / 3))


def test_simple_allocation_identity_map_reaches_one_with_m3() -> None:
    # MW (exact, eps 0.1) learns to send message = type; argmax response; exact reward 1.0
    env = StackelbergPOMDP(SimpleAllocationCore(3), 2, iterations=40, reward="exact")
    _, last = run_episode(env, lambda s: Action(s.obs.argmax(1, keepdim=True), torch.zeros(2, 0)))
    torch.testing.assert_close(last.info["objective"], torch.ones(2), rtol=0, atol=1e-6)


def test_normal_form_game2_mixed_commitment() -> None:
    # leader mixes (0.3, 0.7, 0): follower's best response is column 0, leader gets 27/30 = 0.9
    env = StackelbergPOMDP(game2(), 2, iterations=33)
    _, last = run_episode(env, lambda s: const(2, [], [0.3, 0.7, 0.0]))
    torch.testing.assert_close(last.info["objective"], torch.full((2,), 0.9), rtol=0, atol=1e-6)
    # pure row 0 → column 0 → 20/30
    env = StackelbergPOMDP(game2(randomized=False), 2, iterations=33)
    _, last = run_episode(env, lambda s: const(2, [0], []))
    torch.testing.assert_close(last.info["objective"], torch.full((2,), 2 / 3), rtol=0, atol=1e-6)


def test_matrix_design_dominance_transfers_reach_best_welfare() -> None:
    # make (0,1) dominant: t1(0,0) - t1(1,0) >= 1/6, t2(1,1) - t2(1,0) >= 4/6 (payments of 4 raw,
    # as in Brero et al., Stackelberg POMDP, Appendix G.2)
    t = {0: [0.5, 0.0], 1: [0.0, 0.0], 2: [0.0, 0.0], 3: [0.0, 1.0]}  # joint index → (t1, t2)

    def pol(s: EnvStep) -> Action:
        return Action(torch.zeros(2, 0, dtype=torch.long),
                      torch.tensor([t[int(k)] for k in s.obs.argmax(1)]))
    env = StackelbergPOMDP(md(), 2, iterations=33)
    _, last = run_episode(env, pol)
    torch.testing.assert_close(last.info["objective"], torch.full((2,), 10 / 6), atol=1e-6, rtol=0)


def test_exact_mw_update_matches_a_naive_loop() -> None:
    # one exact MW iteration of the matrix design game with transfers t(joint) = 0.1 * joint
    core = md()
    env = StackelbergPOMDP(core, 1, iterations=3, epsilon=0.1)
    g = torch.Generator().manual_seed(0)
    s = env.reset(g)
    for _ in range(4):
        j = int(s.obs.argmax())
        s = env.step(Action(torch.zeros(1, 0, dtype=torch.long),
                            torch.tensor([[0.1 * j, 0.2 * j]])), g)
    u = [[[x / 6 for x in c] for c in r] for r in MD]
    want = []
    for i in range(2):
        row = []
        for a in range(2):
            tot = 0.0
            for b in range(2):
                a1, a2 = (a, b) if i == 0 else (b, a)
                j = 2 * a1 + a2
                tot += 0.5 * (u[a1][a2][i] + (0.1 if i == 0 else 0.2) * j)
            row.append(1.1 ** tot)
        z = sum(row)
        want.append([r / z for r in row])
    got = torch.stack([p[0, 0] for p in env.mw.strategies()]).float()
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-6, rtol=0)


def test_mspm_pi_fixed_mechanisms_use_the_true_prior() -> None:
    # "A0 first at price 0" loses 0.08 under the setting's true priors (a regression value of
    # the authors' code, SP-B; SP-A's deviation check assumed uniform priors, which differ)
    env = StackelbergPOMDP(pi_core(), 2, iterations=2, reward="exact")

    def a0_first(s: EnvStep) -> Action:
        agent = torch.where(s.masks[0][:, 0], 0, 1)
        return Action(agent[:, None], torch.zeros(2, 1))
    _, last = run_episode(env, a0_first)
    torch.testing.assert_close(last.info["objective"], torch.full((2,), -0.08), atol=1e-6, rtol=0)

    def best_spm(s: EnvStep) -> Action:  # A1 first at 0.2, then A0 at 0: loss -0.06
        first = s.masks[0][:, 1]
        return Action(torch.where(first, 1, 0)[:, None],
                      torch.where(first, 0.2, 0.0)[:, None])
    _, last = run_episode(env, best_spm)
    torch.testing.assert_close(last.info["objective"], torch.full((2,), -0.06), atol=1e-6, rtol=0)


def test_bad_input() -> None:
    core = SimpleAllocationCore(2)
    with pytest.raises(ValueError, match="expected flavour"):
        StackelbergPOMDP(core, 2, flavour="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected num_envs"):
        StackelbergPOMDP(core, 0)
    with pytest.raises(TypeError, match="expected a Stackelberg game"):
        StackelbergPOMDP(3.5, 2)
    with pytest.raises(ValueError, match="expected"):
        StackelbergPOMDP("no_such_game", 2)
    env = StackelbergPOMDP(core, 2)
    with pytest.raises(ValueError, match="expected reset"):
        env.step(const(2, [0], []), torch.Generator())
    env.reset(torch.Generator())
    with pytest.raises(ValueError, match="expected action shapes"):
        env.step(const(3, [0], []), torch.Generator())
    with pytest.raises(ValueError, match="expected m >= 1"):
        SimpleAllocationCore(0)


# --- agreement with the exact payoff tables of bilevel.models.stackelberg /
# bilevel.solvers.stackelberg._exact ------

@pytest.mark.parametrize(
    "name", ["normal_form:game_2:randomized", "normal_form:game_1", "matrix_design",
             "simple_allocation:3", "mspm:PI:2", "mspm:MSGSpace:3:2"],
)
def test_committed_episode_replays_the_exact_payoff_table(name: str) -> None:
    # a random committed leader: replaying its cache game by game gives the game's payoff table
    from bilevel.solvers.stackelberg._exact import payoff_table

    game = make_game(name)
    core = core_from_game(game)
    env = StackelbergPOMDP(core, 1, iterations=2, reward="exact")
    run_episode(env, random_policy(core, 1, seed=5))
    c = env.last_commitment
    assert c is not None
    table = payoff_table(game, *core.tabular(c.filled[0], c.categorical[0], c.continuous[0]))
    K, J = table.leader.shape[1:]
    prof = torch.arange(K).repeat_interleave(J)
    joint = torch.arange(J).repeat(K)
    types = torch.stack([table.profiles[prof, i] for i in range(core.n_followers)], 1)
    acts = torch.cartesian_prod(*[torch.arange(a) for a in core.action_counts]).reshape(
        J, -1)[joint]
    state = core.start(types, acts)
    for t in range(core.horizon):
        _, key, _ = core.observe(state, t)
        assert bool(c.filled[0, key].all())  # the exact reward phase visited every observation
        spec = core.action_spec
        a = Action(c.categorical[0, key], c.continuous[0, key].clamp(spec.low, spec.high))
        state = core.advance(state, t, a)
    lead, fol = core.payoffs(state)
    torch.testing.assert_close(lead.double(), table.leader[0].reshape(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(fol.double(), table.follower[0].reshape(K * J, -1), atol=1e-6,
                               rtol=0)


def test_hidden_response_wrapper_shows_only_the_reward_phase() -> None:
    from bilevel.solvers.rl._policy import ActorCritic
    from bilevel.solvers.stackelberg._pomdp import HiddenResponseEnv

    core = SimpleAllocationCore(3)
    full = StackelbergPOMDP(core, 2, iterations=4, reward_games=5)
    pol = ActorCritic(full.obs_dim, full.critic_obs_dim, full.action_spec)
    env = HiddenResponseEnv(full, pol)
    g = torch.Generator().manual_seed(0)
    s = env.reset(g)
    flag = core.obs_dim
    assert float(s.critic_obs[0, flag]) == 1.0  # first visible step is a reward action
    assert bool(full._filled[:, :3].all())  # the response phase was played: all messages seen
    dones = []
    for _ in range(10):
        s = env.step(const(2, [0], []), g)
        dones.append(bool(s.done[0]))
        assert float(s.critic_obs[0, flag]) == 1.0
    assert dones == [False] * 4 + [True] + [False] * 4 + [True]


def test_mspm_pi_second_price_like_rule_is_efficient_against_learned_truthful_messages() -> None:
    # the Vickrey-like MSPM of Brero et al., Stackelberg POMDP, §5.2, on the PI setting: read
    # messages as claimed values, visit the higher claim first at the
    # other's claim − 0.001, then the other at 0: MW (exact, 100 iterations) learns truthful
    # messages and the welfare loss is 0 (the best standard SPM loses 0.06)
    claim = torch.tensor([[0.2, 1.0], [0.0, 0.4]])  # claimed value of message m by agent i

    def rule(s: EnvStep) -> Action:
        msg = s.obs[:, 7:].reshape(-1, 2, 2).argmax(2)
        c0, c1 = claim[0][msg[:, 0]], claim[1][msg[:, 1]]
        first = (c1 > c0).long()
        step0 = s.obs[:, :2].sum(1) == 2
        agent = torch.where(step0, first, s.obs[:, 1].long())
        other = torch.where(first == 0, c1, c0)
        price = torch.where(step0, (other - 0.001).clamp(0, 1), torch.zeros_like(other))
        return Action(agent[:, None], price[:, None])

    env = StackelbergPOMDP(pi_core(), 2, iterations=100, reward="exact")
    _, last = run_episode(env, rule)
    torch.testing.assert_close(last.info["objective"], torch.zeros(2), atol=1e-6, rtol=0)
