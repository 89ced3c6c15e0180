"""semcom: LLM-based semantic communication over simulated wireless channels.

The library works without the CLI: ``SemcomModel.from_pretrained()`` (:mod:`semcom_cli.system`) loads a
checkpoint; ``link.transmitter.encode_single`` → ``link.transmit.transmit_file`` →
``link.receiver.decode_file`` are the three stages on semantic files, and ``evaluation.run_sweep``
measures a whole evaluation plan.

The parts, lowest first (:data:`LAYERS`); a part imports only parts before it in this list
(``tests/test_layers.py`` reads the source and checks it):

- ``core``: errors, limits, runtime, resources, distributed set-up, atomic files, the :class:`Registry` type
- ``channel``: one channel block per module (AWGN, fading, the equaliser, the digital baseline)
- ``tasks``: the task registry, the instruction template, wordings
- ``models``: the trainable parts and the LLM backbone, each knowing nothing of presets
- ``config``: presets (pydantic), names checked against the registries below it
- ``data``: easy-vqa, augmentation, scenes, the sentence corpus, federated devices' data
- ``io``: file formats (the semantic file and its header, the image packet's layout)
- ``retrieval``: knowledge bases and the retriever
- ``link``: everything between source and sink: transmitter, channel pass, receiver, rate, sharing
- ``system``: the assembled model (``SemcomModel``) and its checkpoint folder
- ``training``: the Trainer, the stage registry, partial runs
- ``reconstruct``: the image-reconstruction line (guidance, dual-path codec, generative decoder)
- ``evaluation``: the method registry, sweeps, metrics, reports
- ``compression``: the adaptive compression search
- ``federated``: federated split fine-tuning on Flower
- ``cli``: the ``semcom`` command: parse, one library call, print
"""

__version__ = "0.1.0"

LAYERS = ("core", "channel", "tasks", "models", "config", "data", "io", "retrieval", "link", "system",
          "training", "reconstruct", "evaluation", "compression", "federated", "cli")

from semcom_cli.core.errors import SemcomError  # noqa: E402

__all__ = ["__version__", "LAYERS", "SemcomError"]
