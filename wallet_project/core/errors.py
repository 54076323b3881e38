"""The domain exception hierarchy and the one handler that renders every error.

Every error leaves the service as RFC 9457 problem+json carrying the seed's fields as
extension members: ``{"type", "title", "status", "detail", "error", "code", "errors"?, "trace_id"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from .tracing import current_trace_id

logger = logging.getLogger("wallet.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"

_registry: dict[str, type[ApiError]] = {}


class ApiError(Exception):
    """A failure the client can act on; carries its HTTP status and machine code.

    Each code is one subclass, written out as DRF writes its own exceptions; defining it registers
    it (``registry``, ``by_code``), so the code list, the OpenAPI schema and idempotent replays read
    the same table. A subclass without a code of its own, or with a code already taken, is an error at
    import.
    """

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "INVALID_REQUEST"
    default_message: ClassVar[str] = "invalid request"
    # Set by a service that raises after it has checked the caller's account (a deferred JWT check).
    account_checked: bool = False

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not register:
            return
        if "code" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} must declare its own code")
        if cls.code in _registry:
            raise TypeError(f"{cls.__name__}: code {cls.code} is already {_registry[cls.code].__name__}'s")
        _registry[cls.code] = cls

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


class StoredError(ApiError, register=False):
    """A stored outcome replayed as it was sent, whose code this version may no longer define (a code
    retired since): code and status are the instance's, and the class is no code of its own."""

    def __init__(
        self,
        *,
        code: str,
        status: int,
        message: str,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, errors=errors, headers=headers)
        self.code = code  # type: ignore[misc]  # the instance's own, shadowing the class's
        self.status_code = status  # type: ignore[misc]


registry: Mapping[str, type[ApiError]] = MappingProxyType(_registry)


def by_code(code: str) -> type[ApiError] | None:
    return registry.get(code)


class InvalidRequest(ApiError):
    status_code = 400
    code = "INVALID_REQUEST"
    default_message = "invalid request"


class AmountNotPositive(ApiError):
    status_code = 400
    code = "AMOUNT_NOT_POSITIVE"
    default_message = "amount must be greater than zero"


class InvalidDecimals(ApiError):
    status_code = 400
    code = "INVALID_DECIMALS"
    default_message = "amount has more decimal places than the currency allows"


class AmountExceedsLimit(ApiError):
    status_code = 400
    code = "AMOUNT_EXCEEDS_LIMIT"
    default_message = "amount exceeds the maximum transfer amount"


class InsufficientBalance(ApiError):
    status_code = 400
    code = "INSUFFICIENT_BALANCE"
    default_message = "insufficient balance"


class SameAccountTransfer(ApiError):
    status_code = 400
    code = "SAME_ACCOUNT_TRANSFER"
    default_message = "cannot transfer to the same account"


class InvalidCredentials(ApiError):
    status_code = 401
    code = "INVALID_CREDENTIALS"
    default_message = "invalid username or password"


class Unauthorized(ApiError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "authentication required"


class Forbidden(ApiError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "not found"


class SenderWalletNotFound(ApiError):
    status_code = 404
    code = "SENDER_WALLET_NOT_FOUND"
    default_message = "sender wallet not found"


class RecipientNotFound(ApiError):
    status_code = 404
    code = "RECIPIENT_NOT_FOUND"
    default_message = "recipient not found"


class WalletNotFound(ApiError):
    status_code = 404
    code = "WALLET_NOT_FOUND"
    default_message = "wallet not found"


class TransactionNotFound(ApiError):
    status_code = 404
    code = "TRANSACTION_NOT_FOUND"
    default_message = "transaction not found"


class UserNotFound(ApiError):
    status_code = 404
    code = "USER_NOT_FOUND"
    default_message = "user not found"


class MethodNotAllowed(ApiError):
    status_code = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "method not allowed"


class NotAcceptable(ApiError):
    status_code = 406
    code = "NOT_ACCEPTABLE"
    default_message = "not acceptable"


class WalletAlreadyExists(ApiError):
    status_code = 409
    code = "WALLET_ALREADY_EXISTS"
    default_message = "wallet already exists for this currency"


class UserAlreadyExists(ApiError):
    status_code = 409
    code = "USER_ALREADY_EXISTS"
    default_message = "username or email already exists"


class IdempotencyKeyInUse(ApiError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_IN_USE"
    default_message = "a request with this Idempotency-Key is still being processed"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "request body is larger than the server accepts"


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "unsupported media type"


class IdempotencyKeyMismatch(ApiError):
    status_code = 422
    code = "IDEMPOTENCY_KEY_MISMATCH"
    default_message = "this Idempotency-Key was used with a different request body"


class RateLimitExceeded(ApiError):
    status_code = 429
    code = "RATE_LIMIT_EXCEEDED"
    default_message = "rate limit exceeded"


class InternalError(ApiError):
    status_code = 500
    code = "INTERNAL_ERROR"
    default_message = "internal server error"


class TransactionFailed(ApiError):
    status_code = 500
    code = "TRANSACTION_FAILED"
    default_message = "transaction failed"


class HoldNotFound(ApiError):
    status_code = 404
    code = "HOLD_NOT_FOUND"
    default_message = "hold not found"


class HoldNotActive(ApiError):
    status_code = 409
    code = "HOLD_NOT_ACTIVE"
    default_message = "hold is not active (captured, voided or expired)"


class AmountExceedsHold(ApiError):
    status_code = 400
    code = "AMOUNT_EXCEEDS_HOLD"
    default_message = "amount exceeds what remains of the hold"


class WithdrawalRequestNotFound(ApiError):
    status_code = 404
    code = "WITHDRAWAL_REQUEST_NOT_FOUND"
    default_message = "withdrawal request not found"


class WithdrawalRequestNotPending(ApiError):
    status_code = 409
    code = "WITHDRAWAL_REQUEST_NOT_PENDING"
    default_message = "withdrawal request is no longer pending"


class ReversalExceedsOriginal(ApiError):
    status_code = 409
    code = "REVERSAL_EXCEEDS_ORIGINAL"
    default_message = "reversals would exceed the original transaction's amount"


class WebhookNotFound(ApiError):
    status_code = 404
    code = "WEBHOOK_NOT_FOUND"
    default_message = "webhook endpoint not found"


class WebhookDeliveryNotFound(ApiError):
    status_code = 404
    code = "WEBHOOK_DELIVERY_NOT_FOUND"
    default_message = "webhook delivery not found"


class WebhookTargetForbidden(ApiError):
    status_code = 400
    code = "WEBHOOK_TARGET_FORBIDDEN"
    default_message = "webhook URL refused"


class WebhookLimitReached(ApiError):
    status_code = 409
    code = "WEBHOOK_LIMIT_REACHED"
    default_message = "too many webhook endpoints"


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "the service is busy, retry shortly"


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
            cls = by_code(code) if isinstance(code, str) else None
            if cls is not None and cls is not InvalidRequest:
                return cls(str(msg), errors=errors)
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
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return NotAcceptable()
    if isinstance(exc, drf.UnsupportedMediaType):
        return UnsupportedMediaType(str(exc.detail))
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
            api_error = InternalError()
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


def _respond(error: ApiError) -> JsonResponse:
    return problem_response(error.status_code, error.code, error.message, headers=error.headers)


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return _respond(PayloadTooLarge())
    return _respond(InvalidRequest("bad request"))


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _respond(Forbidden())


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _respond(NotFound())


def handler500(request: HttpRequest) -> JsonResponse:
    return _respond(InternalError())


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return _respond(Forbidden("forbidden: CSRF verification failed"))
