"""Domain errors raised by the core and mapped to HTTP codes by the handlers."""

from __future__ import annotations

from typing import Any

from .contract.serving import RETRY_AFTER_S


class YoloError(Exception):
    """Base of every error a person can act on; ``status`` is the HTTP code it maps to."""

    status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        """Return the JSON body the REST API sends for this error."""
        body: dict[str, Any] = {"message": self.message, "reason": type(self).__name__}
        if self.details:
            body["details"] = self.details
        return body


class InvalidRequest(YoloError):
    """The request is malformed or asks for something impossible."""

    status = 400


class NotFound(YoloError):
    """The named dataset, job, model or file does not exist."""

    status = 404


class Conflict(YoloError):
    """The thing exists but is in a state that does not allow the action."""

    status = 409


class PayloadTooLarge(YoloError):
    """The request body is over a configured limit."""

    status = 413


class ServiceUnavailable(YoloError):
    """The server cannot answer now (it is shutting down); the request may be retried."""

    status = 503


class WorkerUnavailable(ServiceUnavailable):
    """An inference worker crashed, hung, could not start or all are busy; retry shortly."""

    retry_after = RETRY_AFTER_S


class TooManyRequests(YoloError):
    """Too many requests wait for the same inference worker; retry after ``retry_after`` s."""

    status = 429
    retry_after = RETRY_AFTER_S


class ProbeFailed(YoloError):
    """The hardware probe subprocess crashed or printed something unreadable."""

    status = 502


class ProbeTimeout(YoloError):
    """The hardware probe subprocess did not answer within its time limit."""

    status = 504


class UnsupportedMediaType(YoloError):
    """The request body has a content type the endpoint does not take."""

    status = 415


class UnsafeArchive(InvalidRequest):
    """An archive or folder holds something that must not be extracted or imported."""


class DatasetHasErrors(InvalidRequest):
    """The dataset's validation report has errors, so it cannot be used for training."""


class CopyFailed(YoloError):
    """The destination folder cannot take a new file (permissions, disk full ...)."""

    status = 409


class InsufficientStorage(YoloError):
    """The workspace's disk is full."""

    status = 507
