"""How well the received semantic tokens still read as their caption words, per channel and SNR.

    .venv/bin/python benchmarks/token_readout.py -c runs/channel [--snr=-5,0,10,20] [--channel awgn,rayleigh]

For every easy-vqa test image with a derived caption, the image's semantic tokens
are sent through the codec and channel (seeded), and each received token is read
as the nearest caption word (cosine, in the LLM's input-embedding space). It
prints the share of images whose tokens all read as the right words; the share
whose packet, read as a whole, is nearest its own caption (the sum of the 4
tokens' cosines with each caption's tiled words: the decision the LLM makes, and
what the channel stage's ``caption_weight`` term trains); and the normalised MSE of
the received tokens. A measure of the channel stage alone, before the LLM. Works
on any checkpoint from the channel stage on.
"""

from __future__ import annotations

import argparse

import torch
from torch.nn import functional as F

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.models.codebook import caption_scores
from semcom_cli.system import SemcomModel
from semcom_cli.training.stages import caption_classes, caption_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--checkpoint", required=True)
    parser.add_argument("--snr", default="-5,0,10,20", help="comma-separated, dB")
    parser.add_argument("--channel", default="awgn,rayleigh", help="comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = SemcomModel.from_pretrained(args.checkpoint)
    llm = model.get_llm()
    data = EasyVQA.load("test")
    images, targets, _ = caption_targets(llm, data, model.preset.projector.n_tokens)
    words = torch.unique(targets)
    classes, caption_vectors = caption_classes(llm, data, len(data.images), model.preset.projector.n_tokens)
    classes = classes[torch.tensor(images)]
    word_embeddings = F.normalize(llm.model.get_input_embeddings().weight[words].detach(), dim=-1)
    print(f"{len(images)} captioned test images, {len(words)} caption words")
    print(f"{'channel':>12} {'SNR dB':>7} {'all tokens right':>17} {'packet read right':>18} {'NMSE':>7}")
    with torch.no_grad():
        tokens, mask = model.image_tokens(data.batch_images(images))
        symbols = model.encode(tokens, mask, "image")
        for channel in args.channel.split(","):
            for snr in (float(s) for s in args.snr.split(",")):
                seed_channel(args.seed)
                y, h = make_channel(channel, model.preset.channel.model_dump()).send(symbols, snr)
                received = model.receive(y, h, snr, mask, "image", codebook=False)  # the decoder alone
                read = words[(F.normalize(received, dim=-1) @ word_embeddings.T).argmax(-1)]
                right = (read == targets).all(1).float().mean().item()
                packet = (caption_scores(received, caption_vectors).argmax(1) == classes).float().mean().item()
                nmse = ((received - tokens) ** 2).mean() / (tokens**2).mean()
                print(f"{channel:>12} {snr:>7g} {right:>16.1%} {packet:>17.1%} {nmse.item():>7.3f}")


if __name__ == "__main__":
    main()
