"""Training: the stage registry (every stage by name; the reconstruct and federated parts add theirs) and the
model stages (:mod:`.stages`), the one loop's Trainer (:mod:`.trainer`), and the one partial-run format
(:mod:`.partial`). Import the module you need: the Trainer stays light (no presets, no checkpoint code),
which the GPU training script relies on."""
