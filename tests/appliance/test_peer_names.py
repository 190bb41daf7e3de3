"""Sources and destinations are refused with one line when their AE title, host or port is not one."""

from __future__ import annotations

import pytest

from appliance.admin.peers import add_destination, add_source
from appliance.context import open_appliance
from appliance.errors import ConfigError
from testbed.processes import run_cli


@pytest.mark.parametrize(
    ("ae_title", "host", "why"),
    [
        ("THIS_AE_TITLE_IS_TOO_LONG", "127.0.0.1", "1 to 16 characters"),
        ("A\\B", "127.0.0.1", "no backslash"),
        ("", "127.0.0.1", "1 to 16 characters"),
        ("    ", "127.0.0.1", "only spaces"),
        ("CT\tONE", "127.0.0.1", "printable ASCII"),
        ("CT", "not a host!!", "not an IP address"),
        ("CT", "10.0.0.0/33", "CIDR"),
    ],
)
def test_a_source_with_a_bad_name_or_host_is_refused(home, ae_title, host, why):
    app = open_appliance(home)
    try:
        with pytest.raises(ConfigError, match=why):
            add_source(app, "tester", "bad", ae_title, host, None)
        with pytest.raises(ConfigError, match=why):
            add_destination(app, "tester", "bad", ae_title, host, 104, False)
    finally:
        app.close()


def test_good_names_hosts_and_ports_are_taken_and_a_bad_port_refused(home):
    app = open_appliance(home)
    try:
        add_source(app, "tester", "ward", "CT ONE", "10.0.1.0/24", None)  # a space inside is allowed
        add_source(app, "tester", "named", "CT2", "localhost", None)
        add_destination(app, "tester", "pacs", "PACS", "127.0.0.1", 11112, False)
        with pytest.raises(ConfigError, match="1 to 65535"):
            add_destination(app, "tester", "far", "PACS", "127.0.0.1", 99999, False)
    finally:
        app.close()


def test_the_command_says_what_is_wrong_in_one_line(home):
    result = run_cli(
        home, "sources", "add", "x", "--ae", "THIS_AE_TITLE_IS_TOO_LONG", "--host", "1.2.3.4", check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "1 to 16 characters" in result.stderr
