"""The wireless channel: one object per kind (``awgn``, ``rayleigh``, ``rician``, ``none``), the
receiver's equaliser, the channel's random generators, and the digital baseline (:mod:`.digital`,
imported on its own: it pulls in Sionna's LDPC and QAM blocks and Pillow).

This package needs no model: ``semcom transmit`` runs on it alone.
"""

from semcom_cli.channel import awgn, none, rayleigh, rician  # noqa: F401  (each registers its kind)
from semcom_cli.channel.base import (
           CHANNELS,
           Channel,
           check_channel,
           check_snr,
           gain_from_real,
           gain_to_real,
           make_channel,
           noise_variance,
           register_channel,
           to_complex,
           to_real,
)
from semcom_cli.channel.equalizer import effective_snr_db, equalize_symbols, mmse_equalize
from semcom_cli.channel.repetition import combined_uses, send_repeated
from semcom_cli.channel.rng import channel_rng_state, seed_channel, set_channel_rng_state

__all__ = ["CHANNELS", "Channel", "register_channel", "make_channel", "check_channel", "check_snr",
           "noise_variance", "to_complex", "to_real", "gain_to_real", "gain_from_real", "mmse_equalize",
           "effective_snr_db", "equalize_symbols", "send_repeated", "combined_uses", "seed_channel",
           "channel_rng_state", "set_channel_rng_state"]
