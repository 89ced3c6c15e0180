"""Multi-user sharing: the plan (what is public, what private), the links, and the scenarios."""

from semcom_cli.link.sharing.links import (
           UserLink,
           effective_snr,
           receive_user,
           repeats_for,
           send_separately,
           send_to_user,
           user_seed,
)
from semcom_cli.link.sharing.plan import (
           DEFAULT_THRESHOLD,
           PublicToken,
           SharedPackets,
           SharePlan,
           encode_parts,
           plan_sharing,
           relative_distances,
)

__all__ = ["PublicToken", "SharePlan", "SharedPackets", "plan_sharing", "relative_distances", "encode_parts",
           "DEFAULT_THRESHOLD", "UserLink", "effective_snr", "repeats_for", "user_seed",
           "send_to_user", "send_separately", "receive_user"]
