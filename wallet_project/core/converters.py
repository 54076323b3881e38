from django.urls import register_converter


class IdConverter:
    """A positive database id that fits in a bigint; anything else is a plain 404, never a 500."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
