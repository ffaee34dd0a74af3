"""Every error the API returns has one shape: {"errors": [{"field", "code", "message"}]}.

Clients (the pages, scripts) then need one parser, and the codes are the admin layer's,
so a refusal reads the same from the CLI, a phone or HTTP.
"""

from __future__ import annotations

from starlette.responses import JSONResponse


class ApiError(Exception):
    """An HTTP error with one or more {"field", "code", "message"} entries."""

    def __init__(self, status: int, code: str, message: str, field: str = "",
                 headers: dict[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or [{"field": field, "code": code, "message": message}]
        self.headers = headers or {}


def error_response(status: int, errors: list[dict[str, str]],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status, headers=headers,
                        media_type="application/json")


def one_error(status: int, code: str, message: str, field: str = "",
              headers: dict[str, str] | None = None) -> JSONResponse:
    return error_response(status, [{"field": field, "code": code, "message": message}],
                          headers)


# pydantic's error types -> our codes; anything unlisted is "invalid".
_PYDANTIC_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "required",
    "json_invalid": "invalid_json",
    "model_attributes_type": "invalid_json",
    "model_type": "invalid_type",
    "dict_type": "invalid_type",
    "bool_type": "invalid_type",
    "int_type": "invalid_type",
    "string_type": "invalid_type",
    "list_type": "invalid_type",
    "tuple_type": "invalid_type",
    "string_too_long": "too_long",
    "too_long": "too_long",
    "literal_error": "invalid_choice",
    "int_from_float": "invalid_type",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
}


def validation_errors(raw: list[dict]) -> list[dict[str, str]]:
    """FastAPI/pydantic validation errors in our shape, without echoing the input."""
    out: list[dict[str, str]] = []
    for err in raw:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
        # A union reports one error per branch (e.g. when: str | list): keep the first.
        loc = [part for part in loc if not part.startswith(("str", "list[", "literal["))]
        field = ".".join(loc)
        kind = str(err.get("type", ""))
        code = _PYDANTIC_CODES.get(kind, "invalid")
        entry = {"field": field, "code": code, "message": _message(field, code, err)}
        if entry not in out:
            out.append(entry)
    return out or [{"field": "", "code": "invalid", "message": "invalid request"}]


def _message(field: str, code: str, err: dict) -> str:
    name = field or "the body"
    if code == "unknown_field":
        return f"{name} is not a field of this request"
    if code == "required":
        return f"{name} is required"
    if code == "invalid_json":
        return "the body must be a JSON object"
    return f"{name}: {err.get('msg', 'invalid value')}"
