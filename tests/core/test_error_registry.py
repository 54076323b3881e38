"""One class per error code, registered as it is defined: the code list the schema and replays read."""

import pytest

from wallet_project.core import errors

# SPEC.md's codes and statuses as it states them (the seed endpoints' table and "Transfer errors").
SPEC_CODES = {
    "INVALID_REQUEST": 400,
    "AMOUNT_NOT_POSITIVE": 400,
    "INVALID_DECIMALS": 400,
    "AMOUNT_EXCEEDS_LIMIT": 400,
    "INSUFFICIENT_BALANCE": 400,
    "SAME_ACCOUNT_TRANSFER": 400,
    "SENDER_WALLET_NOT_FOUND": 404,
    "RECIPIENT_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "TRANSACTION_NOT_FOUND": 404,
    "UNAUTHORIZED": 401,
    "INVALID_CREDENTIALS": 401,
    "FORBIDDEN": 403,
    "USER_ALREADY_EXISTS": 409,
    "IDEMPOTENCY_KEY_IN_USE": 409,
    "IDEMPOTENCY_KEY_MISMATCH": 422,
    "RATE_LIMIT_EXCEEDED": 429,
    "TRANSACTION_FAILED": 500,
}


@pytest.mark.parametrize(("code", "status"), SPEC_CODES.items())
def test_every_code_in_the_spec_is_registered_with_its_status(code, status):
    cls = errors.by_code(code)
    assert cls is not None, code
    assert cls.status_code == status and cls.code == code


def test_each_registered_class_raises_its_own_code_and_status():
    for code, cls in errors.registry.items():
        error = cls()
        assert (error.code, error.status_code) == (code, cls.status_code)
        assert error.message == cls.default_message and error.message


def test_a_second_class_for_a_taken_code_fails_at_definition():
    with pytest.raises(TypeError, match="INSUFFICIENT_BALANCE"):

        class Again(errors.ApiError):
            status_code = 409
            code = "INSUFFICIENT_BALANCE"

    assert errors.by_code("INSUFFICIENT_BALANCE") is errors.InsufficientBalance


def test_an_error_class_without_a_code_of_its_own_fails_at_definition():
    with pytest.raises(TypeError, match="own code"):

        class Vague(errors.InsufficientBalance):
            default_message = "poorer"


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        errors.registry["NEW"] = errors.InvalidRequest  # type: ignore[index]


def test_the_schema_documents_each_status_with_the_registered_codes(api, db):
    schema = api.get("/openapi.json").json()
    transfer = schema["paths"]["/wallet/transfer"]["post"]["responses"]
    for status in ("400", "404", "409"):
        described = transfer[status]["description"]
        for code, cls in errors.registry.items():
            assert (f"`{code}`" in described) == (str(cls.status_code) == status), (status, code)
