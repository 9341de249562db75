"""The role names, apart from the models so that the CLI can offer them without loading
the ORM."""

from __future__ import annotations

ROLES = ("global-administrator", "external-identity-provider-administrator", "operator")
ADMIN_ROLES = ("global-administrator", "external-identity-provider-administrator")
