"""Builds values.schema.json, the chart's strict values schema: every key known (a misspelt one is refused),
every value typed, the cron expression, sizes and durations checked as the job checks them.

Run `python helm/schema.py` after changing values.yaml (needs kubernetes-validate, a test dependency: the
Kubernetes objects passed through to the pod, security contexts, resources, tolerations, affinity and
env, are Kubernetes' own definitions, v1.30, inlined). A test keeps the JSON equal to this output.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("values.schema.json")
KUBERNETES = "1.30.0"


def kubernetes(name: str) -> dict:
    """Kubernetes' JSON schema of `io.k8s.api.core.v1.<name>`, references resolved."""
    import kubernetes_validate

    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict"
    defs = json.loads((folder / "_definitions.json").read_text())["$defs"]

    def clean(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return clean(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: clean(v) for k, v in node.items() if not k.startswith("x-kubernetes") and k not in ("description", "format")}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    return clean(defs[f"io.k8s.api.core.v1.{name}"])


def obj(properties: dict, required: tuple[str, ...] = (), description: str | None = None) -> dict:
    out = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return out


def anycase(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


def cron_field(value: str) -> str:
    """One field of a cron expression: *, a value or a range, each with an optional step, in a list."""
    item = f"(\\*|{value}(-{value})?)(/[1-9][0-9]*)?"
    return f"{item}(,{item})*"


MONTHS = "|".join(anycase(m) for m in ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
DAYS = "|".join(anycase(d) for d in ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
CRON = {
    "type": "string",
    "description": "minute hour day-of-month month day-of-week, e.g. '30 2 * * *'",
    "pattern": "^\\s*" + "\\s+".join(cron_field(v) for v in (
        "[0-5]?[0-9]", "([01]?[0-9]|2[0-3])", "(0?[1-9]|[12][0-9]|3[01])", f"(0?[1-9]|1[0-2]|{MONTHS})", f"([0-7]|{DAYS})",
    )) + "\\s*$",
    "not": {"pattern": f"^\\s*\\S+\\s+\\S+\\s+(30|31)\\s+(0?2|{anycase('feb')})\\s+\\S+\\s*$"},  # never fires
}
DURATION = {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*[smhd]?\\s*$", "description": "90, 90s, 30m, 2h or 1d"}
OPTIONAL_DURATION = {"anyOf": [{"const": ""}, DURATION]}
SIZE = {"anyOf": [{"const": ""}, {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KkMmGgTtPpEe]([Ii]?[Bb])?|[Bb])?\\s*$",
                                  "description": "500MB, 20GiB"}]}
PROMETHEUS_DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$", "description": "Prometheus' duration, e.g. 60s"}
UUID = {"type": "string", "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
QUANTITY = {"oneOf": [{"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"},
                      {"type": "number", "minimum": 0}]}
POSITIVE = {"type": "integer", "minimum": 1}
NATURAL = {"type": "integer", "minimum": 0}


def resources() -> dict:
    schema = kubernetes("ResourceRequirements")
    for part in ("limits", "requests"):
        schema["properties"][part]["additionalProperties"] = QUANTITY
    return schema


def monitor() -> dict:
    return obj({"enabled": {"type": "boolean"}, "interval": PROMETHEUS_DURATION, "labels": STRINGS})


def schema() -> dict:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "immich-ext2int values",
        **obj({
            "mode": {"enum": ["cronjob", "deployment"]},
            "image": obj({"repository": {"type": "string", "minLength": 1}, "tag": {"type": "string"},
                          "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}, ("repository",)),
            "imagePullSecrets": {"type": "array", "items": kubernetes("LocalObjectReference")},
            "immich": obj({
                "url": {"type": "string", "pattern": "^https?://[^/\\s]+", "description": "e.g. http://immich-server:2283"},
                "apiKey": obj({"existingSecret": {"type": "string"}, "existingSecretKey": {"type": "string", "minLength": 1},
                               "value": {"type": "string"}}),
                "apiKeys": obj({"existingSecret": {"type": "string"}}, description="one key per user, in one Secret"),
            }, ("url",)),
            "schedule": CRON,
            "timeZone": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"},
            "migration": obj({
                "libraryIds": {"type": "array", "items": UUID},
                "batchSize": POSITIVE,
                "maxBytes": SIZE,
                "maxDuration": OPTIONAL_DURATION,
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 32},
                "delete": {"enum": ["trash", "force", "keep"]},
                "settleTimeout": DURATION,
                "faceWait": DURATION,
                "queueThreshold": NATURAL,
                "queueAction": {"enum": ["pause", "stop"]},
                "queueMaxPause": DURATION,
                "shutdownGrace": DURATION,
                "logFormat": {"enum": ["json", "text", "auto"]},
                "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
                "pathAliases": {"type": "array", "items": {"type": "string", "pattern": "^/[^=,]*=/[^=,]*$"},
                                "description": "e.g. /mnt/photos=/photos"},
            }),
            "libraryMounts": {"type": "array", "items": obj({
                "mountPath": {"type": "string", "pattern": "^/"},
                "volume": volume_source(),
            }, ("mountPath", "volume"), description="a library's folder, mounted read-only at Immich's path")},
            "extraEnv": {"type": "array", "items": kubernetes("EnvVar")},
            "cronjob": obj({
                "concurrencyPolicy": {"enum": ["Forbid", "Replace"],
                                      "description": "never Allow: two runs at once would count each other's metrics"},
                "startingDeadlineSeconds": {"type": "integer", "minimum": 10},
                "activeDeadlineSeconds": POSITIVE,
                "backoffLimit": NATURAL,
                "successfulJobsHistoryLimit": NATURAL,
                "failedJobsHistoryLimit": NATURAL,
                "ttlSecondsAfterFinished": NATURAL,
            }),
            "deployment": obj({"runAtStart": {"type": "boolean"}}),
            "terminationGracePeriodSeconds": NATURAL,
            "metrics": obj({
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "pushgatewayUrl": {"anyOf": [{"const": ""}, {"type": "string", "pattern": "^https?://[^/\\s]+"}]},
                "serviceMonitor": monitor(),
                "podMonitor": monitor(),
                "prometheusRule": obj({"enabled": {"type": "boolean"}, "labels": STRINGS, "failingForHours": POSITIVE,
                                       "noProgressForHours": POSITIVE}),
                "grafanaDashboard": obj({"enabled": {"type": "boolean"}, "labels": STRINGS, "annotations": STRINGS}),
            }),
            "service": obj({"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}}),
            "resources": resources(),
            "podSecurityContext": kubernetes("PodSecurityContext"),
            "securityContext": kubernetes("SecurityContext"),
            "podAnnotations": STRINGS,
            "podLabels": STRINGS,
            "nodeSelector": STRINGS,
            "tolerations": {"type": "array", "items": kubernetes("Toleration")},
            "affinity": kubernetes("Affinity"),
        }, ("mode", "image", "immich", "schedule", "migration")),
    }


def volume_source() -> dict:
    """A Kubernetes volume without its name (the chart names it)."""
    volume = kubernetes("Volume")
    volume["properties"].pop("name")
    volume["required"] = [r for r in volume.get("required", []) if r != "name"]
    if not volume["required"]:
        volume.pop("required")
    return volume


def render() -> str:
    return json.dumps(schema(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
