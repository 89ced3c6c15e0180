"""The split training step: the device's front, the server's back, and what crosses between them.

semcom's transmitter/receiver boundary is the natural split. A device holds the front (vision
encoder, KAN projector, channel encoder) and its pictures; the edge server holds the back (channel
decoder and the LLM with its LoRA adapter). One step:

1. device: pictures → symbols → the simulated channel at the device's own SNR and channel kind →
   :class:`Activations` (received symbols, channel gains, SNR, and each picture's caption index as
   the label);
2. server: equaliser + channel decoder → caption codebook → LLM answer loss on the caption task
   (plus the codebook's own decision term); it steps the back and returns d loss / d received
   symbols;
3. device: recomputes its forward pass from the same step key (the same rows, SNRs and noise: the
   front has no randomness of its own), back-propagates the returned gradient through the channel
   into its front and steps it.

**U-shaped** (``u_shaped``): the labels stay on the device. In step 2 the server sends back, instead
of taking a label, what any label's loss is computed from (:class:`Outputs`: the codebook's scores of
the 24 captions for every picture, and −log p of each caption's answer through the LLM for the
``llm_batch`` pictures); the device computes the same loss from them with its labels
(:func:`device_loss`) and returns its gradient at them; the server back-propagates that into its back
and the symbols. No label id and no caption text crosses; the gradient the device returns is still a
function of its labels (see docs/federated.md).

Recomputing (rather than keeping the autograd graph between two messages) keeps the device
stateless between messages but for its weights and optimizer moments, which Flower can store.
Raw pictures never leave :class:`DeviceFront`; the messages carry only :class:`Activations` and
gradients (:mod:`.messages` records them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.config.preset import FederatedTrain
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.domains import DeviceShard
from semcom_cli.models import LLM
from semcom_cli.models.codebook import CAPTIONS, caption_scores, read_packets
from semcom_cli.models.llm import attach_lora
from semcom_cli.models.prompting import candidate_nll, candidate_token_counts, instruct_loss
from semcom_cli.system import SemcomModel
from semcom_cli.tasks.shapes import caption_text
from semcom_cli.training.stages import _caption_cross_entropy
from semcom_cli.training.trainer import load_optimizer_state, optimizer_state

__all__ = ["Activations", "Outputs", "DeviceFront", "ServerBack", "device_loss", "front_state", "load_front_state",
           "FRONT_PARTS", "front_parameters", "load_front_parameters", "CANDIDATES", "DECISION_TEMPERATURE",
           "step_labels", "loss_gradient"]

FRONT_PARTS = ("vision", "projector", "channel_encoder")
CANDIDATES = [caption_text(*c) for c in CAPTIONS]  # every answer a caption step can have: public
DECISION_TEMPERATURE = 0.05  # the codebook decision's (training.stages._caption_cross_entropy's default)


@dataclass
class Activations:
    """What a device sends per step: received symbols y [B, T, m, 2], channel gains as reals
    ([B, 2] block fading, [B, T, m, 2] per symbol), link SNR [B] (dB), caption indices [B] (None in
    a U-shaped split: they stay on the device)."""

    y: torch.Tensor
    gains: torch.Tensor
    snr: torch.Tensor
    labels: torch.Tensor | None

    def arrays(self) -> dict[str, torch.Tensor]:
        arrays = {"y": self.y.detach(), "gains": self.gains, "snr": self.snr}
        return arrays if self.labels is None else {**arrays, "labels": self.labels}

    @classmethod
    def from_arrays(cls, arrays: dict[str, torch.Tensor]) -> "Activations":
        return cls(arrays["y"], arrays["gains"], arrays["snr"], arrays.get("labels"))


@dataclass
class Outputs:
    """What the server returns in a U-shaped step (and the device's gradient at it, same shapes): the
    codebook decision's scores of every caption for every picture [B, C], −log p of every caption's
    answer through the LLM for the first ``llm_batch`` pictures [n, C], each caption's token count [C]."""

    decision: torch.Tensor
    answers: torch.Tensor
    counts: torch.Tensor

    def arrays(self) -> dict[str, torch.Tensor]:
        return {"decision": self.decision.detach(), "answers": self.answers.detach(), "counts": self.counts}

    @classmethod
    def from_arrays(cls, arrays: dict[str, torch.Tensor]) -> "Outputs":
        return cls(arrays["decision"], arrays["answers"], arrays["counts"])


def device_loss(outputs: Outputs, labels: torch.Tensor, caption_weight: float) -> torch.Tensor:
    """The split step's loss from the server's label-free outputs and the device's labels: equal to
    :meth:`ServerBack.loss` (answer tokens' mean cross-entropy + the codebook decision's)."""
    decision = F.cross_entropy(outputs.decision, labels, reduction="sum") / max(len(labels), 1)
    n = outputs.answers.shape[0]
    if n == 0:
        return caption_weight * decision
    mine = labels[:n]
    answers = outputs.answers.gather(1, mine[:, None]).sum() / outputs.counts[mine].sum()
    return answers + caption_weight * decision


def front_state(model: SemcomModel) -> dict[str, torch.Tensor]:
    """The front's weights, by ``part.name`` (what FedAvg averages)."""
    return {f"{part}.{k}": v.detach().clone() for part in FRONT_PARTS
            for k, v in getattr(model, part).state_dict().items()}


def load_front_state(model: SemcomModel, state: dict[str, torch.Tensor]) -> None:
    for part in FRONT_PARTS:
        prefix = f"{part}."
        getattr(model, part).load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                             strict=True)


