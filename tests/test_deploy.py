"""The deploy artefacts, checked without a cluster or a Docker engine: the chart linted and rendered by
Helm's own engine (helm-python-sdk) for several values sets, every rendered manifest validated against
Kubernetes' published schemas (kubernetes-validate), compose.example.yml against the Compose spec
(check-jsonschema), the Dockerfile's rules, and an install done exactly as the image does it."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

CHART = ROOT / "helm"
KUBE_VERSION = "1.30.0"
SECRET_VALUE = "chart-created-secret-Zq81"


def need(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        pytest.fail(f"{package} is missing: install it with `pip install {package}` (the README's test command does)")


VALUE_SETS = {
    "cronjob-existing-secret": {"immich": {"apiKey": {"existingSecret": "immich-api-key", "existingSecretKey": "key"}}},
    "cronjob-chart-secret-pushgateway": {
        "immich": {"apiKey": {"value": SECRET_VALUE}},
        "metrics": {"pushgatewayUrl": "http://pushgateway.monitoring:9091", "prometheusRule": {"enabled": True},
                    "grafanaDashboard": {"enabled": True}},
        "migration": {"libraryIds": ["1b4d2c5e-0000-4000-8000-000000000000"], "maxDuration": "45m"},
    },
    "cronjob-library-mounts": {
        "immich": {"apiKey": {"existingSecret": "immich-api-key"}},
        "migration": {"pathAliases": ["/mnt/photos=/photos"]},
        "libraryMounts": [{"mountPath": "/mnt/photos", "volume": {"persistentVolumeClaim": {"claimName": "photos"}}},
                          {"mountPath": "/srv/nas", "volume": {"nfs": {"server": "nas.local", "path": "/volume1/photo"}}}],
    },
    "cronjob-family-keys": {"immich": {"apiKeys": {"existingSecret": "immich-ext2int-keys"}},
                            "metrics": {"pushgatewayUrl": "http://pushgateway.monitoring:9091"}},
    "deployment-monitors-on": {
        "mode": "deployment",
        "immich": {"apiKey": {"existingSecret": "immich-api-key"}},
        "deployment": {"runAtStart": True},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                    "grafanaDashboard": {"enabled": True}},
        "extraEnv": [{"name": "EXT2INT_HTTP_RETRIES", "value": "3"}],
    },
}


def render_files(values: dict) -> dict[str, str]:
    helm = need("helm_python", "helm-python-sdk")
    chart = helm.Chart.load(str(CHART))
    try:
        return chart.render(values, name="photos", namespace="immich")
    finally:
        chart.close()


def render(values: dict) -> list[dict]:
    docs = []
    for path, text in render_files(values).items():
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_chart_lints_clean(name):
    helm = need("helm_python", "helm-python-sdk")
    report = helm.lint(str(CHART), VALUE_SETS[name], strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rendered_manifests_are_valid_kubernetes(name):
    validator = need("kubernetes_validate", "kubernetes-validate")
    docs = render(VALUE_SETS[name])
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            check_prometheus_operator_resource(doc)  # CRDs: not in Kubernetes' published schemas
            continue
        validator.validate(doc, KUBE_VERSION, strict=True)


def check_prometheus_operator_resource(doc: dict) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    spec = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        assert spec["selector"]["matchLabels"] and spec["endpoints"][0]["port"] == "metrics"
    elif doc["kind"] == "PodMonitor":
        assert spec["selector"]["matchLabels"] and spec["podMetricsEndpoints"][0]["port"] == "metrics"
    elif doc["kind"] == "PrometheusRule":
        for rule in spec["groups"][0]["rules"]:
            assert set(rule) >= {"alert", "expr", "labels", "annotations"}
            assert re.search(r"\bext2int_", rule["expr"])
    else:
        raise AssertionError(f"unexpected {doc['kind']}")


def pod_spec(docs: list[dict]) -> dict:
    for doc in docs:
        if doc["kind"] == "Pod":
            continue  # the `helm test` dry run
        if doc["kind"] == "CronJob":
            return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        if doc["kind"] == "Deployment":
            return doc["spec"]["template"]["spec"]
    raise AssertionError("no workload rendered")


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_pods_meet_the_restricted_pod_security_standard(name):
    spec = pod_spec(render(VALUE_SETS[name]))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    container = spec["containers"][0]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"]["drop"] == ["ALL"] and "add" not in ctx["capabilities"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts
    assert not any(v.get("hostPath") for v in spec["volumes"])


def test_the_libraries_folders_are_mounted_read_only_at_immichs_paths_and_aliases_reach_the_job():
    spec = pod_spec(render(VALUE_SETS["cronjob-library-mounts"]))
    container = spec["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path, source in (("/mnt/photos", "persistentVolumeClaim"), ("/srv/nas", "nfs")):
        assert mounts[path]["readOnly"] is True, "the job never writes to the photos"
        assert source in volumes[mounts[path]["name"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EXT2INT_PATH_ALIASES"] == "/mnt/photos=/photos"
    assert "EXT2INT_PATH_ALIASES" not in {e["name"] for e in pod_spec(render(VALUE_SETS["cronjob-existing-secret"]))["containers"][0]["env"]}


def test_default_mode_is_a_cronjob_that_never_overlaps():
    docs = render(VALUE_SETS["cronjob-existing-secret"])
    cronjob = next(d for d in docs if d["kind"] == "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["schedule"] == "30 2 * * *"
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0 and job["activeDeadlineSeconds"] > 0
    assert cronjob["spec"]["successfulJobsHistoryLimit"] >= 1
    env = {e["name"]: e.get("value") for e in pod_spec(docs)["containers"][0]["env"]}
    assert env["EXT2INT_BATCH_SIZE"] == "200" and pod_spec(docs)["containers"][0]["args"] == ["run"]
    assert not any(d["kind"] in ("Deployment", "Service", "ServiceMonitor", "Secret") for d in docs)


def test_deployment_mode_serves_metrics_through_a_service():
    docs = render(VALUE_SETS["deployment-monitors-on"])
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Pod", "PrometheusRule", "Service", "ServiceMonitor"]
    container = pod_spec(docs)["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["args"] == ["serve"] and env["EXT2INT_SCHEDULE"] == "30 2 * * *"
    assert env["EXT2INT_RUN_AT_START"] == "true" and env["EXT2INT_HTTP_RETRIES"] == "3"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"


def test_the_api_key_comes_from_a_secret_file_and_never_from_a_configmap():
    for name, values in VALUE_SETS.items():
        docs = render(values)
        spec = pod_spec(docs)
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        secret_volume = next(v for v in spec["volumes"] if v["name"] == "api-key")["secret"]
        assert "IMMICH_API_KEY" not in env
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                assert SECRET_VALUE not in json.dumps(doc) and "apiKey" not in json.dumps(doc)
        keys = values["immich"].get("apiKeys", {}).get("existingSecret")
        if keys:  # a family server: every entry of the Secret, one key per user, in one folder
            assert "IMMICH_API_KEY_FILE" not in env and env["IMMICH_API_KEYS_DIR"]["value"] == "/var/run/secrets/immich"
            assert secret_volume == {"secretName": keys, "defaultMode": 0o440}
            assert not any(d["kind"] == "Secret" for d in docs)
            continue
        assert env["IMMICH_API_KEY_FILE"]["value"] == "/var/run/secrets/immich/api-key"
        if values["immich"]["apiKey"].get("existingSecret"):
            assert secret_volume["secretName"] == values["immich"]["apiKey"]["existingSecret"]
        else:
            secret = next(d for d in docs if d["kind"] == "Secret")
            assert base64.b64decode(secret["data"]["api-key"]).decode() == SECRET_VALUE
            assert secret_volume["secretName"] == secret["metadata"]["name"]


def test_one_key_and_a_folder_of_keys_at_once_are_refused():
    helm = need("helm_python", "helm-python-sdk")
    with pytest.raises(helm.HelmError) as caught:
        render({"immich": {"apiKey": {"existingSecret": "one"}, "apiKeys": {"existingSecret": "many"}}})
    assert "not both" in str(caught.value)


def test_a_missing_key_is_refused_with_the_fix():
    helm = need("helm_python", "helm-python-sdk")
    with pytest.raises(helm.HelmError) as caught:
        render({})
    assert "immich.apiKey.existingSecret" in str(caught.value)


@pytest.mark.parametrize("values", [
    {"mode": "daemonset"}, {"migration": {"delete": "nuke"}}, {"migration": {"batchSize": 0}},
    {"immich": {"url": "immich-server:2283", "apiKey": {"existingSecret": "s"}}}, {"schedule": "every night"},
    {"migration": {"batchsize": 500}}, {"schedul": "30 2 * * *"}, {"schedule": "61 * * * *"},
    {"schedule": "0 0 31 2 *"}, {"migration": {"maxBytes": "twenty gigs"}}, {"migration": {"maxDuration": "an hour"}},
    {"migration": {"concurrency": "2"}}, {"resources": {"limits": {"memory": "lots"}}},
    {"securityContext": {"runAsUsr": 1000}}, {"metrics": {"serviceMonitor": {"interval": "1 minute"}}},
    {"metrics": {"prometheusRule": {"noSuccessForHours": 48}}}, {"cronjob": {"concurrencyPolicy": "Allow"}},
    {"tolerations": [{"key": "a", "effect": "NoSchedule", "valu": "b"}]}, {"podLabels": {"team": 7}},
])
def test_values_schema_rejects_misspelt_keys_and_bad_values(values):
    helm = need("helm_python", "helm-python-sdk")
    merged = {"immich": {"apiKey": {"existingSecret": "s"}}} | values
    with pytest.raises(helm.HelmError):
        render(merged)


@pytest.mark.parametrize("values", [
    {"schedule": "*/15 6-22 * * mon-fri"}, {"migration": {"maxBytes": "20GiB", "maxDuration": "45m"}},
    {"resources": {"limits": {"memory": "1Gi", "cpu": "500m"}, "requests": {"cpu": 0.1}}},
    {"tolerations": [{"key": "photos", "operator": "Exists", "effect": "NoSchedule"}]},
    {"securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}},
])
def test_values_schema_accepts_what_users_write(values):
    assert render({"immich": {"apiKey": {"existingSecret": "s"}}} | values)


def test_the_values_schema_is_what_its_builder_makes():
    import runpy

    built = runpy.run_path(str(CHART / "schema.py"))["render"]()
    assert (CHART / "values.schema.json").read_text() == built, "run `python helm/schema.py` after changing it"


def test_both_monitors_at_once_are_refused():
    helm = need("helm_python", "helm-python-sdk")
    with pytest.raises(helm.HelmError) as caught:
        render({"mode": "deployment", "immich": {"apiKey": {"existingSecret": "s"}},
                "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}})
    assert "not both" in str(caught.value)


def test_exit_codes_1_2_and_3_end_the_cronjobs_job_without_another_pod():
    docs = render(VALUE_SETS["cronjob-existing-secret"])
    job = next(d for d in docs if d["kind"] == "CronJob")["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    fail = next(r for r in rules if r["action"] == "FailJob")["onExitCodes"]
    assert fail == {"containerName": "ext2int", "operator": "In", "values": [1, 2, 3]}
    assert any(r["action"] == "Ignore" and r["onPodConditions"][0]["type"] == "DisruptionTarget" for r in rules)
    assert job["template"]["spec"]["restartPolicy"] == "Never", "podFailurePolicy needs it"


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_pods_carry_the_standard_labels(name):
    docs = render(VALUE_SETS[name])
    templates = [pod_spec_metadata(d) for d in docs if d["kind"] in ("CronJob", "Deployment", "Pod")]
    assert len(templates) == 2
    for metadata in templates:
        labels = metadata["labels"]
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by", "helm.sh/chart"} <= set(labels)


def pod_spec_metadata(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    if doc["kind"] == "Deployment":
        return doc["spec"]["template"]["metadata"]
    return doc["metadata"]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_test_is_a_dry_run_with_the_releases_settings_and_key(name):
    docs = render(VALUE_SETS[name])
    plan = next(d for d in docs if d["kind"] == "Pod")
    assert plan["metadata"]["annotations"]["helm.sh/hook"] == "test" and plan["spec"]["restartPolicy"] == "Never"
    container, workload = plan["spec"]["containers"][0], pod_spec(docs)["containers"][0]
    assert container["args"] == ["plan"]
    assert container["env"] == [e for e in workload["env"]] and container["volumeMounts"] == workload["volumeMounts"]
    assert plan["spec"]["volumes"] == pod_spec(docs)["volumes"]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_notes_give_commands_that_do_what_they_say(name):
    notes = next(text for path, text in render_files(VALUE_SETS[name]).items() if path.endswith("NOTES.txt"))
    assert "helm test photos -n immich --logs" in notes and "dry run" in notes
    assert "&&" not in notes, "a port-forward never returns: nothing after it would run"
    if VALUE_SETS[name].get("mode") == "deployment":
        assert "port-forward svc/photos-immich-ext2int 9807" in notes
    else:
        assert "create job --from=cronjob/photos-immich-ext2int" in notes and "a real run" in notes


def test_the_dashboard_configmap_carries_the_dashboard_file():
    docs = render(VALUE_SETS["deployment-monitors-on"])
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["immich-ext2int.json"]) == json.loads((CHART / "dashboards" / "immich-ext2int.json").read_text())


# --- compose -------------------------------------------------------------------------------------


def test_compose_example_is_valid_and_its_dashboard_exists():
    checker = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(checker).exists():
        pytest.fail("check-jsonschema is missing: install it with `pip install check-jsonschema`")
    result = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.example.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((ROOT / "compose.example.yml").read_text())
    service = compose["services"]["immich-ext2int"]
    env = service["environment"]
    assert "IMMICH_API_KEY" not in env and env["IMMICH_API_KEY_FILE"].startswith("/run/secrets/")
    assert env["IMMICH_URL"].startswith("http://immich-server") and env["EXT2INT_SCHEDULE"]
    assert service["command"] == ["serve"] and service["read_only"] is True
    assert compose["networks"]["immich"]["external"] is True
    for name in ("prometheus", "grafana"):
        assert compose["services"][name]["profiles"] == ["monitoring"]
    mount = next(v for v in compose["services"]["grafana"]["volumes"] if "dashboards" in v)
    assert (ROOT / mount.split(":")[0]).resolve().joinpath("immich-ext2int.json").exists()
    assert "immich-ext2int:9807" in compose["configs"]["prometheus_config"]["content"]


def as_container_user(uid: int, gid: int, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`ext2int` as the container's user: a Python this user may run (the venv's may sit under root's home),
    the project and its installed packages readable, nothing else of ours."""
    if os.geteuid() != 0:
        pytest.fail("this test creates files of the container's user and runs as it: run it as root (CI does)")
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).exists()), None)
    assert python, "a system Python 3 is needed to run as another user"
    site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    full = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{site}", **env}
    return subprocess.run([python, "-m", "job", *args], env=full, user=uid, group=gid, extra_groups=[],
                          capture_output=True, text=True, timeout=120)


