"""Traffic routers: how a canary weight becomes real traffic, one provider per file.

Every router implements `base.TrafficRouter` (what it reads, the traffic in effect, the writes it
wants, the pods each track needs, its RBAC); `registry` maps `spec.trafficRouting` to one.
Pure: no kopf, no kubernetes client, no HTTP.
"""