def _named_front_parameters(model: SemcomModel) -> list[tuple[str, torch.nn.Parameter]]:
    return [(f"{part}.{k}", p) for part in FRONT_PARTS for k, p in getattr(model, part).named_parameters()]


def front_parameters(model: SemcomModel) -> list[np.ndarray]:
    """The front's parameters in a fixed order (what a round averages: its buffers are constants)."""
    return [p.detach().cpu().numpy().copy() for _, p in _named_front_parameters(model)]


def load_front_parameters(model: SemcomModel, arrays: list[np.ndarray]) -> None:
    named = _named_front_parameters(model)
    if len(arrays) != len(named):
        raise SemcomError(f"an averaged front of {len(arrays)} arrays for a front of {len(named)} parameters")
    with torch.no_grad():
        for (name, p), a in zip(named, arrays):
            if tuple(a.shape) != tuple(p.shape):
                raise SemcomError(f"the averaged front's {name} is {tuple(a.shape)}, not {tuple(p.shape)}")
            p.copy_(torch.from_numpy(np.asarray(a)).to(p))


def _step_rng(seed: int, node: int, round_: int, step: int) -> random.Random:
    return random.Random(f"federated-step:{seed}:{node}:{round_}:{step}")


def _rows(rng: random.Random, shard_size: int, batch_size: int) -> list[int]:
    return [rng.randrange(shard_size) for _ in range(batch_size)]  # a step's first draws: its pictures


def step_labels(shard: DeviceShard, batch_size: int, seed: int, node: int, round_: int, step: int) -> torch.Tensor:
    """The caption indices of a step's pictures (the rows :meth:`DeviceFront.forward` draws), without
    building the front: what a U-shaped device needs to compute its loss."""
    return shard.batch(_rows(_step_rng(seed, node, round_, step), len(shard), batch_size))[1]


def loss_gradient(outputs: Outputs, labels: torch.Tensor, caption_weight: float) -> tuple[float, Outputs]:
    """U-shaped, on the device: the step's loss from the server's outputs and the device's labels, and its
    gradient at the outputs (what goes back)."""
    decision = outputs.decision.detach().float().requires_grad_(True)
    answers = outputs.answers.detach().float().requires_grad_(True)
    loss = device_loss(Outputs(decision, answers, outputs.counts), labels, caption_weight)
    loss.backward()
    return loss.item(), Outputs(decision.grad, answers.grad, outputs.counts)


