"""The Flower apps: a ClientApp for each device, a ServerApp for the edge server.

One round of federated split fine-tuning, as messages:

- ``train.start`` (server → every device): the round's global front as ``arrays``, the round's
  settings as ``config`` (the preset, so a device needs no checkpoint file). The device loads its
  front, draws its shard (its partition id picks it), runs step 0 and replies with ``symbols``
  (received symbols, gains, SNRs, labels).
- ``train.step`` (server → device, ``local_steps - 1`` times): the ``gradients`` at the symbols it
  sent; the device steps its front, runs the next step and replies with its ``symbols``.
- ``train.end``: the last ``gradients``; the device steps and keeps its front.
- ``train.loss`` (U-shaped, between a device's symbols and its gradients): the server's label-free
  ``outputs``; the device computes the step's loss with its labels and replies with its
  ``output-gradients`` (and the loss, for the log).
- ``train``: the averaging (:mod:`.averaging`), in the FitIns/FitRes form of Flower's strategies:
  plain, through SecAgg+ (``secaggplus_mod``), with client-side clipping for DP
  (``fixedclipping_mod``); the device answers with its front's parameters and its picture count.

Between messages a device keeps its front and optimizer moments in ``context.state`` (Flower
persists it per device); the server steps its back once per device per step. A device that does not
answer a message (it left, or its ClientApp failed) is out for the rest of the round: the round is
completed by the others and the strategy averages the fronts it received.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

from semcom_cli.config.preset import preset_from_dict, short_repr
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.domains import device_shard
from semcom_cli.federated import partial as partial_runs  # by module: a test stops a run at its finish
from semcom_cli.federated.averaging import average_fronts, seed_numpy
from semcom_cli.federated.messages import SECAGG_RECORD, MessageLog
from semcom_cli.federated.partial import ServerState, load_server_partial, save_server_partial
from semcom_cli.federated.split import (
    Activations,
    DeviceFront,
    Outputs,
    ServerBack,
    front_parameters,
    front_state,
    load_front_parameters,
    load_front_state,
    loss_gradient,
    step_labels,
)
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import read_history

__all__ = ["client_app", "server_app", "make_server_app", "FederatedJob", "RunStopped", "RunGrid", "serve",
           "check_job_fields"]


# --- device -----------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _shard(client: int, clients: int, per_client: int, seed: int, main_style: float, plain_share: float):
    return device_shard(client, clients, per_client, seed, main_style, plain_share)


def _device_of(context, config):
    """(preset, this device's place among the devices, its shard): the round's config says the preset,
    the node config the place."""
    preset = preset_from_dict(json.loads(str(config["preset"])), "the server's preset")
    cfg = preset.train.federated
    node = int(context.node_config.get("partition-id", 0))
    clients = int(context.node_config.get("num-partitions", cfg.clients))
    return preset, node, _shard(node, clients, cfg.per_client, cfg.data_seed, cfg.main_style, cfg.plain_share)


def _front_from(context, config) -> DeviceFront:
    """The device's front as it stands: the preset from the round's config, weights and optimizer
    moments from ``context.state``."""
    preset, node, shard = _device_of(context, config)
    front = DeviceFront(SemcomModel(preset, int(config["embed-dim"])), shard, preset.train.federated, node,
                        preset.seed)
    state = context.state.array_records.get("front")
    if state is None:
        raise SemcomError("a step arrived before the round's start: the device has no front")
    load_front_state(front.model, state.to_torch_state_dict())
    anchor = context.state.array_records.get("anchor")
    front.anchor = anchor.to_torch_state_dict() if anchor is not None else None
    moments = context.state.array_records.get("optimizer")
    if moments is not None:
        meta = json.loads(str(context.state.config_records["optimizer-meta"]["meta"]))
        front.load_optimizer(moments.to_torch_state_dict(), meta)
    return front


def _keep(context, front: DeviceFront) -> None:
    from flwr.app import ArrayRecord, ConfigRecord  # optional heavy: Flower (federated only)

    context.state.array_records["front"] = ArrayRecord(front_state(front.model))
    tensors, meta = front.optimizer_state()
    context.state.array_records["optimizer"] = ArrayRecord(tensors)
    # one namespace for every record kind in a RecordDict: the moments and their metadata need two keys
    context.state.config_records["optimizer-meta"] = ConfigRecord({"meta": json.dumps(meta)})


def _symbols_reply(message, act: Activations, device: int):
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict  # optional heavy: Flower (federated only)

    return Message(RecordDict({"symbols": ArrayRecord(act.arrays()), "device": ConfigRecord({"index": device})}),
                   reply_to=message)


def _device_start(message, context):  # train.start
    torch.set_num_threads(1)  # devices share the machine's cores in a simulation
    config = message.content["config"]
    keep = json.loads(str(config["preset"]))["train"]["federated"].get("keep_moments", False)
    for key in ("front", "anchor") if keep else ("front", "optimizer", "anchor"):
        context.state.array_records.pop(key, None)
    context.state.array_records["front"] = message.content["arrays"]
    if float(config.get("proximal-mu", 0.0)) > 0:
        context.state.array_records["anchor"] = message.content["arrays"]
    context.state.config_records["round"] = config  # the next messages carry only the step
    front = _front_from(context, config)
    act = front.forward(int(config["server-round"]), 0)
    _keep(context, front)
    return _symbols_reply(message, act, front.node)


def _device_step(message, context, last: bool):
    from flwr.app import ConfigRecord, Message, RecordDict  # optional heavy: Flower (federated only)

    torch.set_num_threads(1)
    config = context.state.config_records["round"]
    step = int(message.content["config"]["step"])
    front = _front_from(context, config)
    round_ = int(config["server-round"])
    front.backward(round_, step - 1, message.content["gradients"].to_torch_state_dict()["grad_y"])
    if last:  # the front waits for the averaging
        _keep(context, front)
        for key in ("optimizer", "anchor") if not front.cfg.keep_moments else ("anchor",):
            context.state.array_records.pop(key, None)
        return Message(RecordDict({"device": ConfigRecord({"index": front.node})}), reply_to=message)
    act = front.forward(round_, step)
    _keep(context, front)
    return _symbols_reply(message, act, front.node)


def _device_loss(message, context):  # train.loss (U-shaped)
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict  # optional heavy: Flower

    torch.set_num_threads(1)
    config = context.state.config_records["round"]
    preset, node, shard = _device_of(context, config)
    cfg = preset.train.federated
    labels = step_labels(shard, cfg.batch_size, preset.seed, node, int(config["server-round"]),
                         int(message.content["config"]["step"]))
    outputs = Outputs.from_arrays(message.content["outputs"].to_torch_state_dict())
    loss, gradient = loss_gradient(outputs, labels, cfg.caption_weight)
    return Message(RecordDict({"output-gradients": ArrayRecord(gradient.arrays()),
                               "metrics": MetricRecord({"loss": loss}), "device": ConfigRecord({"index": node})}),
                   reply_to=message)


def _device_average(message, context):  # train: the averaging (FitIns in, FitRes out)
    from flwr.app import Message  # optional heavy: Flower (federated only)
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters  # optional heavy: Flower
    from flwr.compat.common import recorddict_compat as compat  # optional heavy: Flower (federated only)

    config = context.state.config_records.get("round")
    if config is None or "front" not in context.state.array_records:
        raise SemcomError("the averaging arrived before the round's steps: the device has no front")
    front = _front_from(context, config)
    # SecAgg+ rounds the masked front stochastically with NumPy: seeded, a run gives the same bytes
    seed_numpy(front.seed, front.node, int(config["server-round"]))
    result = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(front_parameters(front.model)), len(front.shard),
                    {"device": front.node})
    return Message(compat.fitres_to_recorddict(result, keep_input=True), reply_to=message)


def _secure_when_asked(message, context, call_next):
    """Flower's SecAgg+ mod on the averaging messages of a run with secure aggregation (it takes every
    ``train`` message for its own; a plain run's are passed on)."""
    from flwr.client.mod import secaggplus_mod  # optional heavy: Flower (federated only)

    if message.metadata.message_type == "train" and SECAGG_RECORD in message.content.config_records:
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


def _clipped_when_asked(message, context, call_next):
    """Flower's fixed-clipping mod on the averaging messages of a run with differential privacy."""
    from flwr.client.mod import fixedclipping_mod  # optional heavy: Flower (federated only)

    config = message.content.config_records.get("fitins.config")
    if message.metadata.message_type == "train" and config is not None and "clipping_norm" in config:
        logging.getLogger("flwr").setLevel(logging.WARNING)  # its per-round note, from every device
        return fixedclipping_mod(message, context, call_next)
    return call_next(message, context)


def _make_client_app():
    from flwr.clientapp import ClientApp  # optional heavy: Flower (federated only)

    # SecAgg+ outside: it masks the front the clipping mod has clipped
    app = ClientApp(mods=[_secure_when_asked, _clipped_when_asked])

    @app.train("start")
    def start(message, context):
        return _device_start(message, context)

    @app.train("loss")
    def loss(message, context):
        return _device_loss(message, context)

    @app.train()
    def average(message, context):
        return _device_average(message, context)

    @app.train("step")
    def step(message, context):
        return _device_step(message, context, last=False)

    @app.train("end")
    def end(message, context):
        return _device_step(message, context, last=True)

    return app


# --- server -----------------------------------------------------------------------------------


class RunStopped(SemcomError):
    """The command that started the run is ending (Ctrl-C, SIGTERM): the server stops where it is and
    writes nothing more."""


JOB_FIELDS = {"checkpoint": str, "output": str, "overrides": dict, "resume": bool, "engine": str,
              "reply_timeout": (int, float, type(None)), "nodes": (list, type(None))}
ENGINES = ("simulation", "deployment")


@dataclass
class FederatedJob:
    """What the server runs: the input checkpoint, where the result goes, the settings that differ
    from the checkpoint's ``train.federated`` (dotted-key overrides), and how it runs."""

    checkpoint: str
    output: str
    overrides: dict = field(default_factory=dict)
    resume: bool = False
    engine: str = "simulation"
    reply_timeout: float | None = None  # seconds a round's devices may take to answer one message
    # the node ids of the run's own SuperNodes (deployment engine): the server sends to these only, so a
    # node someone else registered on the SuperLink is never sent the round's weights nor averaged in
    nodes: list[int] | None = None
    message_log: MessageLog = field(default_factory=MessageLog)
    # set when the command ends early (simulation: the ServerApp runs in a thread of this process)
    stop: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_job_fields(self.run_fields())

    def run_fields(self) -> dict:
        return {"checkpoint": self.checkpoint, "output": self.output, "overrides": self.overrides,
                "resume": self.resume, "engine": self.engine, "reply_timeout": self.reply_timeout,
                "nodes": self.nodes}

    def run_config(self) -> dict:
        """The job as Flower run config (``flwr run -c job=...``): one base64 JSON string, as Flower's
        config syntax takes no nested quotes."""

        return {"job": base64.b64encode(json.dumps(self.run_fields()).encode()).decode()}

    @classmethod
    def from_run_config(cls, config: dict) -> "FederatedJob":
        try:
            fields = json.loads(base64.b64decode(str(config["job"]), validate=True))
        except (KeyError, ValueError, TypeError, RecursionError) as err:
            raise SemcomError(f"the run config holds no semcom job ({str(err)[:80]})") from None
        if not isinstance(fields, dict):
            raise SemcomError("the run config's job is not an object")
        check_job_fields(fields)
        return cls(**fields)

    def check_running(self) -> None:
        if self.stop.is_set():
            raise RunStopped("the federated run was stopped")


def check_job_fields(fields: dict) -> None:
    """One line for a job that is not one: unknown or missing fields, wrong types, bad values."""
    unknown = sorted(set(fields) - set(JOB_FIELDS))
    if unknown:
        raise SemcomError(f"the job has unknown fields: {', '.join(map(str, unknown))[:100]}")
    for name in ("checkpoint", "output"):
        if name not in fields:
            raise SemcomError(f"the job has no {name}")
    for name, value in fields.items():
        kinds = JOB_FIELDS[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
            raise SemcomError(f"the job's {name} is a {type(value).__name__}")
    if fields.get("engine", "simulation") not in ENGINES:
        raise SemcomError(f"unknown engine {short_repr(fields.get('engine'))} (choose from: {', '.join(ENGINES)})")
    timeout = fields.get("reply_timeout")
    if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise SemcomError(f"reply_timeout must be a positive number of seconds (got {short_repr(timeout)})")
    nodes = fields.get("nodes")
    if nodes is not None and not all(isinstance(n, int) and not isinstance(n, bool) for n in nodes):
        raise SemcomError("the job's nodes must be node ids (integers)")
    for key in fields.get("overrides", {}):
        if not (isinstance(key, str) and key.startswith("train.federated.")):
            raise SemcomError(f"the job overrides {short_repr(key)}; a federated job overrides train.federated.* only")


class RunGrid:
    """The grid as the ServerApp uses it: every message recorded both ways (``job.message_log``), replies
    awaited with the job's timeout and stop, and (``nodes``: the deployment engine) only the run's own
    nodes exist, a message to any other refused. Everything else is Flower's grid's own; Flower's
    workflows (the averaging) use it as they would the grid."""

    def __init__(self, grid, job: FederatedJob, nodes: list[int] | None = None, poll: float = 0.1):
        self._grid, self._job, self._poll = grid, job, poll
        self._nodes = set(nodes) if nodes is not None else None
        self._sent: dict[str, int] = {}  # message id → its device, for the replies (an error's sender varies)
        self.round = 0

    def get_node_ids(self):
        return [n for n in self._grid.get_node_ids() if self._nodes is None or n in self._nodes]

    def push_messages(self, messages):
        messages = list(messages)
        for m in messages:
            if self._nodes is not None and m.metadata.dst_node_id not in self._nodes:
                raise SemcomError(f"a message to node {m.metadata.dst_node_id}, not one of this run's")
        ids = list(self._grid.push_messages(messages))
        for m, message_id in zip(messages, ids):
            self._sent[message_id] = m.metadata.dst_node_id
            self._job.message_log.record(m.content, round_=self.round, node=m.metadata.dst_node_id,
                                         direction="to_device", message_type=m.metadata.message_type)
        return ids

    def pull_messages(self, message_ids):
        replies = list(self._grid.pull_messages(message_ids))
        for reply in replies:
            node = self._sent.get(reply.metadata.reply_to_message_id)
            if node is not None and not reply.has_error():
                self._job.message_log.record(reply.content, round_=self.round, node=node, direction="to_server",
                                             message_type=reply.metadata.message_type)
        return replies

    def send_and_receive(self, messages, *, timeout: float | None = None):
        """Flower's ``send_and_receive`` polling every ``poll`` seconds (its own waits 3 s between polls in
        the deployment engine, several times a split step's compute) until the replies are in, the
        timeout (the job's when none is given) passes or the job is stopped."""
        timeout = timeout or self._job.reply_timeout
        waiting = set(self.push_messages(messages))
        replies, deadline = [], (time.time() + timeout) if timeout else None
        while waiting and (deadline is None or time.time() < deadline):
            self._job.check_running()
            got = self.pull_messages(waiting)
            replies += got
            waiting -= {m.metadata.reply_to_message_id for m in got}
            if waiting:
                time.sleep(self._poll)
        return replies

    def __getattr__(self, name):
        return getattr(self._grid, name)


def _wait_for_devices(grid, devices: int, job: FederatedJob, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while len(list(grid.get_node_ids())) < devices:
        job.check_running()
        if time.time() > deadline:
            raise SemcomError(f"only {len(list(grid.get_node_ids()))} of {devices} devices connected within "
                              f"{timeout:.0f} s")
        time.sleep(0.2)


def _exchange(grid: RunGrid, messages: list) -> dict[int, object]:
    """Send and return the good replies by device (node id); a device that answered with an error, or
    not in time, is left out."""
    sent = {m.metadata.dst_node_id for m in messages}
    return {reply.metadata.src_node_id: reply for reply in grid.send_and_receive(messages)
            if not reply.has_error() and reply.metadata.src_node_id in sent}


def _u_shaped_step(grid: RunGrid, back: ServerBack, act: Activations, node: int, step: int):
    """One U-shaped server step on one device's activations: its label-free outputs out, the device's
    gradient at them back, the back stepped. (loss, d loss / d y), or None when the device did not answer."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict  # optional heavy: Flower (federated only)

    outputs = back.start(act)
    message = Message(RecordDict({"outputs": ArrayRecord(outputs.arrays()), "config": ConfigRecord({"step": step})}),
                      dst_node_id=node, message_type="train.loss")
    reply = _exchange(grid, [message]).get(node)
    try:
        gradient = Outputs.from_arrays(reply.content["output-gradients"].to_torch_state_dict())
        loss = float(reply.content["metrics"]["loss"])
        usable = all(g.shape == o.shape and bool(torch.isfinite(g).all())
                     for g, o in ((gradient.decision, outputs.decision), (gradient.answers, outputs.answers)))
    except (AttributeError, KeyError, TypeError, ValueError):  # no reply, or not one a device of ours sends
        usable = False
    if not usable:
        back.finish_without()
        return None
    return loss, back.finish(gradient)


def serve(grid: RunGrid, job: FederatedJob, model: SemcomModel,
          on_round: Callable[[ServerState], None] | None = None, resume: ServerState | None = None) -> ServerState:
    """``rounds`` rounds of split steps and averaging on ``model`` (its front is replaced by each round's
    average, its back trained in place); ``on_round`` is called after each round."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict  # optional heavy: Flower (federated only)

    cfg = model.preset.train.federated
    state = resume or ServerState(model, ServerBack(model, model.get_llm(), cfg))
    preset_json = json.dumps(model.preset.model_dump(exclude={"device"}))
    started = time.time() - state.seconds
    _wait_for_devices(grid, cfg.clients, job)
    for round_ in range(state.round + 1, cfg.rounds + 1):
        job.check_running()
        grid.round = round_
        arrays = ArrayRecord(front_state(model))
        config = ConfigRecord({"preset": preset_json, "embed-dim": model.embed_dim, "server-round": round_,
                               "proximal-mu": cfg.proximal_mu})
        starts = [Message(RecordDict({"arrays": arrays, "config": config}), dst_node_id=node,
                          message_type="train.start") for node in sorted(grid.get_node_ids())]
        replies = _exchange(grid, starts)
        for step in range(1, cfg.local_steps + 1):
            gradients = {}
            # the server steps on the devices' activations in device order (node ids are random)
            for node in sorted(replies, key=lambda n: int(replies[n].content["device"]["index"])):
                job.check_running()
                act = Activations.from_arrays(replies[node].content["symbols"].to_torch_state_dict())
                if cfg.u_shaped:
                    step_result = _u_shaped_step(grid, state.back, act, node, step - 1)
                    if step_result is None:  # the device did not answer: it is out for the round
                        continue
                    loss, grad = step_result
                else:
                    loss, grad = state.back.step(act)
                state.losses.append(loss)
                gradients[node] = grad
            last = step == cfg.local_steps
            messages = [Message(RecordDict({"gradients": ArrayRecord({"grad_y": grad}),
                                            "config": ConfigRecord({"step": step})}),
                                dst_node_id=node, message_type="train.end" if last else "train.step")
                        for node, grad in gradients.items()]
            replies = _exchange(grid, messages)
        for node in sorted({m.metadata.dst_node_id for m in starts} - set(replies)):
            state.dropped.append({"round": round_, "node": int(node)})
        if replies:
            averaged, state.momentum = average_fronts(grid, cfg, round_, sorted(replies), front_parameters(model),
                                                      state.momentum, model.preset.seed, job.reply_timeout)
            if averaged is not None:  # no device answered the averaging: the front stays as it was
                load_front_parameters(model, averaged)
        job.check_running()
        state.round = round_
        state.seconds = time.time() - started
        if on_round is not None:
            on_round(state)
    return state


def run_job(grid, job: FederatedJob) -> dict:
    """The ServerApp's whole work in either engine: load (or resume), train, write the checkpoint at
    ``job.output`` with partial runs beside it every ``save_every`` rounds; returns the summary."""

    output = Path(job.output)
    grid = RunGrid(grid, job, job.nodes)
    if job.resume:
        model, resume, history = load_server_partial(output, job)
    else:

        model = SemcomModel.from_pretrained(job.checkpoint, job.overrides)
        history, resume = read_history(job.checkpoint), None
    if resume is None:
        model.get_llm()
    every = model.preset.train.federated.save_every

    def on_round(state: ServerState) -> None:
        cfg = model.preset.train.federated
        recent = state.losses[-cfg.local_steps * cfg.clients:]
        print(f"federated: round {state.round}/{cfg.rounds}, loss {sum(recent) / max(len(recent), 1):.4f}, "
              f"{state.seconds:.0f} s", file=sys.stderr, flush=True)
        if every and state.round % every == 0 and state.round < model.preset.train.federated.rounds:
            job.check_running()  # nothing is written once the command is ending
            save_server_partial(output, state, job, history)

    state = serve(grid, job, model, on_round, resume)
    job.check_running()
    return partial_runs.finish(output, state, job, history)


def make_server_app(job: FederatedJob, result: list | None = None, threads: list | None = None):
    """A ServerApp running ``job``; its summary is appended to ``result`` and the thread it runs in to
    ``threads`` (the simulation engine runs the ServerApp in a thread of this process)."""
    from flwr.serverapp import ServerApp  # optional heavy: Flower (federated only)

    app = ServerApp()

    @app.main()
    def main(grid, context):
        if threads is not None:
            threads.append(threading.current_thread())  # joined when the command ends early
        summary = run_job(grid, job)
        if result is not None:
            result.append(summary)

    return app


def _deployed_server_app():
    """The ServerApp ``flwr run`` starts (deployment engine): the job comes as run config."""
    from flwr.serverapp import ServerApp  # optional heavy: Flower (federated only)

    app = ServerApp()

    @app.main()
    def main(grid, context):
        run_job(grid, FederatedJob.from_run_config(dict(context.run_config)))

    return app


client_app = _make_client_app()
server_app = _deployed_server_app()
