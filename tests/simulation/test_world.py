"""World: stepping under any policy's assignment (closed loop), and truth vs realised outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.constants import CONTROL
from recommender.simulation import ARMS, Assignment, SimulationConfig, World
from recommender.simulation.catalogue import NUDGE_TYPES
from recommender.simulation.effects import competency_mask
from recommender.simulation.policy import logging_probabilities, sample_arms

CONFIG = SimulationConfig(n_managers=300, n_orgs=2, years=2.0, seed=11)


def _uniform(world: World, policy: str = "uniform-test") -> Assignment:
    frame = world.decision_frame()
    available = np.concatenate(
        [np.ones((len(frame), 1), dtype=bool), world.available_types()], axis=1
    )
    p = available / available.sum(axis=1, keepdims=True)
    arms = sample_arms(p, np.random.default_rng(0))
    return Assignment(
        manager_id=frame["manager_id"].to_numpy(dtype=object),
        nudge_type=np.asarray(ARMS, dtype=object)[arms],
        propensity=p[np.arange(len(arms)), arms],
        policy=policy,
    )


def test_another_policy_can_drive_the_world_and_is_logged_as_such() -> None:
    world = World(CONFIG)
    while not world.done:
        world.run_period(_uniform(world))
    deliveries = world.tables()["deliveries"]
    assert set(deliveries["policy"]) == {"uniform-test"}
    truth = world.ground_truth()
    assert truth["period_start"].nunique() == world.calendar.n_periods
    with pytest.raises(ValueError, match=r"^period:"):
        world.run_period(_uniform(world))


def test_all_none_assignment_logs_only_control_rows() -> None:
    world = World(CONFIG)
    frame = world.decision_frame()
    n = len(frame)
    world.run_period(
        Assignment(frame["manager_id"].to_numpy(), np.full(n, CONTROL), np.ones(n), "no-nudges")
    )
    deliveries = world.tables()["deliveries"]
    assert len(deliveries) == n and deliveries["nudge_id"].isna().all()
    assert (deliveries["propensity"] == 1.0).all()


def test_truth_of_a_period_does_not_depend_on_the_assignment() -> None:
    a, b = World(CONFIG), World(CONFIG)
    a.run_period(a.logging_assignment())
    b.run_period(_uniform(b))
    assert a.ground_truth().equals(b.ground_truth())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"manager_id": "drop"}, "^manager_id:"),
        ({"nudge_type": "telepathy"}, "^nudge_type:"),
        ({"propensity": 0.0}, "^propensity:"),
        ({"policy": ""}, "^policy:"),
    ],
)
def test_invalid_assignments_are_rejected(change: dict[str, object], message: str) -> None:
    world = World(CONFIG)
    good = world.logging_assignment()
    ids, types, prop, policy = (
        good.manager_id,
        good.nudge_type.copy(),
        good.propensity.copy(),
        good.policy,
    )
    if change.get("manager_id") == "drop":
        ids, types, prop = ids[1:], types[1:], prop[1:]
    if "nudge_type" in change:
        types[0] = change["nudge_type"]
    if "propensity" in change:
        prop[0] = change["propensity"]
    if "policy" in change:
        policy = str(change["policy"])
    with pytest.raises(ValueError, match=message):
        world.run_period(Assignment(ids, types, prop, policy))


def test_type_unused_by_the_org_is_rejected() -> None:
    world = World(CONFIG)
    frame = world.decision_frame()
    available = world.available_types()
    row = int(np.flatnonzero(~available.all(axis=1))[0])
    missing = NUDGE_TYPES[int(np.flatnonzero(~available[row])[0])]
    good = world.logging_assignment()
    types = good.nudge_type.copy()
    types[list(good.manager_id).index(frame["manager_id"].iloc[row])] = missing
    with pytest.raises(ValueError, match=r"^nudge_type:"):
        world.run_period(Assignment(good.manager_id, types, good.propensity, good.policy))


def test_logging_policy_gives_every_arm_at_least_two_percent_and_samples_as_logged() -> None:
    world = World(SimulationConfig(n_managers=2000, n_orgs=2, years=1.0, seed=4))
    frame = world.decision_frame()
    p = logging_probabilities(frame, world.available_types())
    available = np.concatenate([np.ones((len(p), 1), dtype=bool), world.available_types()], axis=1)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert (p[available] >= 0.02).all() and (p[~available] == 0).all()
    assert p[:, 0].std() > 0.02 and p[:, 1:].std(axis=0).max() > 0.05  # depends on the profile
    assignment = world.logging_assignment()
    arms = np.asarray([ARMS.index(t) for t in assignment.nudge_type])
    assert np.array_equal(assignment.propensity, p[np.arange(len(arms)), arms])
    for arm in range(len(ARMS)):
        expected, var = p[:, arm].sum(), (p[:, arm] * (1 - p[:, arm])).sum()
        assert abs((arms == arm).sum() - expected) <= 4 * np.sqrt(var) + 1, ARMS[arm]


@pytest.mark.parametrize("nudge_type", ["goal_clarity", "feedback_request", CONTROL])
def test_truth_is_the_expectation_of_the_realised_latent_change(nudge_type: str) -> None:
    world = World(SimulationConfig(n_managers=1500, n_orgs=1, years=1.0, seed=8))
    frame = world.decision_frame()
    n = len(frame)
    if nudge_type != CONTROL and not world.available_types()[0, NUDGE_TYPES.index(nudge_type)]:
        pytest.skip("type not used by this org")
    who = world.eligible()
    mask = competency_mask(world.population, world.catalogue)[who]
    before = (world.theta[who] * mask).sum(axis=1) / mask.sum(axis=1)
    world.run_period(
        Assignment(frame["manager_id"].to_numpy(), np.full(n, nudge_type), np.ones(n), "t")
    )
    after = (world.theta[who] * mask).sum(axis=1) / mask.sum(axis=1)
    truth = world.ground_truth()
    expected = truth.loc[truth["nudge_type"] == nudge_type, "delta_360"].to_numpy()
    realised = after - before
    assert len(expected) == n
    assert abs((realised - expected).mean()) < 4 * (realised - expected).std() / np.sqrt(n)
