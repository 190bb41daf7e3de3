"""Who may call what: every HTTP route's rule, in this one table. Deny by default.

A route is named by its method and path template as the application declares it. A route with no
entry here is refused to everyone (and ``tests/web/test_route_rules.py`` fails until it has one).
``PUBLIC`` routes need no sign-in; ``SIGNED_IN`` ones any role.
"""

from __future__ import annotations

from appliance.db.tables import Role

PUBLIC: frozenset[Role] = frozenset()
SIGNED_IN = frozenset(Role)
CLINICAL = frozenset({Role.CLINICIAN})
ADMIN = frozenset({Role.ADMIN})
AUDITOR = frozenset({Role.AUDITOR})

_DICOMWEB_READS = [
    "/dicomweb/studies",
    "/dicomweb/series",
    "/dicomweb/instances",
    "/dicomweb/studies/{study}",
    "/dicomweb/studies/{study}/metadata",
    "/dicomweb/studies/{study}/series",
    "/dicomweb/studies/{study}/instances",
    "/dicomweb/studies/{study}/series/{series}",
    "/dicomweb/studies/{study}/series/{series}/metadata",
    "/dicomweb/studies/{study}/series/{series}/instances",
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}",
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata",
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
]

RULES: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/password"): PUBLIC,
    ("POST", "/api/auth/logout"): SIGNED_IN,
    ("GET", "/api/auth/me"): SIGNED_IN,
    ("GET", "/api/openapi.json"): ADMIN,
    ("GET", "/metrics"): ADMIN,
    **{("GET", path): CLINICAL for path in _DICOMWEB_READS},
    # STOW-RS, an alternative to C-STORE (checked and stored the same way): clinicians and admins
    ("POST", "/dicomweb/studies"): frozenset({Role.CLINICIAN, Role.ADMIN}),
    ("POST", "/dicomweb/studies/{study}"): frozenset({Role.CLINICIAN, Role.ADMIN}),
    # emergency access: a clinician outside a study's scope, or an admin (who sees no PHI otherwise)
    ("POST", "/api/break-glass"): frozenset({Role.CLINICIAN, Role.ADMIN}),
    ("GET", "/api/break-glass"): AUDITOR,
    ("POST", "/api/break-glass/{grant}/review"): AUDITOR,
    ("GET", "/api/audit/events"): AUDITOR,
    ("GET", "/api/audit/verify"): AUDITOR,
    ("GET", "/api/users"): ADMIN,
    ("POST", "/api/users"): ADMIN,
    ("PUT", "/api/users/{username}/role"): ADMIN,
    ("POST", "/api/users/{username}/disable"): ADMIN,
    ("POST", "/api/users/{username}/reset"): ADMIN,
    ("GET", "/api/sources"): ADMIN,
    ("POST", "/api/sources"): ADMIN,
    ("DELETE", "/api/sources/{name}"): ADMIN,
    ("GET", "/api/destinations"): ADMIN,
    ("POST", "/api/destinations"): ADMIN,
    ("DELETE", "/api/destinations/{name}"): ADMIN,
    ("POST", "/api/destinations/{name}/echo"): ADMIN,
    ("GET", "/api/jobs"): ADMIN,
    ("POST", "/api/jobs/{job}/retry"): ADMIN,
    ("GET", "/api/models"): ADMIN,
    ("POST", "/api/models/{name}/{version}/promote"): ADMIN,
    ("POST", "/api/models/{name}/rollback"): ADMIN,
    ("POST", "/api/models/{name}/{version}/retire"): ADMIN,
    ("GET", "/api/keys"): ADMIN,
    # the web pages
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/enrol"): PUBLIC,
    ("POST", "/logout"): SIGNED_IN,
    ("GET", "/worklist"): CLINICAL,
    ("POST", "/worklist"): CLINICAL,
    ("GET", "/worklist/states"): CLINICAL,
    ("GET", "/studies/{study}"): CLINICAL,
    ("POST", "/studies/{study}/results/{result}/assessment"): CLINICAL,
    ("POST", "/studies/{study}/results/{result}/correction"): CLINICAL,
    ("GET", "/audit"): AUDITOR,
    ("POST", "/audit"): AUDITOR,
    ("GET", "/audit/integrity"): AUDITOR,
    ("GET", "/audit/break-glass"): AUDITOR,
    ("POST", "/audit/break-glass/{grant}/review"): AUDITOR,
    ("GET", "/compliance"): frozenset({Role.AUDITOR, Role.ADMIN}),
    ("POST", "/compliance"): frozenset({Role.AUDITOR, Role.ADMIN}),
    ("GET", "/compliance/{report_id}/signed"): frozenset({Role.AUDITOR, Role.ADMIN}),
    ("GET", "/datasets"): frozenset({Role.RESEARCHER, Role.ADMIN}),
    ("POST", "/datasets/requests"): frozenset({Role.RESEARCHER}),
    ("POST", "/admin/release-requests/{request_id}/approve"): ADMIN,
    ("POST", "/admin/release-requests/{request_id}/refuse"): ADMIN,
    ("GET", "/admin"): ADMIN,
    ("POST", "/admin/destinations/{name}/echo"): ADMIN,
    ("POST", "/admin/jobs/{job}/retry"): ADMIN,
    ("POST", "/admin/models/{name}/{version}/promote"): ADMIN,
    ("POST", "/admin/models/{name}/rollback"): ADMIN,
    # the viewer's own files (no PHI); what it shows comes over DICOMweb, with the session
    ("GET", "/viewer/app-config.js"): PUBLIC,
    ("GET", "/viewer/{path}"): PUBLIC,
    ("GET", "/{asset}"): PUBLIC,  # the viewer's decoders and fonts; nothing else answers there
}


def allowed(method: str, path: str) -> frozenset[Role] | None:
    """The roles allowed (``PUBLIC``: no sign-in needed), or None: the route has no rule, refuse it."""
    return RULES.get((method, path))
