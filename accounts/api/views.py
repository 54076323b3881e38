from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from accounts.api.serializers import (
    LoginIn,
    LogoutIn,
    LookupOut,
    MessageOut,
    PasswordChangeIn,
    RefreshIn,
    SignupIn,
    TokenOut,
    UserOut,
)
from accounts.selectors import user_document, user_get_by_username
from accounts.services import TokenPair, token_logout, token_refresh, user_change_password, user_create, user_login
from wallet_project.core import errors
from wallet_project.core.schema import NOT_BLANK, error_responses, security

NO_STORE = {"Cache-Control": "no-store"}


def _tokens(pair: TokenPair) -> Response:
    return Response(
        {
            "token": pair.access,
            "refresh": pair.refresh,
            "token_type": "Bearer",
            "user_id": pair.user.pk,
            "username": pair.user.username,
            "expires_in": pair.expires_in,
        },
        headers=NO_STORE,
    )


class SignupViewSet(viewsets.ViewSet):
    ratelimit_scope = "signup"
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        summary="Sign up: the user and a wallet in each default currency",
        request=SignupIn,
        responses={201: UserOut, **error_responses(400, 409, 429)},
        tags=["accounts"],
        auth=security({}),
    )
    def create(self, request):
        serializer = SignupIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_create(**serializer.validated_data)
        return Response(user_document(user), status=201, headers=NO_STORE)


class AuthViewSet(viewsets.ViewSet):
    ratelimit_scope = {"login": "login"}
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        summary="Log in: a JWT access token and a refresh token",
        request=LoginIn,
        responses={200: TokenOut, **error_responses(400, 401, 429)},
        tags=["auth"],
        auth=security({}),
    )
    def login(self, request):
        serializer = LoginIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _tokens(user_login(**serializer.validated_data))

    @extend_schema(
        summary="Rotate a refresh token (the old one is blacklisted)",
        request=RefreshIn,
        responses={200: TokenOut, **error_responses(400, 401)},
        tags=["auth"],
        auth=security({}),
    )
    def refresh(self, request):
        serializer = RefreshIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _tokens(token_refresh(refresh=serializer.validated_data["refresh"]))


class SessionViewSet(viewsets.ViewSet):
    ratelimit_scope = {"lookup": "lookup", "change_password": "password"}

    @extend_schema(
        summary="Log out: blacklist a refresh token, or everything with everywhere=true",
        request=LogoutIn,
        responses={200: MessageOut, **error_responses(400, 401, 403)},
        tags=["auth"],
    )
    def logout(self, request):
        serializer = LogoutIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not data["everywhere"] and not data.get("refresh"):
            raise errors.InvalidRequest(
                "refresh is required unless everywhere is true", errors={"refresh": ["This field is required."]}
            )
        token_logout(user=request.user, refresh=data.get("refresh"), everywhere=data["everywhere"])
        return Response({"message": "logged out"}, headers=NO_STORE)

    @extend_schema(
        summary="The caller's profile and wallets", responses={200: UserOut, **error_responses(401)}, tags=["accounts"]
    )
    def me(self, request):
        return Response(user_document(request.user), headers=NO_STORE)

    @extend_schema(
        summary="Change password (revokes every earlier token)",
        request=PasswordChangeIn,
        responses={200: MessageOut, **error_responses(400, 401)},
        tags=["accounts"],
    )
    def change_password(self, request):
        serializer = PasswordChangeIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_change_password(user=request.user, **serializer.validated_data)
        return Response({"message": "password changed; log in again"}, headers=NO_STORE)

    @extend_schema(
        summary="Find a user's id by username (never reveals email)",
        parameters=[
            OpenApiParameter("username", {"type": "string", "maxLength": 150, "pattern": NOT_BLANK}, required=True)
        ],
        responses={200: LookupOut, **error_responses(400, 401, 404, 429)},
        tags=["accounts"],
    )
    def lookup(self, request):
        username = request.query_params.get("username", "").strip()
        if not username or len(username) > 150:
            raise errors.InvalidRequest("username is required", errors={"username": ["This field is required."]})
        if "\x00" in username:  # PostgreSQL refuses a NUL outright (a 500); other oddities are just unknown
            raise errors.InvalidRequest("username is malformed", errors={"username": ["invalid username"]})
        user = user_get_by_username(username=username)
        return Response({"id": user.pk, "username": user.username})
