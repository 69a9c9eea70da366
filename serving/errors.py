"""Typed errors of the data plane, mapped to HTTP status codes in exactly one place (`app`).

The data plane raises these without knowing about transport; every one carries a message that
names the offending field and the reason, which is what the client sees.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class: an error answered to the client with `status_code`."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """The request is malformed or does not match the model's input."""

    status_code = 400


class RequestTimeout(ServingError):
    """The client sent its body slower than `--body-timeout-s` allows."""

    status_code = 408


class UnsupportedMediaType(ServingError):
    """The body's Content-Type or Content-Encoding is not one this endpoint reads."""

    status_code = 415


class ClientDisconnected(ServingError):
    """The client went away before its body was received; nobody reads the answer.

    499 is NGINX's code for this: not an HTTP status a client ever sees, and not a 5xx, so the
    rollout's error rate never counts a flaky client against the model.
    """

    status_code = 499


class ModelNotFound(ServingError):
    """The request names a model (or version) this server does not serve."""

    status_code = 404


class PayloadTooLarge(ServingError):
    """The request body is larger than `--max-body-bytes`."""

    status_code = 413


class ModelNotReady(ServingError):
    """The model is still loading or warming up, or the server is draining."""

    status_code = 503


class SiblingUnavailable(ServingError):
    """Another process of this server (`--processes`) did not answer for its share of a scrape or
    of the statistics; answering without it would read as its counters resetting."""

    status_code = 503


class InferenceFailed(ServingError):
    """The model raised while running this request's rows."""

    status_code = 500


class ModelLoadError(Exception):
    """The model could not be fetched, loaded or warmed up; the server exits with this message."""
