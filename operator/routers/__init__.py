"""Traffic routers: how a canary weight becomes real traffic, one provider per file.

Every router answers the same two questions (see `base.TrafficRouter`): what its routing object
must look like for a weight (`desired_route`), and what weights a live routing object gives
(`weights`), so the engine can check the router against the weight in status after a restart.
Pure: no kopf, no kubernetes client, no HTTP.
"""
