"""The modelramp model server (`modelramp serve`): PyTorch models over OIP v2 and MLflow's REST API.

It knows nothing of the operator; the operator only passes it configuration (flags or
`MODELRAMP_*` environment variables) and scrapes its `/metrics`.
"""
