from rest_framework import serializers

from accounts.models import User
from accounts.selectors import user_document
from wallet_project.core.fields import StrictSerializer
from wallet_project.core.schema import NOT_ALL_DIGITS
from wallets.api.serializers import WalletOut


class SignupIn(StrictSerializer):
    username = serializers.RegexField(
        r"^[A-Za-z0-9_.-]{3,32}$", max_length=32, error_messages={"invalid": "3-32 letters, digits, '_', '.' or '-'"}
    )
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(min_length=8, max_length=256, trim_whitespace=False, write_only=True)

    openapi_patterns = {"password": NOT_ALL_DIGITS}


class StringField(serializers.CharField):
    """A string and nothing else: DRF's CharField would turn the JSON number 31337 into "31337"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class LoginIn(StrictSerializer):
    username = StringField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class RefreshIn(StrictSerializer):
    refresh = serializers.CharField(max_length=4096)


class LogoutIn(StrictSerializer):
    refresh = serializers.CharField(max_length=4096, required=False)
    everywhere = serializers.BooleanField(
        required=False, default=False, help_text="Revoke every access and refresh token of the user"
    )


class PasswordChangeIn(StrictSerializer):
    current_password = serializers.CharField(max_length=256, trim_whitespace=False)
    new_password = serializers.CharField(min_length=8, max_length=256, trim_whitespace=False)

    openapi_patterns = {"new_password": NOT_ALL_DIGITS}


class UserOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    created_at = serializers.DateTimeField()
    wallets = WalletOut(many=True)

    # The fields are the schema; the representation is user_document's.
    def to_representation(self, instance: User) -> dict:
        return user_document(instance)


class TokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="JWT access token (HS256)")
    refresh = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Access token lifetime in seconds")


class LookupOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class MessageOut(serializers.Serializer):
    message = serializers.CharField()
