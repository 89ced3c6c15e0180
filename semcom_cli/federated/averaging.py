"""A round's averaging: the devices' fronts into one, through Flower's own protocols.

After a round's split steps every device holds its trained front. The averaging is an exchange of
its own (message type ``train``, in the FitIns/FitRes form Flower's secure aggregation and
differential privacy are written for):

- plain: Flower's default fit workflow; the server receives each device's front and the strategy
  (FedAvg; FedProx, whose averaging is FedAvg's; FedAvgM) averages them by picture count;
- ``secure_aggregation``: Flower's SecAgg+ (``SecAggPlusWorkflow`` here, ``secaggplus_mod`` on the
  devices): each device sends its front quantised and masked; the server learns only the sum;
- ``dp_noise`` > 0: central differential privacy with client-side clipping (Flower's
  ``DifferentialPrivacyClientSideFixedClipping`` here, ``fixedclipping_mod`` on the devices): each
  device clips its update (its front minus the round's global front) to L2 norm ``dp_clip``, and the
  server adds Gaussian noise of standard deviation ``dp_noise · dp_clip / devices`` to the average.
  The privacy spent over the run comes from Flower's RDP accountant (dp-accounting).

Only the front's parameters are averaged: its buffers (KAN grids and masks) are the checkpoint's
constants and travel with the round's start.
"""

from __future__ import annotations

import math

import numpy as np

from semcom_cli.config.preset import FederatedTrain

__all__ = ["average_fronts", "privacy_spent", "noise_for_epsilon", "secure_range", "seed_dp_noise", "seed_numpy"]


class _InDeviceOrder:
    """Mixed into a Flower strategy: the average's float sums in device order, so a run's bytes do not
    depend on which reply came first."""

    def aggregate_fit(self, server_round, results, failures):
        results = sorted(results, key=lambda r: int(r[1].metrics["device"]))
        return super().aggregate_fit(server_round, results, failures)


def _strategy(cfg: FederatedTrain, clients: int, global_front: list[np.ndarray], momentum: list | None):
    """Flower's (legacy-API) strategy for this round, wrapped for DP when asked."""
    from flwr.common import ndarrays_to_parameters  # optional heavy: Flower (federated only)
    from flwr.server.strategy import (  # optional heavy: Flower (federated only)
        DifferentialPrivacyClientSideFixedClipping,
        FedAvg,
        FedAvgM,
    )

    class InOrderFedAvg(_InDeviceOrder, FedAvg):
        pass

    class InOrderFedAvgM(_InDeviceOrder, FedAvgM):
        pass

    # every device of the round averages in; none is waited for beyond those the round has
    common = dict(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=1, min_evaluate_clients=0,
                  min_available_clients=1)
    if cfg.strategy == "fedavgm":
        strategy = InOrderFedAvgM(server_momentum=cfg.server_momentum,
                                  initial_parameters=ndarrays_to_parameters(global_front), **common)
        strategy.momentum_vector = momentum
    else:  # FedProx's proximal term is the devices'; its averaging is FedAvg's
        strategy = InOrderFedAvg(**common)
    if cfg.dp_clip is None:
        return strategy, strategy
    return DifferentialPrivacyClientSideFixedClipping(strategy, cfg.dp_noise, cfg.dp_clip, clients), strategy


def secure_range(front: list[np.ndarray]) -> float:
    """SecAgg+'s clipping range for these weights: the power of two at least twice the largest one
    (a round's training moves a weight by far less), so nothing is clipped and the quantisation step
    (2 · range / 2²²) stays small."""
    largest = max(float(np.abs(a).max()) for a in front)
    return float(2 ** max(0, math.ceil(math.log2(max(2 * largest, 1e-12)))))


