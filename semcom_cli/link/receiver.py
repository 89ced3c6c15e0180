"""The receiver as a library call: a received semantic file (and a share set's public copy) → answer.

Checks that the file is a received one, that it was encoded with this model's
checkpoint, and that a share-set user's public copy belongs to it; then equalises,
decodes and asks the LLM the task's instruction.
"""

from __future__ import annotations

import torch

from semcom_cli.channel import gain_from_real
from semcom_cli.core.errors import SemcomError
from semcom_cli.io.semantic import SemanticFile, check_checkpoint
from semcom_cli.link.share_set import receive_share_user
from semcom_cli.models.codebook import CAPTIONS, caption_scores
from semcom_cli.retrieval.retriever import read_with_retrieval, receive_packets
from semcom_cli.retrieval.scenes import caption_prior
from semcom_cli.tasks import get_task
from semcom_cli.tasks.shapes import caption_text

__all__ = ["decode_file"]


def _scene_prior(model, retriever, source: str) -> torch.Tensor:
    """An image packet's prior from the user's local base of recent scenes (their captions)."""

    if retriever.local_kb is None:
        raise SemcomError(f"{source}: an image packet is read with the user's recent scenes: give --kb-local "
                          f"(the global base holds sentences)")
    if not model.reads_captions("image"):
        raise SemcomError(f"checkpoint {model.name} does not read image packets as captions "
                          f"(codec.image_codebook: none), so recent scenes cannot weigh them")
    return caption_prior(retriever.local_kb.entries)[None]


def _check_received(sem: SemanticFile, question: str | None, public: SemanticFile | None, source: str) -> None:
    header = sem.header
    task = get_task(header.task)
    if task.instruction is None and not (question and question.strip()):
        raise SemcomError(f"task '{task.name}' needs a question (--question)")
    if header.role == "public":
        raise SemcomError(f"{source}: a public file; decode the user's own file and give this one with --public")
    if public is not None and header.share_id is None:
        raise SemcomError(f"{source}: not part of a share set, so it takes no --public file")


@torch.no_grad()
def decode_file(model, sem: SemanticFile, question: str | None = None, public: SemanticFile | None = None,
                source: str = "input", public_source: str | None = None, status=None, retriever=None) -> dict:
    """The answer to a received file (``transmit`` stage), with what it was sent over. With a
    ``retriever`` (:mod:`semcom_cli.retrieval`; packets sent whole), a text packet is read again with
    the entries it retrieved (the result records both readings and the entries), and an image packet
    is read with the user's recent scenes (the local base's captions) as a prior on the captions (the
    result records the caption read)."""
    sem.expect("transmit", source)
    _check_received(sem, question, public, source)
    header = sem.header
    check_checkpoint(header, model, source)
    symbols = sem.tensors["symbols"]  # its shape and gain were checked on reading (io.check_semantic)
    scene_prior = None
    if retriever is not None:
        if header.copies is not None or header.share_id is not None:
            kind = "a variable-rate packet" if header.copies is not None else "part of a share set"
            raise SemcomError(f"{source}: retrieval reads packets sent whole, alone; this one is {kind}")
        if header.modality == "image":
            scene_prior = _scene_prior(model, retriever, source)
    if header.share_id is not None:

        tokens = receive_share_user(model, sem, public, source, public_source)[None]
    elif header.copies is not None:  # variable rate: combined copies, a gain per symbol
        if not model.reads_captions(header.modality) and min(header.copies) == 0:
            raise SemcomError(f"{source}: leaves tokens out, which checkpoint {model.name} cannot restore "
                              f"for {header.modality} packets")
        copies = torch.tensor(header.copies)[None]
        tokens = model.receive_repeated(symbols[None], gain_from_real(sem.tensors["gain"]), float(header.snr_db),
                                        copies, header.modality)
    else:
        mask = torch.ones(1, symbols.shape[0], dtype=torch.long)
        tokens = model.receive(symbols[None], gain_from_real(sem.tensors["gain"]), float(header.snr_db), mask,
                               header.modality, caption_prior=scene_prior)
    mask = torch.ones(tokens.shape[:2], dtype=torch.long, device=tokens.device)
    model.get_llm(status)
    tag = get_task(header.task).tag
    hits = None
    if retriever is not None and header.modality == "text":

        packets = receive_packets(model, symbols[None], gain_from_real(sem.tensors["gain"]), float(header.snr_db),
                                  mask)
        answers, first, hits = read_with_retrieval(model, [tag], [question], packets, retriever)
        answer = answers[0]
    else:
        answer = model.answer([tag], [question], tokens, mask)[0]
    result = {"answer": answer, "task": header.task, "question": question, "channel": header.channel,
              "snr_db": header.snr_db, "seed": header.seed, "channel_uses": header.channel_uses,
              "source": header.source, "checkpoint": model.name, "checkpoint_hash": model.hash}
    if hits is not None:
        result.update({"first_reading": first[0], "retrieved": [
            {"text": h.text, "score": round(h.score, 4), "base": h.base} for h in hits[0]]})
    if scene_prior is not None:

        best = int(caption_scores(tokens, torch.nn.functional.normalize(model.caption_codebook(), dim=-1)).argmax())
        result.update({"caption": caption_text(*CAPTIONS[best]),
                       "recent_scenes": {"base": retriever.local_kb.name, "scenes": len(retriever.local_kb)}})
    if header.copies is not None:
        result.update({"copies": header.copies, "rate": header.rate})
    if header.share_id is not None:
        result.update({"user": header.user, "share_id": header.share_id,
                       "public_channel_uses": public.header.channel_uses if public else 0})
    return result
