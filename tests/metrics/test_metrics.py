"""Prometheus metrics of our real server: promtool accepts them, a real Prometheus scrapes them."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from tests.ports import free_port
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import RunningServer, our_server

SECRET = b"\x85 metrics test secret"


def key() -> TLSKey:
    return TLSKey(*generate_ed25519_keypair())


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return str(reply.read().decode())


def sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in:\n{text}")


def run_scenario(server: RunningServer, good: TLSKey, off: TLSKey) -> None:
    assert fetch(server.host, server.port, good) == SECRET
    assert fetch(server.host, server.port, key()) is None  # unknown key
    assert fetch(server.host, server.port, off) is None  # disabled client


@contextlib.contextmanager
def metrics_server(*extra: str) -> Iterator[tuple[RunningServer, int, TLSKey, TLSKey]]:
    """Our server with metrics on a free port, a client "good" and a disabled client "off"."""
    good, off = key(), key()
    conf = client_section("good", good, SECRET) + client_section(
        "off", off, SECRET, enabled="False"
    )
    port = free_port()
    with our_server(conf, extra_args=[f"--metrics-address=127.0.0.1:{port}", *extra]) as server:
        yield server, port, good, off


def scenario_metrics(*extra: str) -> str:
    """The scrape after the scenario, once its three connections are over."""
    with metrics_server(*extra) as (server, port, good, off):
        run_scenario(server, good, off)
        deadline = time.monotonic() + 20
        while True:
            text = scrape(port)
            if sample(text, "mandos_connections_open") == 0:
                return text
            assert time.monotonic() < deadline, text
            time.sleep(0.05)


def test_counters_after_a_fetch_an_unknown_key_and_a_disabled_client() -> None:
    text = scenario_metrics()
    assert sample(text, 'mandos_requests_total{outcome="secret_sent"}') == 1
    assert sample(text, 'mandos_requests_total{outcome="unknown_client"}') == 1
    assert sample(text, 'mandos_requests_total{outcome="disabled"}') == 1
    assert sample(text, 'mandos_requests_total{outcome="not_approved"}') == 0
    assert sample(text, 'mandos_clients{state="enabled"}') == 1
    assert sample(text, 'mandos_clients{state="disabled"}') == 1
    assert sample(text, "mandos_request_duration_seconds_count") == 1
    assert sample(text, "mandos_connections_open") == 0
    assert sample(text, "mandos_approvals_pending") == 0
    assert sample(text, "mandos_state_saves_total") >= 1
    assert sample(text, "mandos_audit_records_lost_total") == 0
    assert 'client="good"' not in text  # no per-client series unless asked


def test_per_client_series_when_asked() -> None:
    text = scenario_metrics("--metrics-per-client")
    assert sample(text, 'mandos_client_requests_total{client="good",outcome="secret_sent"}') == 1
    assert sample(text, 'mandos_client_enabled{client="off"}') == 0


def test_promtool_accepts_the_output() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/install-deps (Debian package prometheus)"
    text = scenario_metrics("--metrics-per-client")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


def test_unknown_path_and_method() -> None:
    with metrics_server() as (_, port, _, _):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=10)
        assert exc.value.code == 404
        exc.value.close()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="POST")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 - http only
        assert exc.value.code == 405
        exc.value.close()


def test_busy_metrics_port_fails_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        good = key()
        conf = client_section("good", good, SECRET)
        with (
            pytest.raises(RuntimeError, match=r"mandos: metrics address 127\.0\.0\.1:\d+: "),
            our_server(conf, extra_args=[f"--metrics-address=127.0.0.1:{busy}"]),
        ):
            pass


@pytest.mark.slow
def test_a_real_prometheus_scrapes_it(tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: run scripts/install-deps (Debian package prometheus)"
    with metrics_server() as (server, port, good, off):
        run_scenario(server, good, off)
        prom_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: mandos\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
        prom = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            query = 'mandos_requests_total{outcome="secret_sent"}'
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=" + urllib.parse.quote(query)
            deadline = time.monotonic() + 60
            result: list[dict[str, object]] = []
            while time.monotonic() < deadline and not result:
                time.sleep(0.5)
                try:
                    with urllib.request.urlopen(url, timeout=5) as reply:
                        result = json.loads(reply.read())["data"]["result"]
                except OSError:
                    continue
            assert result, "Prometheus never scraped the server"
            value = result[0]["value"]
            assert isinstance(value, list)
            assert float(value[1]) == 1
            assert result[0]["metric"]["job"] == "mandos"  # type: ignore[index]
        finally:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
