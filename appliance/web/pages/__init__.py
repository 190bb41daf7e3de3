"""The web pages: server-rendered (Jinja2) with a little plain JavaScript, no third-party calls.

``session`` (sign-in, first-sign-in enrolment, sign-out), ``worklist`` and ``review`` (clinicians),
``auditing`` (auditors), ``releases`` (researchers), ``console`` (admins). Every page passes the
same ``authorize`` as the API; ``rendering`` turns a refusal into the sign-in page (401) or the
denied page (403, audited).
"""
