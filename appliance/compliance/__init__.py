"""The compliance report: the appliance checked, continuously, against its written policy (the
``[compliance]`` section of ``appliance.toml``): what a HIPAA or ONC review asks for, every day.

``checks`` gathers the findings with their evidence, ``fingerprint`` what configuration drift is
measured on, ``reports`` signs, keeps and audits each report and raises the severe findings as
Security Alerts (which the ATNA syslog forwarder ships)."""
