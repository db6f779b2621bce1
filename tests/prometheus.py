"""A real Prometheus and a real Pushgateway (Debian's `prometheus` and `prometheus-pushgateway`), started
on loopback for one test and stopped after it. Nothing here accepts what the real ones would refuse."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

SCRAPE_SECONDS = 1
BINARIES = {"prometheus": "prometheus", "pushgateway": "prometheus-pushgateway", "promtool": "promtool"}


def binary(name: str) -> str:
    path = shutil.which(BINARIES[name])
    if path is None:
        raise RuntimeError(f"{BINARIES[name]} is missing: install it with "
                           "`apt-get install -y prometheus prometheus-pushgateway` (.ci/run does)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll an outside process until `condition()` is truthy (returns it); fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except requests.RequestException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Daemon:
    def __init__(self, args: list[str], home: Path, name: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"{name}.log"
        self.proc = subprocess.Popen([*args, f"--web.listen-address=127.0.0.1:{self.port}"], cwd=home,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_for(lambda: self._ready(), f"{name} to start (log: {self.log})")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        return requests.get(f"{self.url}/-/ready", timeout=2).ok

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Pushgateway(Daemon):
    def __init__(self, home: Path):
        # its own persistence file: Debian's default (/var/lib/prometheus) would carry groups from test to test
        super().__init__([binary("pushgateway"), f"--persistence.file={home / 'pushgateway.data'}"], home, "pushgateway")

    def group_text(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=5).text


class Prometheus(Daemon):
    """Scrapes the Pushgateway (honor_labels, as Prometheus' docs ask for it) and/or a job's /metrics
    every second, and evaluates the rule files given."""

    def __init__(self, home: Path, pushgateway: Pushgateway | None = None, targets: list[str] = (),
                 rule_files: list[Path] = ()):
        jobs = []
        if pushgateway is not None:
            jobs.append(f"""  - job_name: pushgateway
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{pushgateway.port}"]}}]""")
        if targets:
            jobs.append(f"""  - job_name: immich-ext2int
    static_configs: [{{targets: [{", ".join(f'"{t}"' for t in targets)}]}}]""")
        config = home / "prometheus.yml"
        config.write_text(f"""global:
  scrape_interval: {SCRAPE_SECONDS}s
  evaluation_interval: {SCRAPE_SECONDS}s
rule_files: [{", ".join(f'"{p}"' for p in rule_files)}]
scrape_configs:
""" + "\n".join(jobs) + "\n")
        check = subprocess.run([binary("promtool"), "check", "config", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        super().__init__([binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}"],
                         home, "prometheus")

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: the result's series (labels, float value). A query Prometheus refuses fails."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        answer = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    def value(self, expr: str) -> float | None:
        """The single value of a query that sums to one series (None: no data)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: more than one series: {result}"
        return result[0]["value"] if result else None

    def scraped(self, expr: str, expected: float, timeout: float = 30.0) -> None:
        """Wait until Prometheus has scraped a sample that makes `expr` equal `expected`."""
        wait_for(lambda: self.value(expr) == expected, f"Prometheus to see {expr} == {expected}", timeout)

    def alerts(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def rules_health(self) -> list[tuple[str, str]]:
        groups = requests.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [(rule["name"], rule["health"]) for group in groups for rule in group["rules"]]