class DeviceFront:
    """A device's half of the model and its shard; ``node`` is its place among the devices."""

    def __init__(self, model: SemcomModel, shard: DeviceShard, cfg: FederatedTrain, node: int, seed: int):
        self.model, self.shard, self.cfg, self.node, self.seed = model, shard, cfg, node, seed
        for part in FRONT_PARTS:
            getattr(model, part).requires_grad_(True)
        self.params = [p for part in FRONT_PARTS for p in getattr(model, part).parameters()]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr_front)
        self.anchor: dict[str, torch.Tensor] | None = None  # the round's global front (FedProx)

    def start_round(self, global_front: dict[str, torch.Tensor]) -> None:
        """Take the server's averaged front and start a fresh local optimizer (moments are local)."""
        load_front_state(self.model, global_front)
        self.opt = torch.optim.Adam(self.params, lr=self.cfg.lr_front)
        self.anchor = {k: v.clone() for k, v in global_front.items()} if self.cfg.proximal_mu > 0 else None

    def optimizer_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, param_groups = optimizer_state(self.opt)
        return tensors, {"param_groups": param_groups}

    def load_optimizer(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        load_optimizer_state(self.opt, tensors, meta["param_groups"])

    def _forward(self, round_: int, step: int) -> tuple[torch.Tensor, Activations]:
        rng = _step_rng(self.seed, self.node, round_, step)
        rows = _rows(rng, len(self.shard), self.cfg.batch_size)
        images, labels = self.shard.batch(rows)
        snr = torch.tensor([rng.uniform(self.cfg.snr_min, self.cfg.snr_max) for _ in rows])
        channel = make_channel(self.cfg.channels[rng.randrange(len(self.cfg.channels))],
                               self.model.preset.channel.model_dump(), self.model.device)
        seed_channel(rng.randrange(1 << 31))  # the same noise when the step is recomputed
        tokens, mask = self.model.image_tokens(images)
        y, h = channel.send(self.model.encode(tokens, mask, "image"), snr)
        return y, Activations(y.detach(), torch.view_as_real(h.to(torch.complex64)).clone(), snr,
                              None if self.cfg.u_shaped else labels)

    def forward(self, round_: int, step: int) -> Activations:
        """The step's activations, to send (no graph kept)."""
        with torch.no_grad():
            return self._forward(round_, step)[1]

    def backward(self, round_: int, step: int, grad_y: torch.Tensor) -> None:
        """Recompute the step, back-propagate the server's gradient at the symbols, step the front."""
        for part in FRONT_PARTS:
            getattr(self.model, part).train()
        y, _ = self._forward(round_, step)
        self.opt.zero_grad(set_to_none=True)
        surrogate = (y * grad_y.to(y)).sum()  # d surrogate / d y = grad_y
        if self.anchor is not None:  # FedProx: stay near the round's global front
            named = {f"{part}.{k}": p for part in FRONT_PARTS for k, p in getattr(self.model, part).named_parameters()}
            surrogate = surrogate + self.cfg.proximal_mu / 2 * sum(
                ((p - self.anchor[k].to(p)) ** 2).sum() for k, p in named.items())
        surrogate.backward()
        self.opt.step()
        for part in FRONT_PARTS:
            getattr(self.model, part).eval()


class ServerBack:
    """The server's half: channel decoder and the LLM's LoRA, trained on every device's activations."""

    def __init__(self, model: SemcomModel, llm: LLM, cfg: FederatedTrain):
        self.model, self.llm, self.cfg = model, llm, cfg
        if not hasattr(llm.model, "peft_config"):
            attach_lora(llm, model.preset.backbone.lora)
        for name, p in llm.model.named_parameters():  # a loaded adapter continues training
            p.requires_grad_(cfg.train_lora and "lora_" in name)
        model.channel_decoder.requires_grad_(True)
        groups = [{"params": list(model.channel_decoder.parameters()), "lr": cfg.lr_back}]
        lora = [p for p in llm.model.parameters() if p.requires_grad]
        if lora:
            groups.append({"params": lora, "lr": cfg.lr_lora})
        self.opt = torch.optim.AdamW(groups)
        self.params = [p for g in groups for p in g["params"]]
        self.captions = model.caption_codebook()
        self._pending = None  # a U-shaped step between its two halves: (y, outputs)
        self.candidate_counts = torch.tensor(candidate_token_counts(llm, CANDIDATES), dtype=torch.float32)

    def optimizer_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, param_groups = optimizer_state(self.opt)
        return tensors, {"param_groups": param_groups}

    def load_optimizer(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        load_optimizer_state(self.opt, tensors, meta["param_groups"])

    def named_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The back's trained parameters by name (channel decoder, LoRA)."""
        decoder = [(f"channel_decoder.{k}", p) for k, p in self.model.channel_decoder.named_parameters()]
        return decoder + [(f"llm.{k}", p) for k, p in self.llm.model.named_parameters() if p.requires_grad]

    def _read(self, act: Activations, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mask, the decoder's tokens, what the LLM reads) for the received symbols ``y``."""
        mask = torch.ones(y.shape[:2], dtype=torch.long, device=y.device)
        h = torch.view_as_complex(act.gains.float().contiguous()).to(y.device)
        tokens = self.model.receive(y, h, act.snr, mask, "image", codebook=False)
        read = (read_packets(tokens, mask, self.captions, self.model.preset.codec.codebook_temperature)
                if self.model.reads_captions("image") else tokens)
        return mask, tokens, read

    def loss(self, act: Activations, y: torch.Tensor) -> torch.Tensor:
        """The caption answer's loss through decoder, codebook and LLM, plus the codebook's decision."""
        mask, tokens, read = self._read(act, y)
        labels = act.labels.to(y.device)
        decision = _caption_cross_entropy(tokens, labels, F.normalize(self.captions, dim=-1), labels,
                                          temperature=DECISION_TEMPERATURE)
        n = min(self.cfg.llm_batch, len(labels))  # the LLM's pass is most of a step's cost: a sub-batch
        if n == 0:
            return self.cfg.caption_weight * decision
        answers = [caption_text(*CAPTIONS[int(i)]) for i in labels[:n]]
        answer_loss = instruct_loss(self.llm, ["caption"] * n, [None] * n, read[:n], mask[:n], answers)
        return answer_loss + self.cfg.caption_weight * decision

    def outputs(self, act: Activations, y: torch.Tensor) -> Outputs:
        """U-shaped: what any label's loss is computed from, without a label (the same decoder, codebook
        and LLM passes as :meth:`loss`; every caption's answer scored instead of the right one's)."""
        mask, tokens, read = self._read(act, y)
        decision = caption_scores(tokens, F.normalize(self.captions, dim=-1)) / DECISION_TEMPERATURE
        n = min(self.cfg.llm_batch, len(y))
        answers = (candidate_nll(self.llm, ["caption"] * n, [None] * n, read[:n], mask[:n], CANDIDATES) if n
                   else decision.new_zeros(0, len(CANDIDATES)))
        return Outputs(decision, answers, self.candidate_counts)

    def _begin(self, act: Activations) -> torch.Tensor:
        """A server step's start: the back in training mode, the received symbols as a leaf to differentiate."""
        self.model.channel_decoder.train()
        self.llm.model.train(self.cfg.train_lora)
        return act.y.detach().clone().to(self.model.device).requires_grad_(True)

    def _end(self, backward=None) -> None:
        """A server step's end: ``backward`` fills the gradients, the back steps; back in evaluation mode."""
        if backward is not None:
            self.opt.zero_grad(set_to_none=True)
            backward()
            self.opt.step()
        self.model.channel_decoder.eval()
        self.llm.model.eval()

    def start(self, act: Activations) -> Outputs:
        """U-shaped step, first half: the outputs to send; the graph is kept until :meth:`finish`."""
        y = self._begin(act)
        self._pending = (y, self.outputs(act, y))
        return self._pending[1]

    def finish(self, gradient: Outputs) -> torch.Tensor:
        """U-shaped step, second half: back-propagate the device's gradient at the outputs, step the
        back, return d loss / d y."""
        y, outputs = self._pending
        self._pending = None
        pairs = [(o, g.to(o)) for o, g in ((outputs.decision, gradient.decision), (outputs.answers, gradient.answers))
                 if o.requires_grad]
        self._end(lambda: torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs]))
        return y.grad.detach().cpu()

    def finish_without(self) -> None:
        """U-shaped step whose device never answered: drop its graph, leave the back as it was."""
        self._pending = None
        self._end()

    def step(self, act: Activations) -> tuple[float, torch.Tensor]:
        """One server step on one device's activations: (loss, d loss / d y)."""
        y = self._begin(act)
        loss = self.loss(act, y)
        self._end(loss.backward)
        return loss.item(), y.grad.detach().cpu()