def test_the_compose_key_file_as_written_is_read_by_the_containers_user_and_nobody_else(scene):
    compose_text = (ROOT / "compose.example.yml").read_text()
    uid, gid = map(int, yaml.safe_load(compose_text)["services"]["immich-ext2int"]["user"].split(":"))
    command = next(line.strip("# ") for line in compose_text.splitlines() if "umask 077" in line)
    assert command in (ROOT / "README.md").read_text(), "the README and the compose file say the same"
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    folder = Path(tempfile.mkdtemp(prefix="ext2int-compose-"))
    try:
        folder.chmod(0o755)
        subprocess.run(["bash", "-c", command.replace("YOUR-API-KEY", scene.key).replace("sudo ", "")], cwd=folder,
                       check=True)
        key_file = folder / "immich_api_key.txt"
        st = key_file.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o600), "the container's user's, alone"
        env = {"IMMICH_URL": scene.fake.url, "IMMICH_API_KEY_FILE": str(key_file), "EXT2INT_LOG_FORMAT": "json"}
        planned = as_container_user(uid, gid, env, "plan")
        assert planned.returncode == 0, planned.stderr
        assert "would move" in planned.stdout
        # what the old instructions made: the host user's file, mode 600
        os.chown(key_file, 1000, 1000)
        refused = as_container_user(uid, gid, env, "plan")
        assert refused.returncode == 2 and scene.key not in refused.stdout + refused.stderr
        assert refused.stderr.strip().splitlines() == [
            f"ext2int: IMMICH_API_KEY_FILE: cannot read {key_file} (permission denied): ext2int runs as user {uid} and "
            f"the file belongs to user 1000 with mode 600. Make ext2int's user its owner (chown {uid} {key_file}; the "
            "image runs as 10001), or run ext2int as the file's owner"]
    finally:
        shutil.rmtree(folder)


