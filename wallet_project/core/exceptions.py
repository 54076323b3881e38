"""The domain exception hierarchy and the one handler that renders every error.

Every error leaves the service as RFC 9457 problem+json carrying the seed's fields as
extension members: ``{"type", "title", "status", "detail", "error", "code", "errors"?, "trace_id"}``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from . import error_codes as codes
from .tracing import current_trace_id

logger = logging.getLogger("wallet.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiError(Exception):
    """A failure the client can act on; carries its HTTP status and machine code."""

    status_code: int = 400
    code: str = codes.INVALID_REQUEST
    default_message: str = "invalid request"
    # Set by a service that raises after it has checked the caller's account (a deferred JWT check).
    account_checked: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors
        self.headers = headers or {}
        super().__init__(self.message)


def _error(name: str, status: int, code: str, message: str) -> type[ApiError]:
    return type(name, (ApiError,), {"status_code": status, "code": code, "default_message": message})


InvalidRequest = _error("InvalidRequest", 400, codes.INVALID_REQUEST, "invalid request")
AmountNotPositive = _error("AmountNotPositive", 400, codes.AMOUNT_NOT_POSITIVE, "amount must be greater than zero")
InvalidDecimals = _error(
    "InvalidDecimals", 400, codes.INVALID_DECIMALS, "amount has more decimal places than the currency allows"
)
AmountExceedsLimit = _error(
    "AmountExceedsLimit", 400, codes.AMOUNT_EXCEEDS_LIMIT, "amount exceeds the maximum transfer amount"
)
InsufficientBalance = _error("InsufficientBalance", 400, codes.INSUFFICIENT_BALANCE, "insufficient balance")
SameAccountTransfer = _error(
    "SameAccountTransfer", 400, codes.SAME_ACCOUNT_TRANSFER, "cannot transfer to the same account"
)
SenderWalletNotFound = _error("SenderWalletNotFound", 404, codes.SENDER_WALLET_NOT_FOUND, "sender wallet not found")
RecipientNotFound = _error("RecipientNotFound", 404, codes.RECIPIENT_NOT_FOUND, "recipient not found")
WalletNotFound = _error("WalletNotFound", 404, codes.WALLET_NOT_FOUND, "wallet not found")
WalletAlreadyExists = _error(
    "WalletAlreadyExists", 409, codes.WALLET_ALREADY_EXISTS, "wallet already exists for this currency"
)
NotFound = _error("NotFound", 404, codes.NOT_FOUND, "not found")
TransactionNotFound = _error("TransactionNotFound", 404, codes.TRANSACTION_NOT_FOUND, "transaction not found")
UserNotFound = _error("UserNotFound", 404, codes.USER_NOT_FOUND, "user not found")
UserAlreadyExists = _error("UserAlreadyExists", 409, codes.USER_ALREADY_EXISTS, "username or email already exists")
InvalidCredentials = _error("InvalidCredentials", 401, codes.INVALID_CREDENTIALS, "invalid username or password")
Unauthorized = _error("Unauthorized", 401, codes.UNAUTHORIZED, "authentication required")
Forbidden = _error("Forbidden", 403, codes.FORBIDDEN, "forbidden")
IdempotencyKeyInUse = _error(
    "IdempotencyKeyInUse",
    409,
    codes.IDEMPOTENCY_KEY_IN_USE,
    "a request with this Idempotency-Key is still being processed",
)
IdempotencyKeyMismatch = _error(
    "IdempotencyKeyMismatch",
    422,
    codes.IDEMPOTENCY_KEY_MISMATCH,
    "this Idempotency-Key was used with a different request body",
)
PayloadTooLarge = _error(
    "PayloadTooLarge", 413, codes.PAYLOAD_TOO_LARGE, "request body is larger than the server accepts"
)
RateLimitExceeded = _error("RateLimitExceeded", 429, codes.RATE_LIMIT_EXCEEDED, "rate limit exceeded")
ServiceUnavailable = _error("ServiceUnavailable", 503, codes.SERVICE_UNAVAILABLE, "the service is busy, retry shortly")
TransactionFailed = _error("TransactionFailed", 500, codes.TRANSACTION_FAILED, "transaction failed")

ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in [
        InvalidRequest,
        AmountNotPositive,
        InvalidDecimals,
        AmountExceedsLimit,
        InsufficientBalance,
        SameAccountTransfer,
        SenderWalletNotFound,
        RecipientNotFound,
        NotFound,
        WalletNotFound,
    ]
}


def problem(status: int, code: str, message: str, *, errors: dict | None = None) -> dict[str, Any]:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": message,
        "error": message,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body["trace_id"] = current_trace_id()
    return body


def problem_response(
    status: int, code: str, message: str, *, errors: dict | None = None, headers: dict[str, str] | None = None
) -> JsonResponse:
    """A plain Django response in the envelope, for paths DRF does not handle."""
    response = JsonResponse(
        problem(status, code, message, errors=errors), status=status, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for field, value in detail.items():
            if isinstance(value, dict):
                for sub, msgs in _flatten(value).items():
                    out[f"{field}.{sub}"] = msgs
            elif isinstance(value, list):
                # ErrorDetail is a str that keeps its code; keep it so domain codes survive.
                out[field] = [
                    v if isinstance(v, str) else str(v) for v in value if not isinstance(v, (dict, list))
                ] or [str(value)]
            else:
                out[field] = [value if isinstance(value, str) else str(value)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [v if isinstance(v, str) else str(v) for v in detail]}
    return {"non_field_errors": [detail if isinstance(detail, str) else str(detail)]}


def _validation_error(exc: drf.ValidationError) -> ApiError:
    errors = _flatten(exc.detail)
    # A field-level ApiError raised inside a serializer keeps its own code (e.g. INVALID_DECIMALS).
    for msgs in errors.values():
        for msg in msgs:
            code = getattr(msg, "code", None)
            if code in ERRORS_BY_CODE and code != codes.INVALID_REQUEST:
                return ERRORS_BY_CODE[code](str(msg), errors=errors)
    first_field, first_msgs = next(iter(errors.items()))
    message = first_msgs[0] if first_field == "non_field_errors" else f"{first_field}: {first_msgs[0]}"
    return InvalidRequest(message, errors=errors)


def to_api_error(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, drf.ValidationError):
        return _validation_error(exc)
    if isinstance(exc, drf.ParseError):
        return InvalidRequest(f"malformed request body: {exc.detail}")
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        detail = exc.detail.get("detail", "") if isinstance(exc.detail, dict) else exc.detail
        if isinstance(exc, drf.NotAuthenticated):
            detail = "authentication required"
        return Unauthorized(str(detail) or None)
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return Forbidden("forbidden: you do not have permission to perform this action")
    if isinstance(exc, (drf.NotFound, Http404)):
        return NotFound()
    if isinstance(exc, drf.MethodNotAllowed):
        return _error("MethodNotAllowed", 405, codes.METHOD_NOT_ALLOWED, "method not allowed")(str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return _error("NotAcceptable", 406, codes.NOT_ACCEPTABLE, "not acceptable")()
    if isinstance(exc, drf.UnsupportedMediaType):
        return _error("Unsupported", 415, codes.UNSUPPORTED_MEDIA_TYPE, "unsupported media type")(str(exc.detail))
    if isinstance(exc, drf.Throttled):
        wait: float | None = exc.wait  # type: ignore[attr-defined]  # set by Throttled(), absent from drf-stubs
        return RateLimitExceeded(headers={"Retry-After": str(int(wait or 1))})
    # Raised by Django while DRF reads the body: over MAX_BODY_BYTES, too many form fields or files.
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, SuspiciousOperation):
        return InvalidRequest("malformed request")
    if isinstance(exc, OperationalError) and _is_lock_or_timeout(exc):
        return ServiceUnavailable(headers={"Retry-After": "1"})
    return None


def _is_lock_or_timeout(exc: DatabaseError) -> bool:
    sqlstate: str | None = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
    # 55P03 lock_not_available, 57014 query_canceled (statement_timeout), 40001/40P01 after retries,
    # 08xxx connection failures, 57P01-03 server shutting down.
    return sqlstate is not None and (sqlstate in {"55P03", "57014", "40001", "40P01"} or sqlstate[:2] in {"08", "57"})


def _method_unsupported(context: dict) -> bool:
    view, request = context.get("view"), context.get("request")
    if view is None or request is None:
        return False
    method = request.method.lower()
    # A viewset binds only its routed actions as methods (options is always there).
    return method not in view.http_method_names or not hasattr(view, method)


def exception_handler(exc: Exception, context: dict) -> Response:
    # DRF authenticates and checks permissions before it looks for the method's handler, so TRACE on
    # a protected path was a 401: the method is wrong whoever asks, and 405 says so.
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed | drf.PermissionDenied) and (
        _method_unsupported(context)
    ):
        exc = drf.MethodNotAllowed(context["request"].method)
    api_error = to_api_error(exc)
    if api_error is None:
        if isinstance(exc, DatabaseError):
            logger.exception("database error")
            api_error = (
                ServiceUnavailable(headers={"Retry-After": "1"})
                if isinstance(exc, OperationalError)
                else TransactionFailed()
            )
        else:
            logger.exception("unhandled error")
            api_error = _error("InternalError", 500, codes.INTERNAL_ERROR, "internal server error")()
    headers = dict(api_error.headers)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    response = Response(
        problem(api_error.status_code, api_error.code, api_error.message, errors=api_error.errors),
        status=api_error.status_code,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    response.exception = True
    return response


# --- Django-level handlers for requests that never reach a DRF view -------------------------------


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        error = PayloadTooLarge()
        return problem_response(error.status_code, error.code, error.message)
    return problem_response(400, codes.INVALID_REQUEST, "bad request")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return problem_response(403, codes.FORBIDDEN, "forbidden")


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return problem_response(404, codes.NOT_FOUND, "not found")


def handler500(request: HttpRequest) -> JsonResponse:
    return problem_response(500, codes.INTERNAL_ERROR, "internal server error")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return problem_response(403, codes.FORBIDDEN, "forbidden: CSRF verification failed")
