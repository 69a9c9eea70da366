"""The rollout engine: a pure state machine from (spec, status, observed objects, measurements,
now) to (objects to apply, router writes, status, events, requeue delay).

`reconcile` (in `engine`) is the single entry point; `model` holds its input and output. No kopf,
no kubernetes client, no HTTP, no clock: everything the engine decides is in the status it
returns, so an operator restarted at any moment carries on from there.
"""

from modelramp.operator.rollout.engine import reconcile

__all__ = ["reconcile"]
