"""Rate limiting (django-ratelimit); the view django-ratelimit calls when a limit is hit."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from . import error_codes as codes
from .exceptions import problem_response


def ratelimited_view(request: HttpRequest, exception: Exception) -> JsonResponse:
    return problem_response(429, codes.RATE_LIMIT_EXCEEDED, "rate limit exceeded", headers={"Retry-After": "60"})