# --- Dockerfile --------------------------------------------------------------------------------------


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_keeps_its_rules():
    text = dockerfile()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), f"base image not pinned: {base}"
    assert text.count("FROM ${PYTHON_IMAGE}") == 2, "multi-stage, one pinned base"
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and re.fullmatch(r"[1-9]\d*:[1-9]\d*", user[-1]), "runs as a numeric non-root user"
    assert re.search(r'^ENTRYPOINT \["ext2int"\]$', text, re.M) and re.search(r'^CMD \["run"\]$', text, re.M)
    assert "org.opencontainers.image.source" in text
    for line in text.splitlines():
        if re.match(r"^(ENV|ARG|LABEL)\b", line) or line.startswith(" "):
            assert not re.search(r"(API_KEY|SECRET|TOKEN|PASSWORD)\s*=", line, re.I), f"a secret in the image: {line}"
    ignore = (ROOT / ".dockerignore").read_text()
    assert ignore.splitlines()[1] == "*" and "!job/" in ignore, ".dockerignore admits only what the image needs"


def image_install_command() -> list[str]:
    match = re.search(r"/opt/ext2int/bin/pip install ([^\n\\]+)", dockerfile())
    return match.group(1).split()


def test_the_image_installs_like_the_readme():
    args = image_install_command()
    assert args[-1] == ".", "the image installs the project itself, with its pyproject's dependencies"
    assert "pip install ." in (ROOT / "README.md").read_text()


def test_installing_as_the_image_does_gives_a_working_command(tmp_path):
    """The image's build stage, without Docker: copy what it copies, install as it installs."""
    src = tmp_path / "src"
    src.mkdir()
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile(), re.M):
        *sources, dest = line.split()
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, src / dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, src / dest / path.name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    subprocess.run([str(pip), "install", *image_install_command()], cwd=src, check=True, capture_output=True)
    result = subprocess.run([str(env_dir / "bin" / "ext2int"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "exit codes" in result.stdout
    version = subprocess.run([str(env_dir / "bin" / "ext2int"), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("immich-ext2int ")
