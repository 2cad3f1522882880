"""mandos.conf keys of the observability settings (audit_log, metrics_address, ...)."""

from __future__ import annotations

import pytest

from mandos.core.config_files import parse_server_conf
from mandos.core.errors import ConfigError


def test_mandos_conf_keys() -> None:
    text = (
        "[DEFAULT]\naudit_log = /var/lib/mandos/audit.jsonl\n"
        "metrics_address = [::1]:9122\nmetrics_per_client = yes\n"
    )
    assert parse_server_conf(text).given() == {
        "audit_log": "/var/lib/mandos/audit.jsonl",
        "metrics_address": "[::1]:9122",
        "metrics_per_client": True,
    }


def test_bad_metrics_address_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"mandos.conf:3: metrics_address: .*not an IP"):
        parse_server_conf("[DEFAULT]\n\nmetrics_address = localhost:9122\n")
