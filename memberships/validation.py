"""Input checks shared by every edge; each raises ``InvalidInput`` naming the field."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from memberships.errors import InvalidInput

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
MAX_URL_LENGTH = 255


def valid_email(value: str, field: str = "email") -> str:
    try:
        return validate_email((value or "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise InvalidInput(f"{field}: {error}", field=field) from None


def valid_statement_url(value: str, field: str = "url") -> str:
    value = (value or "").strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{field}: must be an http(s) URL", field=field)
    if len(value) > MAX_URL_LENGTH:
        raise InvalidInput(f"{field}: must be at most {MAX_URL_LENGTH} characters", field=field)
    return value


def valid_domain(value: str, field: str = "domain") -> str:
    value = (value or "").strip().lower()
    if not _DOMAIN.match(value):
        raise InvalidInput(
            f"{field}: {value!r} is not a domain name like contoso.example", field=field
        )
    return value


def valid_name(value: str, field: str = "name", max_length: int = 255) -> str:
    value = (value or "").strip()
    if not value or len(value) > max_length:
        raise InvalidInput(f"{field}: must be 1 to {max_length} characters", field=field)
    return value
