"""LLM inputs from the instruction template: the teacher-forced loss and greedy answers.

The received semantic tokens are spliced into the template as input embeddings,
between the text before and after the ``<sem>`` placeholder.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from semcom_cli.models.llm import LLM
from semcom_cli.tasks import END_OF_TURN, get_task

__all__ = ["build_inputs", "instruct_loss", "answer_log_likelihood", "answer_token_count", "generate_answers",
           "candidate_nll", "candidate_token_counts"]


def _ids(llm: LLM, text: str) -> list[int]:
    return _cached_ids(llm.tokenizer, text)


@lru_cache(maxsize=4096)
def _cached_ids(tokenizer, text: str) -> tuple[int, ...]:
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_inputs(
    llm: LLM,
    tasks: list[str],
    instructions: list[str | None],
    sem: torch.Tensor,
    sem_mask: torch.Tensor,
    answers: list[str] | None = None,
    contexts: list[list[str] | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Assemble [prompt-before, semantic tokens, prompt-after, answer] per sample.

    Args:
        sem: [B, T, D] semantic tokens in the LLM embedding space; sem_mask: [B, T].
        answers: targets for training (followed by the end-of-turn token), or None.
        contexts: per sample, the entries a knowledge base returned (None or empty: none).

    Returns:
        embeds [B, L, D], attention_mask [B, L], labels [B, L] (-100 off the answer) or None.
    """
    embed = llm.model.get_input_embeddings()
    seqs, label_seqs = [], []
    contexts = contexts or [None] * len(tasks)
    for i, (task, instruction) in enumerate(zip(tasks, instructions)):
        before, after = get_task(task).prompt(instruction, contexts[i])
        prompt_b = torch.tensor(_ids(llm, before), device=sem.device)
        prompt_a = torch.tensor(_ids(llm, after), device=sem.device)
        pieces = [embed(prompt_b), sem[i][sem_mask[i].bool()], embed(prompt_a)]
        n_prompt = sum(p.shape[0] for p in pieces)
        labels = [-100] * n_prompt
        if answers is not None:
            ans = torch.tensor(_ids(llm, answers[i] + END_OF_TURN), device=sem.device)
            pieces.append(embed(ans))
            labels += ans.tolist()
        seqs.append(torch.cat(pieces))
        label_seqs.append(labels)
    length = max(s.shape[0] for s in seqs)
    b, d = len(seqs), seqs[0].shape[1]
    embeds = seqs[0].new_zeros(b, length, d)
    mask = torch.zeros(b, length, dtype=torch.long, device=sem.device)
    labels_t = torch.full((b, length), -100, dtype=torch.long, device=sem.device)
    for i, (s, lab) in enumerate(zip(seqs, label_seqs)):
        n = s.shape[0]
        sl = slice(length - n, length)  # left padding: every sequence ends at the last position
        embeds[i, sl] = s
        mask[i, sl] = 1
        labels_t[i, sl] = torch.tensor(lab, device=sem.device)
    return embeds, mask, (labels_t if answers is not None else None)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp_min(0)


def answer_token_count(llm: LLM, answers: list[str]) -> int:
    """How many answer tokens (with the end-of-turn token) the loss averages over."""
    return sum(len(_ids(llm, a + END_OF_TURN)) for a in answers)


