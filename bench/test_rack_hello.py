"""What of bench/rack_hello.py can be checked without a load: its
arguments, both servers' configurations, reading /proc, the report; and,
when canopyd, the Ruby module and Puma are there, that both servers start
with the application and answer it (`--check`, no wrk).

    /usr/bin/python3 -m pytest -q bench/test_rack_hello.py
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rack_hello  # noqa: E402


def test_defaults():
    arguments = rack_hello.parse_arguments([])
    assert (arguments.duration, arguments.connections, arguments.rounds) == (10, 50, 3)
    assert (arguments.threads, arguments.processes, arguments.warmup) == ([1, 4], 2, 2)
    assert arguments.modules == arguments.canopyd.parent.parent / "modules"
    assert not arguments.json and not arguments.check


@pytest.mark.parametrize("bad", [["--duration", "0"], ["--threads", "0"], ["--threads", "a,b"],
                                 ["--threads", "1,300"], ["--warmup", "-1"], ["--unknown"]])
def test_bad_arguments_are_usage_errors(bad):
    with pytest.raises(SystemExit) as exit_info:
        rack_hello.parse_arguments(bad)
    assert exit_info.value.code == rack_hello.EXIT_USAGE


def test_missing_canopyd_and_module_are_named(tmp_path):
    arguments = rack_hello.parse_arguments(["--canopyd", str(tmp_path / "bin" / "canopyd")])
    with pytest.raises(rack_hello.BenchError, match="no canopyd at"):
        rack_hello.check_prerequisites(arguments)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "canopyd").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "canopyd").chmod(0o755)
    (tmp_path / "modules").mkdir()
    with pytest.raises(rack_hello.BenchError, match="no Ruby module in"):
        rack_hello.check_prerequisites(arguments)


def test_both_servers_serve_the_same_rackup_file_with_the_same_shape():
    canopy = rack_hello.canopy_configuration(8080, 2, 4)
    application = canopy["applications"][rack_hello.APP_NAME]
    assert application == {"type": "ruby", "script": str(rack_hello.APP), "processes": 2,
                           "threads": 4}
    assert canopy["listeners"] == {"127.0.0.1:8080": {"pass": f"applications/{rack_hello.APP_NAME}"}}
    puma = rack_hello.puma_command(8080, 2, 4)
    assert puma[-1] == str(rack_hello.APP)
    assert puma[puma.index("--workers") + 1] == "2"
    assert puma[puma.index("--threads") + 1] == "4:4"
    assert puma[puma.index("--bind") + 1] == "tcp://127.0.0.1:8080"
    assert rack_hello.APP.is_file()


def test_cpu_and_memory_of_a_process_tree_are_read_from_proc():
    # A child that burns CPU, with a grandchild: the tree holds all three.
    child = subprocess.Popen([sys.executable, "-c",
                              "import subprocess, sys, time\n"
                              "grandchild = subprocess.Popen(['sleep', '30'])\n"
                              "end = time.process_time() + 0.3\n"
                              "while time.process_time() < end: pass\n"
                              "print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        tree = rack_hello.process_tree(child.pid)
        assert tree[0] == child.pid and len(tree) == 2, tree
        assert rack_hello.cpu_seconds(tree) >= 0.25
        assert rack_hello.rss_kib(tree) > 1000
        assert any("sleep 30" in title for _, title in rack_hello.titles(tree))
    finally:
        for pid in rack_hello.process_tree(child.pid)[::-1]:
            os.kill(pid, 9)
        child.wait()
    assert rack_hello.cpu_seconds([child.pid]) == 0  # gone: skipped


def test_markdown_rows_for_the_readme():
    arguments = rack_hello.parse_arguments(["--duration", "8", "--rounds", "3"])

    def result(rps, cpu):
        return {"requests_per_second": rps, "p99_ms": 2.0, "rss_kib": 60 * 1024,
                "cpu_us_per_request": cpu}

    runs = {1: {"canopy": [result(30000, 60), result(31000, 58), result(29000, 62)],
                "puma": [result(10000, 150)] * 3},
            4: {"canopy": [result(33000, 55)] * 3, "puma": [result(11000, 140)] * 3}}
    summary = rack_hello.summarise(arguments, runs)
    assert summary["by_threads"][1]["canopy"]["requests_per_second"] == 30000
    assert summary["by_threads"][1]["ratio_rps_canopy_to_puma"] == 3.0
    rows = rack_hello.markdown(summary).splitlines()
    assert rows[2] == "| 1 | Canopy | 30,000 | 2.00 ms | 60.0 MiB | 60 µs | 3.00 |"
    assert rows[3] == "| 1 | Puma 5.6 | 10,000 | 2.00 ms | 60.0 MiB | 150 µs |  |"
    assert rows[4].startswith("| 4 | Canopy | 33,000 |") and rows[4].endswith("| 3.00 |")
    assert len(rows) == 6


def test_both_servers_start_and_answer(capsys):
    arguments = rack_hello.parse_arguments(
        ["--check", "--canopyd", os.environ.get("CANOPYD", "/nonexistent")])
    try:
        rack_hello.check_prerequisites(arguments)
    except rack_hello.BenchError as missing:
        pytest.skip(str(missing))
    rack_hello.run(["--check", "--canopyd", str(arguments.canopyd)])
    output = capsys.readouterr().out
    assert "canopy: GET" in output and "puma: GET" in output, output
    assert output.count("-> 200 'Hello, world!\\n'") == 2, output
    assert output.count(f'canopy: "{rack_hello.APP_NAME}" application') == 2, output
    assert output.count("cluster worker") == 2, output
