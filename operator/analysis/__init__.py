"""Canary analysis: measure metrics in Prometheus and decide, with Argo Rollouts' semantics.

Pure modules (no kopf, kubernetes client or HTTP): `templating`, `conditions`, `drift`,
`builtin_metrics`, `query_metric`, `judging`, `phases`, `scheduling`. I/O lives only in the
providers (`prometheus`), and process-wide counters in `telemetry`. Import the module you need;
this package re-exports nothing so importing the pure parts never pulls in an HTTP client.
"""
