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

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.config.preset import FederatedTrain
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.domains import DeviceShard
from semcom_cli.models import LLM
from semcom_cli.models.codebook import CAPTIONS, read_packets
from semcom_cli.models.llm import attach_lora
from semcom_cli.models.prompting import instruct_loss
from semcom_cli.system import SemcomModel
from semcom_cli.tasks.shapes import caption_text
from semcom_cli.training.stages import _caption_cross_entropy
from semcom_cli.training.trainer import load_optimizer_state, optimizer_state

__all__ = ["Activations", "DeviceFront", "ServerBack", "front_state", "load_front_state", "FRONT_PARTS",
           "front_parameters", "load_front_parameters"]

FRONT_PARTS = ("vision", "projector", "channel_encoder")


@dataclass
class Activations:
    """What a device sends per step: received symbols y [B, T, m, 2], channel gains as reals
    ([B, 2] block fading, [B, T, m, 2] per symbol), link SNR [B] (dB), caption indices [B]."""

    y: torch.Tensor
    gains: torch.Tensor
    snr: torch.Tensor
    labels: torch.Tensor

    def arrays(self) -> dict[str, torch.Tensor]:
        return {"y": self.y.detach(), "gains": self.gains, "snr": self.snr, "labels": self.labels}

    @classmethod
    def from_arrays(cls, arrays: dict[str, torch.Tensor]) -> "Activations":
        return cls(arrays["y"], arrays["gains"], arrays["snr"], arrays["labels"])


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
        rows = [rng.randrange(len(self.shard)) for _ in range(self.cfg.batch_size)]
        images, labels = self.shard.batch(rows)
        snr = torch.tensor([rng.uniform(self.cfg.snr_min, self.cfg.snr_max) for _ in rows])
        channel = make_channel(self.cfg.channels[rng.randrange(len(self.cfg.channels))],
                               self.model.preset.channel.model_dump(), self.model.device)
        seed_channel(rng.randrange(1 << 31))  # the same noise when the step is recomputed
        tokens, mask = self.model.image_tokens(images)
        y, h = channel.send(self.model.encode(tokens, mask, "image"), snr)
        return y, Activations(y.detach(), torch.view_as_real(h.to(torch.complex64)).clone(), snr, labels)

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

    def optimizer_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, param_groups = optimizer_state(self.opt)
        return tensors, {"param_groups": param_groups}

    def load_optimizer(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        load_optimizer_state(self.opt, tensors, meta["param_groups"])

    def loss(self, act: Activations, y: torch.Tensor) -> torch.Tensor:
        """The caption answer's loss through decoder, codebook and LLM, plus the codebook's decision."""

        mask = torch.ones(y.shape[:2], dtype=torch.long, device=y.device)
        h = torch.view_as_complex(act.gains.float().contiguous()).to(y.device)
        tokens = self.model.receive(y, h, act.snr, mask, "image", codebook=False)
        read = (read_packets(tokens, mask, self.captions, self.model.preset.codec.codebook_temperature)
                if self.model.reads_captions("image") else tokens)  # what the LLM reads
        labels = act.labels.to(y.device)
        decision = _caption_cross_entropy(tokens, labels, torch.nn.functional.normalize(self.captions, dim=-1),
                                          labels)
        n = min(self.cfg.llm_batch, len(labels))  # the LLM's pass is most of a step's cost: a sub-batch
        if n == 0:
            return self.cfg.caption_weight * decision
        answers = [caption_text(*CAPTIONS[int(i)]) for i in labels[:n]]
        answer_loss = instruct_loss(self.llm, ["caption"] * n, [None] * n, read[:n], mask[:n], answers)
        return answer_loss + self.cfg.caption_weight * decision

    def step(self, act: Activations) -> tuple[float, torch.Tensor]:
        """One server step on one device's activations: (loss, d loss / d y)."""
        self.model.channel_decoder.train()
        self.llm.model.train(self.cfg.train_lora)
        y = act.y.detach().clone().to(self.model.device).requires_grad_(True)
        loss = self.loss(act, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.model.channel_decoder.eval()
        self.llm.model.eval()
        return loss.item(), y.grad.detach().cpu()
