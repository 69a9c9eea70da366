"""Fixtures of the operator's cluster tests (tests/support/operator.py): the CRD, a namespace's
ModelDeployments, and the operator running as a subprocess."""

from support.operator import crd, mds, operator, operator_args  # noqa: F401 - fixtures are registered by import
