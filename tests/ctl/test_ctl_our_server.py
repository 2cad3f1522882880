"""Our mandos-ctl against our own server (D-Bus on): the scenarios of test_ctl_interop.py.

The same test functions run here with ``start_server`` pointing at our server; Debian's
mandos-ctl still serves as the oracle for the byte-for-byte comparisons (same bus, same server).
Every mandos-ctl option is covered: -a -v -j -V -e -d -b --start-checker --stop-checker -c -t
--extended-timeout -i --approval-delay --approval-duration --approve-by-default
--deny-by-default -H -s -A -D -r --debug --version, an unknown client, a malformed duration.
"""

from __future__ import annotations

import pytest

from tests.ctl import test_ctl_interop as scenarios
from tests.ctl.ourbus import StartServer, running_our_server

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def start_server() -> StartServer:
    """The scenarios' server: ours."""
    return running_our_server


server = scenarios.server
shared_server = scenarios.shared_server

test_same_output_as_reference = scenarios.test_same_output_as_reference
test_table_and_exit_statuses = scenarios.test_table_and_exit_statuses
test_debug_lines_match_reference = scenarios.test_debug_lines_match_reference
test_version = scenarios.test_version
test_every_setter = scenarios.test_every_setter
test_all_and_bump_timeout = scenarios.test_all_and_bump_timeout
test_remove_denies_first = scenarios.test_remove_denies_first
test_approve_lets_real_client_get_password = scenarios.test_approve_lets_real_client_get_password
test_deny_rejects_real_client = scenarios.test_deny_rejects_real_client
test_secret_file_is_what_the_client_gets = scenarios.test_secret_file_is_what_the_client_gets
test_malformed_duration_is_refused = scenarios.test_malformed_duration_is_refused
