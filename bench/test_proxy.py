"""What of bench/proxy.py can be checked without a load or a daemon: its
arguments, the three configurations (nginx checks its own with `nginx -t`),
and its report.

    /usr/bin/python3 -m pytest -q bench/test_proxy.py
"""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy  # noqa: E402


def test_defaults_match_the_other_benchmarks():
    arguments = proxy.parse_arguments([])
    assert (arguments.duration, arguments.connections, arguments.rounds) == (10, 50, 3)
    assert arguments.listen_threads == 1
    assert arguments.canopyd.parts[-4:] == ("build", "release", "bin", "canopyd")
    assert not arguments.json


@pytest.mark.parametrize("bad", [["--duration", "0"], ["--listen-threads", "-1"],
                                 ["--rounds", "x"], ["--unknown"]])
def test_bad_arguments_are_usage_errors(bad):
    with pytest.raises(SystemExit) as exit_info:
        proxy.parse_arguments(bad)
    assert exit_info.value.code == proxy.EXIT_USAGE


def test_missing_canopyd_is_named(tmp_path):
    arguments = proxy.parse_arguments(["--canopyd", str(tmp_path / "canopyd")])
    with pytest.raises(proxy.BenchError, match="no canopyd at"):
        proxy.check_prerequisites(arguments)


def test_both_proxies_go_to_the_same_backend():
    canopy = proxy.canopy_configuration(8080, 9090, 2)
    assert canopy["routes"] == [{"action": {"proxy": "http://127.0.0.1:9090"}}]
    assert canopy["settings"] == {"listen_threads": 2}
    assert canopy["listeners"] == {"127.0.0.1:8080": {"pass": "routes"}}
    nginx = proxy.nginx_proxy_configuration("/w", 8080, 9090, 2)
    assert "worker_processes 2;" in nginx
    assert "server 127.0.0.1:9090;" in nginx
    assert "keepalive 64;" in nginx
    assert "proxy_http_version 1.1;" in nginx
    assert "listen 127.0.0.1:8080;" in nginx
    backend = proxy.backend_configuration("/w", 9090)
    assert "listen 127.0.0.1:9090;" in backend
    assert "return 200;" in backend and proxy.BACKEND_MARK in backend


@pytest.mark.parametrize("which", ["backend", "front"])
def test_nginx_accepts_the_configurations(tmp_path, which):
    binary = proxy.nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed")
    if which == "backend":
        text = proxy.backend_configuration(tmp_path, 9090)
    else:
        text = proxy.nginx_proxy_configuration(tmp_path, 8080, 9090, 1)
    (tmp_path / "nginx.conf").write_text(text)
    result = subprocess.run([binary, "-t", "-q", "-c", str(tmp_path / "nginx.conf"),
                             "-p", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_report():
    arguments = proxy.parse_arguments(["--rounds", "3", "--duration", "8"])
    canopy_runs = [{"requests_per_second": rps, "p99_ms": 1.0} for rps in (90.0, 100.0, 80.0)]
    nginx_runs = [{"requests_per_second": rps, "p99_ms": 0.5} for rps in (200.0, 180.0, 220.0)]
    summary = proxy.summarise(arguments, canopy_runs, nginx_runs)
    assert summary["canopy"] == {"requests_per_second": 90.0, "p99_ms": 1.0}
    assert summary["nginx"]["requests_per_second"] == 200.0
    assert summary["ratio_rps_canopy_to_nginx"] == 0.45
    assert summary["ratio_p99_canopy_to_nginx"] == 2.0
    rows = proxy.markdown(summary).splitlines()
    assert rows[0] == ("| proxied `return 200`, req/s (wrk -t1 -c50, 8 s, median of 3 "
                       "alternating rounds) | 90 | 200 | 0.45 |")
    assert rows[1] == "| proxied `return 200`, p99 latency | 1.00 ms | 0.50 ms | 2.00 |"