def _answer_logits(llm: LLM, tasks, instructions, sem, sem_mask, answers,
                   contexts=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced logits [B, A, V] predicting the answer positions, and their targets [B, A]
    (-100 where a shorter answer is padded)."""
    # Left padding puts every answer at the end, so the vocabulary projection (a fifth of the
    # model's work) runs only on the last positions, the ones that predict answer tokens.
    embeds, mask, labels = build_inputs(llm, tasks, instructions, sem, sem_mask, answers, contexts)
    longest = int((labels != -100).sum(-1).max())
    logits = llm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=_positions(mask),
                       logits_to_keep=longest + 1).logits
    return logits[:, :-1], labels[:, -longest:]


def instruct_loss(llm: LLM, tasks, instructions, sem, sem_mask, answers, normalizer: int | None = None,
                  contexts=None) -> torch.Tensor:
    """Cross-entropy of the answer tokens given the prompt and the semantic tokens: the mean over
    answer tokens, or their sum over ``normalizer`` (a whole batch's count, when this is a share)."""
    logits, targets = _answer_logits(llm, tasks, instructions, sem, sem_mask, answers, contexts)
    total = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
    return total / (normalizer or int((targets != -100).sum()))


def answer_log_likelihood(llm: LLM, tasks, instructions, sem, sem_mask, answers) -> torch.Tensor:
    """log p(answer + end of turn | prompt, semantic tokens) per sample [B], teacher-forced."""
    logits, targets = _answer_logits(llm, tasks, instructions, sem, sem_mask, answers)
    return -F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none").sum(-1)


def candidate_token_counts(llm: LLM, candidates: list[str]) -> list[int]:
    """How many tokens (with the end-of-turn token) each candidate answer has."""
    return [len(_ids(llm, c + END_OF_TURN)) for c in candidates]


def candidate_nll(llm: LLM, tasks, instructions, sem, sem_mask, candidates: list[str]) -> torch.Tensor:
    """−log p(candidate + end of turn | prompt, semantic tokens) for every sample and every candidate
    answer [B, C], teacher-forced, summed over the candidate's tokens: each sample's loss for any one
    candidate, computed without saying which is the right one.

    The candidates share prefixes (the 24 captions are "a <colour> <shape>"): the prompt runs once, then
    the KV cache walks the candidates' token trie a level at a time, each shared prefix once (1 + 1 + 8
    + 24 one-token rows for the captions instead of 24 whole sequences). Differentiable, like
    :func:`answer_log_likelihood`, which gives the same values one candidate at a time."""
    ids = [_ids(llm, c + END_OF_TURN) for c in candidates]
    embeds, mask, _ = build_inputs(llm, tasks, instructions, sem, sem_mask)
    b = embeds.shape[0]
    embed = llm.model.get_input_embeddings()
    positions = _positions(mask)
    out = llm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
    past, logp = out.past_key_values, out.logits[:, -1].float().log_softmax(-1)  # rows: node-major, b per node
    nodes = [()]  # the trie's nodes at this depth (token prefixes); node k holds rows k*b … k*b + b - 1
    rows = torch.arange(b, device=embeds.device)
    nll = embeds.new_zeros(b, len(ids), dtype=torch.float32)
    for depth in range(max(len(t) for t in ids)):
        index = {prefix: k for k, prefix in enumerate(nodes)}
        picked = []
        for c, tokens in enumerate(ids):
            if depth < len(tokens):
                node = index[tokens[:depth]]
                picked.append((c, node, tokens[depth]))
        columns = torch.tensor([c for c, _, _ in picked], device=embeds.device)
        token_logp = torch.stack([logp[node * b + rows, token] for _, node, token in picked], dim=1)
        nll = nll.index_add(1, columns, -token_logp)
        children = sorted({tokens[:depth + 1] for tokens in ids if depth + 1 < len(tokens)})
        if not children:
            break
        parent = torch.cat([index[child[:-1]] * b + rows for child in children])
        past.reorder_cache(parent)
        mask = torch.cat([mask[parent], mask.new_ones(len(parent), 1)], dim=1)
        positions = positions[parent][:, -1:] + 1
        step = torch.tensor([child[-1] for child in children], device=embeds.device).repeat_interleave(b)
        out = llm.model(inputs_embeds=embed(step[:, None]), attention_mask=mask, position_ids=positions,
                        past_key_values=past, use_cache=True)
        past, logp = out.past_key_values, out.logits[:, -1].float().log_softmax(-1)
        nodes = children
    return nll


@torch.no_grad()
def generate_answers(llm: LLM, tasks, instructions, sem, sem_mask, max_new_tokens: int = 8,
                     contexts=None) -> list[str]:
    """Greedy decoding with a KV cache, batched with left padding; ``contexts``: retrieved entries."""
    embeds, mask, _ = build_inputs(llm, tasks, instructions, sem, sem_mask, contexts=contexts)
    tok = llm.tokenizer
    stop = {tok.convert_tokens_to_ids(END_OF_TURN), tok.eos_token_id}
    embed = llm.model.get_input_embeddings()
    positions = _positions(mask)
    out = llm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
    b = embeds.shape[0]
    generated = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool)  # on the CPU: read every step
    for _ in range(max_new_tokens):
        nxt = out.logits[:, -1].argmax(-1)
        picked = nxt.tolist()
        for i in range(b):
            if not done[i]:
                if picked[i] in stop:
                    done[i] = True
                else:
                    generated[i].append(picked[i])
        if done.all():
            break
        mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
        positions = positions[:, -1:] + 1
        out = llm.model(inputs_embeds=embed(nxt[:, None]), attention_mask=mask, position_ids=positions,
                        past_key_values=out.past_key_values, use_cache=True)
    return [tok.decode(g, skip_special_tokens=True).strip() for g in generated]