def average_fronts(grid, cfg: FederatedTrain, round_: int, nodes: list[int], front: list[np.ndarray],
                   momentum: list | None, seed: int, timeout: float | None):
    """Average the fronts the devices ``nodes`` hold after round ``round_`` (``front``: the round's
    global front, the parameters in :func:`front_parameters` order). Returns (the new front or
    None when no device answered, FedAvgM's momentum)."""
    from flwr.app import ConfigRecord, Context, RecordDict  # optional heavy: Flower (federated only)
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays  # optional heavy: Flower
    from flwr.compat.common import recorddict_compat as compat  # optional heavy: Flower (federated only)
    from flwr.server import ServerConfig, SimpleClientManager  # optional heavy: Flower (federated only)
    from flwr.server.compat.grid_client_proxy import GridClientProxy  # optional heavy: Flower
    from flwr.server.compat.legacy_context import LegacyContext  # optional heavy: Flower (federated only)
    from flwr.server.workflow import SecAggPlusWorkflow  # optional heavy: Flower (federated only)
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key  # optional heavy: Flower
    from flwr.server.workflow.default_workflows import default_fit_workflow  # optional heavy: Flower

    strategy, inner = _strategy(cfg, len(nodes), front, momentum)
    manager = SimpleClientManager()
    for node in nodes:
        manager.register(GridClientProxy(node, grid, 0))
    context = LegacyContext(Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                            config=ServerConfig(num_rounds=1, round_timeout=timeout), strategy=strategy,
                            client_manager=manager)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: round_})
    # the devices need the round's global front only to clip their update against it
    sent = front if cfg.dp_clip is not None else []
    sent_record = compat.parameters_to_arrayrecord(ndarrays_to_parameters(sent), keep_input=True)
    context.state.array_records[MAIN_PARAMS_RECORD] = sent_record
    seed_dp_noise(seed, round_)
    if cfg.secure_aggregation:
        # every device shares its key with all; a device's weight (its picture count) at most 1
        SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=0.5, clipping_range=secure_range(front),
                           max_weight=float(cfg.per_client), timeout=timeout)(grid, context)
    else:
        default_fit_workflow(grid, context)
    record = context.state.array_records[MAIN_PARAMS_RECORD]
    if record is sent_record:  # no device answered: the front stays as it was
        return None, momentum
    averaged = parameters_to_ndarrays(compat.arrayrecord_to_parameters(record, keep_input=True))
    return averaged, getattr(inner, "momentum_vector", None)


def seed_numpy(*keys: int) -> None:
    """Seed NumPy's global generator from ``keys``: Flower draws its DP noise (server) and SecAgg+'s
    stochastic rounding (devices) from it, so seeded, a run's bytes repeat."""
    np.random.seed(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def seed_dp_noise(seed: int, round_: int) -> None:
    """The server's DP noise for a round, from (seed, round) (a deployment that wants unpredictable noise
    runs with a fresh seed)."""
    seed_numpy(seed, round_)


def privacy_spent(cfg: FederatedTrain, rounds: int) -> dict:
    """The DP guarantee of ``rounds`` averaged releases at ``cfg.dp_noise`` (every device takes part in
    every round: no sampling amplification), from Flower's RDP accountant, at δ = ``cfg.dp_delta``."""
    if cfg.dp_clip is None:
        return {"epsilon": None, "delta": None, "noise_multiplier": 0.0, "clip": None, "releases": rounds}
    epsilon = math.inf if cfg.dp_noise == 0 or rounds == 0 else _epsilon(cfg.dp_noise, rounds, cfg.dp_delta,
                                                                         cfg.clients)
    return {"epsilon": epsilon if math.isfinite(epsilon) else "inf", "delta": cfg.dp_delta,
            "noise_multiplier": cfg.dp_noise, "clip": cfg.dp_clip, "releases": rounds,
            "accountant": "Flower RdpAccountant (dp-accounting), no sampling amplification, client level"}


def _epsilon(noise: float, rounds: int, delta: float, clients: int) -> float:
    from flwr.supercore.privacy_accounting import (  # optional heavy: Flower (federated only)
        GaussianPrivacyEvent,
        NeighboringRelation,
        PrivacyConfig,
        SamplingMethod,
    )
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant  # optional heavy: Flower

    accountant = RdpAccountant(PrivacyConfig(target_delta=delta, population_size=clients,
                                             neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                             sampling_method=SamplingMethod.NO_AMPLIFICATION))
    accountant.compose(GaussianPrivacyEvent(noise_multiplier=noise, sample_size=clients, population_size=clients),
                       count=rounds)
    return float(accountant.get_privacy_spent().epsilon)


def noise_for_epsilon(epsilon: float, rounds: int, delta: float = 1e-5, clients: int = 4) -> float:
    """The smallest noise multiplier whose ``rounds`` releases spend at most ``epsilon`` (bisection on
    the accountant; 3 significant digits, rounded up)."""
    low, high = 0.05, 1.0
    while _epsilon(high, rounds, delta, clients) > epsilon:
        low, high = high, high * 2
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if _epsilon(mid, rounds, delta, clients) > epsilon else (low, mid)
    digits = 2 - math.floor(math.log10(high))
    return math.ceil(high * 10 ** digits) / 10 ** digits
