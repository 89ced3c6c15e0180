"""Importance-aware, SNR-adaptive rate: which tokens to send, how often, and at what budget.

- :mod:`.importance`: how much each semantic token matters to the answer, from the LLM itself.
- :mod:`.allocation`: a channel-use budget shared out over a packet's tokens (copies per token).
- :mod:`.policy`: the budget picked from the SNR to reach a target accuracy (``auto``), from a
  table measured once per checkpoint and kept in its manifest.

The channel side (copies sent and combined) is :mod:`semcom_cli.channel.repetition`.
"""

from semcom_cli.link.rate.allocation import allocate, check_budget, token_copies, uniform_weights
from semcom_cli.link.rate.importance import token_importance
from semcom_cli.link.rate.policy import RateTable

__all__ = ["allocate", "check_budget", "token_copies", "uniform_weights", "token_importance", "RateTable"]
