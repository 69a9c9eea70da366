"""`modelramp operator`: loads the configuration once, then runs kopf with our handlers.

Without `--namespace` it watches every namespace; without `--peering` it runs standalone (one
replica); with `--peering NAME` replicas coordinate through that kopf peering object: the live
one with the highest `--priority` acts, the others stand by (kopf pauses all replicas that share
a priority, so each draws a random one unless told).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import kopf

from modelramp.operator import handlers
from modelramp.operator.config import ConfigError, load


def main(argv: Sequence[str]) -> int:
    try:
        config = load(argv)
    except ConfigError as error:
        print(f"modelramp operator: {error}", file=sys.stderr)
        return 2
    handlers.configure(config)
    kopf.configure(verbose=False, debug=False)
    logging.getLogger().setLevel(logging.INFO)
    kopf.run(
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=config.priority,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=config.liveness,
    )
    return 0
