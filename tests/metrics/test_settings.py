"""The observability settings: mandos.conf keys and command-line options, layered."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mandos.adapters.metrics import CONTENT_TYPE
from mandos.core.config import ServerConfig
from mandos.server.args import load_server_config, parse_server_args


def test_defaults_are_off() -> None:
    config = ServerConfig()
    assert (config.audit_log, config.metrics_address, config.metrics_per_client) == ("", "", False)


def test_command_line_wins_and_empty_audit_log_turns_it_off() -> None:
    conf = "[DEFAULT]\naudit_log = /var/lib/mandos/audit.jsonl\nmetrics_address = 127.0.0.1:1\n"
    args = parse_server_args(["--audit-log=", "--metrics-address=127.0.0.1:9122"])
    config = load_server_config(conf, args)
    assert config.audit_log == ""
    assert config.metrics_address == "127.0.0.1:9122"
    assert config.metrics_per_client is False
    assert load_server_config(None, parse_server_args(["--metrics-per-client"])).metrics_per_client


def test_bad_option_value_is_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_server_args(["--metrics-address=9122"])
    assert exc.value.code == 2
    assert "not ADDRESS:PORT" in capsys.readouterr().err


def test_the_server_imports_prometheus_client_only_for_metrics() -> None:
    # The library and what it imports cost 50 ms and 5.5 MiB of every start (docs/performance.md).
    probe = (
        "import sys; import mandos.server.main; from mandos.adapters.metrics import Metrics;"
        " print('prometheus_client' in sys.modules, end=' ');"
        " Metrics(list).render(); print('prometheus_client' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == "False True\n"


def test_content_type_is_the_librarys() -> None:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    assert CONTENT_TYPE == CONTENT_TYPE_LATEST
