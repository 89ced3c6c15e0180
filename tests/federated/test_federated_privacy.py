"""The averaging's privacy (issue 39): Flower's DP wrapper as semcom configures it (noise spread, seeding),
the accountant against the exact Gaussian mechanism, and the settings' checks. The runs through Flower
(SecAgg+, clipping) are in test_federated.py, beside the plain run they are compared with."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from semcom_cli.config.preset import FederatedTrain


def _exact_epsilon(noise: float, rounds: int, delta: float) -> float:
    """ε of ``rounds`` Gaussian releases of sensitivity 1 at noise multiplier ``noise``: together one
    Gaussian mechanism of μ = √rounds / noise, whose privacy profile is exact (Balle & Wang, 2018)."""
    mu = math.sqrt(rounds) / noise

    def excess(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return brentq(excess, 0.0, 500.0)


@pytest.mark.parametrize("noise, rounds", [(1.0, 1), (2.5, 15), (8.0, 15), (0.8, 100)])
def test_the_accountant_bounds_the_exact_gaussian_mechanism_closely(noise, rounds):
    from semcom_cli.federated.averaging import privacy_spent

    cfg = FederatedTrain(dp_noise=noise, dp_clip=1.0)
    spent = privacy_spent(cfg, rounds)
    exact = _exact_epsilon(noise, rounds, 1e-5)
    # RDP is an upper bound, a few percent loose at these orders
    assert exact <= spent["epsilon"] <= 1.15 * exact, (spent["epsilon"], exact)
    assert spent["delta"] == 1e-5 and spent["releases"] == rounds


def test_privacy_without_noise_is_reported_as_none_and_infinite():
    from semcom_cli.federated.averaging import privacy_spent

    assert privacy_spent(FederatedTrain(), 15)["epsilon"] is None
    assert privacy_spent(FederatedTrain(dp_clip=0.5), 15)["epsilon"] == "inf"  # clipping alone proves nothing


def test_noise_for_a_target_epsilon_is_the_smallest_that_meets_it():
    from semcom_cli.federated.averaging import _epsilon, noise_for_epsilon

    for target in (8.0, 2.0):
        noise = noise_for_epsilon(target, 15)
        assert _epsilon(noise, 15, 1e-5, 4) <= target < _epsilon(noise * 0.99, 15, 1e-5, 4)


def _results(fronts: list[list[np.ndarray]]):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return [(None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(front), 10, {"device": i}))
            for i, front in enumerate(fronts)]


def test_dp_noise_on_the_average_has_the_promised_spread_and_repeats_with_the_seed():
    """Flower's client-side-clipping wrapper as the averaging builds it: noise of standard deviation
    noise · clip / devices on the average, drawn again identically from the same (seed, round)."""
    from flwr.common import parameters_to_ndarrays

    from semcom_cli.federated.averaging import _strategy, seed_dp_noise

    cfg = FederatedTrain(clients=4, dp_noise=2.0, dp_clip=0.01)
    same = [np.full(200_000, 0.25, np.float32)]
    fronts = [same] * 4

    def average(seed: int, round_: int) -> np.ndarray:
        strategy, _ = _strategy(cfg, 4, same, None)
        seed_dp_noise(seed, round_)
        parameters, _ = strategy.aggregate_fit(round_, _results(fronts), [])
        return parameters_to_ndarrays(parameters)[0]

    first = average(0, 1)
    noise = first - 0.25
    assert abs(noise.std() / (2.0 * 0.01 / 4) - 1) < 0.01 and abs(noise.mean()) < 1e-4
    assert np.array_equal(first, average(0, 1))
    assert not np.array_equal(first, average(0, 2)) and not np.array_equal(first, average(1, 1))


def test_the_plain_average_is_weighted_and_the_same_bytes_whichever_reply_came_first():
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

    from semcom_cli.federated.averaging import _strategy

    rng = np.random.default_rng(0)
    fronts = [[rng.standard_normal(10_000).astype(np.float32)] for _ in range(4)]
    counts = [10, 30, 20, 40]
    results = [(None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(f), n, {"device": i}))
               for i, (f, n) in enumerate(zip(fronts, counts))]
    strategy, _ = _strategy(FederatedTrain(clients=4), 4, fronts[0], None)
    forward = parameters_to_ndarrays(strategy.aggregate_fit(1, results, [])[0])[0]
    backward = parameters_to_ndarrays(strategy.aggregate_fit(1, results[::-1], [])[0])[0]
    assert np.array_equal(forward, backward)
    want = sum(n * f[0].astype(np.float64) for f, n in zip(fronts, counts)) / sum(counts)
    assert np.allclose(forward, want, atol=1e-6)


def test_secure_range_covers_the_weights_with_room():
    from semcom_cli.federated.averaging import secure_range

    assert secure_range([np.array([0.3, -4.4])]) == 16.0  # the shipped front's largest weight is 4.4
    assert secure_range([np.array([0.01])]) == 1.0


@pytest.mark.parametrize("settings, fragment", [
    ({"dp_noise": 1.0}, "dp_clip"),
    ({"dp_clip": -1.0}, "dp_clip"),
    ({"secure_aggregation": True, "clients": 1}, "at least 2"),
])
def test_impossible_privacy_settings_are_refused(settings, fragment):
    with pytest.raises(ValueError, match=fragment):
        FederatedTrain(**settings)
