"""A compression recipe: what is done to the receiver's LLM (and how the checkpoint's parts are stored).

Recipes are plain, named values, registered in :data:`RECIPES` (the default search, in order);
``compress`` measures each candidate and keeps one. They compose: a vocabulary cut, whole transformer
layers removed, int8 storage, int8 compute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from semcom_cli.core.registry import Registry

__all__ = ["Recipe", "RECIPES", "candidate_recipes"]


@dataclass(frozen=True)
class Recipe:
    name: str
    weights: str = "float32"          # how matrices are stored on disk: "float32" or "int8" (a scale per row)
    compute: str = "float32"          # "int8": the LLM's linear layers run dynamically quantised (fbgemm)
    float_linears: float = 0.0        # share of the linear layers kept in float compute: the most sensitive
    vocab: int | None = None          # keep the first ``vocab`` BPE ids + the task set's tokens (None: all)
    drop_layers: float = 0.0          # share of the transformer layers removed (the most redundant, measured)
    recovery_steps: int = 0           # LoRA steps on the shortened model (instruct-stage batches), then merged
    notes: str = ""

    def __post_init__(self):
        if self.weights not in ("float32", "int8") or self.compute not in ("float32", "int8"):
            raise ValueError(f"recipe {self.name}: weights and compute are 'float32' or 'int8'")
        if self.compute == "int8" and self.weights != "int8":
            raise ValueError(f"recipe {self.name}: int8 compute needs int8 weights")
        if self.recovery_steps < 0 or (self.recovery_steps and not self.drop_layers):
            raise ValueError(f"recipe {self.name}: recovery steps are for a recipe that removes layers")
        if not (0.0 <= self.float_linears <= 1.0 and 0.0 <= self.drop_layers < 1.0) or (self.vocab is not None
                                                                                        and self.vocab < 0):
            raise ValueError(f"recipe {self.name}: impossible settings")

    def layers_dropped(self, layers: int) -> int:
        """How many of ``layers`` transformer layers the recipe removes (at least one when it removes any)."""
        return 0 if self.drop_layers == 0 else min(layers - 1, max(1, round(self.drop_layers * layers)))

    def as_dict(self) -> dict:
        return asdict(self)


RECIPES: Registry[Recipe] = Registry("recipe")
for _recipe in (
    Recipe("int8-storage", weights="int8", notes="int8 weights on disk, float32 in memory and compute"),
    Recipe("int8-dynamic", weights="int8", compute="int8",
           notes="every linear layer int8 (weights, and activations per call), after smoothing"),
    Recipe("int8-dynamic-mixed", weights="int8", compute="int8", float_linears=0.1,
           notes="int8 compute but for the 10 % of linear layers it hurts most (measured on calibration)"),
    Recipe("vocab-8k", vocab=8192, notes="the commonest 8,192 BPE tokens + the task set's, float32"),
    Recipe("int8+vocab-8k", weights="int8", compute="int8", vocab=8192),
    Recipe("int8-mixed+vocab-8k", weights="int8", compute="int8", float_linears=0.1, vocab=8192),
    Recipe("int8+vocab-4k", weights="int8", compute="int8", vocab=4096),
    Recipe("int8+vocab-8k-drop10%", weights="int8", compute="int8", vocab=8192, drop_layers=0.1,
           notes="and the 10 % least influential layers removed (no recovery training)"),
    Recipe("int8+vocab-8k-drop10%+lora", weights="int8", compute="int8", vocab=8192, drop_layers=0.1,
           recovery_steps=30, notes="the same, then 30 LoRA steps recover what the layers did"),
):
    RECIPES.register(_recipe.name, _recipe)


def candidate_recipes() -> list[Recipe]:
    """The default search: each method alone, then combined (every registered recipe, in order)."""
    return RECIPES.values()
