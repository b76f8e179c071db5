"""What of bench/static_files.py can be checked without a load or a daemon:
its arguments, the files it serves (readable by nobody), the two servers'
configurations, its reading of wrk and its report.

    /usr/bin/python3 -m pytest -q bench/test_static_files.py
"""

import shutil
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import static_files  # noqa: E402


def test_defaults_match_return_200():
    arguments = static_files.parse_arguments([])
    assert (arguments.duration, arguments.connections, arguments.rounds) == (10, 50, 3)
    assert arguments.listen_threads == 1
    assert arguments.canopyd.parts[-4:] == ("build", "release", "bin", "canopyd")
    assert not arguments.json


@pytest.mark.parametrize("bad", [["--duration", "0"], ["--listen-threads", "-1"],
                                 ["--rounds", "x"], ["--unknown"]])
def test_bad_arguments_are_usage_errors(bad):
    with pytest.raises(SystemExit) as exit_info:
        static_files.parse_arguments(bad)
    assert exit_info.value.code == static_files.EXIT_USAGE


def test_missing_canopyd_is_named(tmp_path):
    arguments = static_files.parse_arguments(["--canopyd", str(tmp_path / "canopyd")])
    with pytest.raises(static_files.BenchError, match="no canopyd at"):
        static_files.check_prerequisites(arguments)


def test_files_are_readable_by_everyone(tmp_path):
    directory = static_files.make_files(tmp_path)
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
        for name, size in static_files.FILES.items():
            info = (directory / name).stat()
            assert info.st_size == size
            assert stat.S_IMODE(info.st_mode) == 0o644
    finally:
        shutil.rmtree(directory)


def test_the_configurations_serve_the_same_directory(tmp_path):
    canopy = static_files.canopy_configuration(8080, tmp_path, 2)
    assert canopy["routes"] == [{"action": {"share": f"{tmp_path}$uri"}}]
    assert canopy["settings"] == {"listen_threads": 2}
    assert canopy["listeners"] == {"127.0.0.1:8080": {"pass": "routes"}}
    nginx = static_files.nginx_configuration(tmp_path / "w", 8080, tmp_path, 2)
    assert "worker_processes 2;" in nginx
    assert "sendfile on;" in nginx
    assert f"root {tmp_path};" in nginx
    assert "listen 127.0.0.1:8080;" in nginx


WRK = """Running 8s test @ http://127.0.0.1:1/1k.bin
  Latency Distribution
     50%  200.00us
     99%    1.25ms
  100000 requests in 8.00s, 120.00MB read
Requests/sec:  12500.50
"""


def test_wrk_output_is_read():
    assert static_files.parse_wrk(WRK) == {"requests_per_second": 12500.5, "p99_ms": 1.25}
    with pytest.raises(static_files.BenchError, match="not 2xx or 3xx"):
        static_files.parse_wrk(WRK + "  Non-2xx or 3xx responses: 7\n")
    with pytest.raises(static_files.BenchError, match="cannot read"):
        static_files.parse_wrk("nothing")


def test_markdown_rows_for_the_readme():
    arguments = static_files.parse_arguments(["--duration", "8", "--rounds", "3"])

    def run(rps_small, rps_large):
        return {"1k.bin": {"requests_per_second": rps_small, "p99_ms": 0.5},
                "1m.bin": {"requests_per_second": rps_large, "p99_ms": 40.0}}

    summary = static_files.summarise(arguments, [run(90000, 900), run(100000, 1000),
                                                 run(80000, 1100)],
                                     [run(100000, 1000)] * 3)
    assert summary["files"]["1k.bin"]["ratio_rps_canopy_to_nginx"] == 0.9
    rows = static_files.markdown(summary).splitlines()
    assert rows[0] == ("| 1 KiB file, req/s (wrk -t1 -c50, 8 s, median of 3 alternating "
                       "rounds) | 90,000 | 100,000 | 0.90 |")
    assert rows[1] == "| 1 KiB file, p99 latency | 0.50 ms | 0.50 ms | 1.00 |"
    assert rows[2].startswith("| 1 MiB file, req/s") and rows[2].endswith(
        "| 1,000 | 1,000 | 1.00 |")
    assert len(rows) == 4
