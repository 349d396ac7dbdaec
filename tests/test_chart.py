"""The Helm chart (charts/videojobs) rendered by the real helm: lint, schema, RBAC, Pod Security, CRD copy.

helm comes from the test control plane's bin dir (`hack/test-cluster build`, a no-op once built).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "videojobs"
SCRIPT = REPO / "hack" / "test-cluster"
NAMESPACE = "videojobs-system"
RELEASE = "vj"
CLUSTER_SCOPED = {("scheduling.k8s.io", "priorityclasses")}
"""Resources of the operator's rules that only a ClusterRole can grant."""

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="module")
def helm() -> Path:
    """The helm binary the test control plane's build provides."""
    build = subprocess.run([str(SCRIPT), "build"], capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr[-4000:]
    exports = subprocess.run([str(SCRIPT), "env"], capture_output=True, text=True, check=True).stdout
    (path,) = [line.split("=", 1)[1] for line in exports.splitlines() if line.startswith("export PATH=")]
    return Path(path.split(":", 1)[0]) / "helm"


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No cluster: helm must not read a kubeconfig (nor contact a cluster) for lint and template.
    env = {**os.environ, "KUBECONFIG": os.devnull}
    return subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, check=False)


def set_args(values: dict[str, str]) -> list[str]:
    return [arg for name, value in values.items() for arg in ("--set-json", f"{name}={value}")]


@pytest.fixture(scope="module")
def render(helm: Path) -> Render:
    """`helm template` the chart with `--set-json NAME=JSON` values; the manifests as dicts."""

    def rendered(**values: str) -> list[dict[str, Any]]:
        done = run_helm(helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, *set_args(values))
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    return rendered


def of_kind(manifests: Iterable[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] in kinds]


def normalized(rules: Iterable[dict[str, Any]]) -> list[tuple[tuple[str, ...], ...]]:
    """Rules as sorted tuples, so that order and YAML style do not matter."""
    return sorted(
        tuple(
            tuple(sorted(rule.get(key, []))) for key in ("apiGroups", "resources", "verbs", "resourceNames")
        )
        for rule in rules
    )


def rules_bound_to(manifests: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    """Every rule of the Roles and ClusterRoles bound to ServiceAccount `account`."""
    roles = {(m["kind"], m["metadata"]["name"]): m for m in of_kind(manifests, "Role", "ClusterRole")}
    rules = []
    for binding in of_kind(manifests, "RoleBinding", "ClusterRoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]):
            rules += roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]["rules"]
    return rules


def grants(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (API group, resource) pairs the rules grant anything on."""
    return {
        (group, resource) for rule in rules for group in rule["apiGroups"] for resource in rule["resources"]
    }


def file_rules(path: Path) -> list[dict[str, Any]]:
    (role,) = [doc for doc in yaml.safe_load_all(path.read_text()) if doc["kind"] in ("Role", "ClusterRole")]
    return list(role["rules"])


def pod_specs(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m["spec"]["template"]["spec"] for m in of_kind(manifests, "Deployment")}


def operator_env(manifests: list[dict[str, Any]]) -> dict[str, str | None]:
    (container,) = pod_specs(manifests)[f"{RELEASE}-videojobs-operator"]["containers"]
    return {item["name"]: item.get("value") for item in container["env"]}


# --- tests -----------------------------------------------------------------------------------------


def test_lint_strict_is_clean(helm: Path) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_crd_in_the_chart_is_the_generated_one() -> None:
    copy = CHART / "crds" / "videojob.yaml"
    assert copy.read_bytes() == (REPO / "crds" / "videojob.yaml").read_bytes(), "run `make crds`"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("pipeline.defaultQuality", '"ultra"', "/pipeline/defaultQuality"),
        ("pipeline.storage.backend", '"local"', "/pipeline/storage/backend"),
        ("pipeline.storage.bucket", '""', "/pipeline/storage/bucket"),
        ("pipeline.concurrency.scenes", "0", "/pipeline/concurrency/scenes"),
        ("pipeline.extraEnv", '{"not a name": "x"}', "invalid propertyName 'not a name'"),
        ("runner.renderIsolation", '"gvisor"', "/runner/renderIsolation"),
        ("runner.resources.gpu", "-1", "/runner/resources/gpu"),
        ("runner.resources.memory", '"lots"', "/runner/resources/memory"),
        ("runner.tolerations", '[{"key": "x", "operator": "Sometimes"}]', "/runner/tolerations/0/operator"),
        ("operator.replicas", "-1", "/operator/replicas"),
        ("operator.resources.limits", "null", "missing property 'limits'"),
        ("api.resources.requests.cpu", '"fast"', "/api/resources/requests/cpu"),
        ("images.runner.pullPolicy", '"Sometimes"', "/images/runner/pullPolicy"),
        ("secrets.api", '""', "/secrets/api"),
        ("secrets.llm", '"Not_A_Name"', "/secrets/llm"),
        ("api.service.port", "70000", "/api/service/port"),
        ("networkPolicy.apiServer.cidrs", '["10.0.0.1"]', "/networkPolicy/apiServer/cidrs/0"),
        ("pipeline.typo", "1", "additional properties 'typo' not allowed"),
        ("api.dailyBudgetUsd", "-1", "/api/dailyBudgetUsd"),
        ("api.tenantQueues", '{"alice": "Not A Queue"}', "/api/tenantQueues/alice"),
        ("api.queueName", '"team-{tenant}"', "/api/queueName"),
        ("metrics.serviceMonitor.interval", '"often"', "/metrics/serviceMonitor/interval"),
        ("operator.watchNamespaces", '["Team_A"]', "/operator/watchNamespaces/0"),
        ("operator.watchNamespaces", '["team-a", "team-a"]', "/operator/watchNamespaces"),
    ],
)
def test_schema_refuses_bad_values(helm: Path, name: str, value: str, message: str) -> None:
    done = run_helm(helm, "template", RELEASE, str(CHART), *set_args({name: value}))
    assert done.returncode != 0, f"{name}={value} was accepted"
    assert "don't meet the specifications of the schema" in done.stderr, done.stderr
    assert message in done.stderr, done.stderr


def test_no_api_needs_no_api_secret(render: Render) -> None:
    manifests = render(**{"api.enabled": "false", "secrets.api": '""'})
    assert not [m for m in manifests if m["metadata"]["name"].endswith("-api")]


def test_operator_rules_are_those_of_operator_rbac_file(render: Render) -> None:
    source = normalized(file_rules(REPO / "operator" / "rbac" / "operator.yaml"))
    account = f"{RELEASE}-videojobs-operator"

    namespaced = render()
    assert normalized(rules_bound_to(namespaced, account)) == source
    for role in of_kind(namespaced, "ClusterRole"):  # namespaced: only what a Role cannot grant
        for rule in role["rules"]:
            assert grants([rule]) <= CLUSTER_SCOPED, rule

    cluster_wide = render(**{"operator.watchAllNamespaces": "true"})
    assert not of_kind(cluster_wide, "Role") or all(
        m["metadata"]["name"] != account for m in of_kind(cluster_wide, "Role")
    )
    assert normalized(rules_bound_to(cluster_wide, account)) == source
    (deployment,) = [d for d in of_kind(cluster_wide, "Deployment") if d["metadata"]["name"] == account]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["operator"]


def test_watching_a_list_of_namespaces_gives_each_a_role_and_what_its_runners_use(render: Render) -> None:
    account, watched = f"{RELEASE}-videojobs-operator", [NAMESPACE, "team-a", "team-b"]
    manifests = render(
        **{"operator.watchNamespaces": '["team-a", "team-b"]', "runner.serviceAccount.shared": "true"}
    )
    (deployment,) = [d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"] == account]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["operator", *(arg for ns in watched for arg in ("--namespace", ns))]
    namespaced = normalized(
        rule
        for rule in file_rules(REPO / "operator" / "rbac" / "operator.yaml")
        if not grants([rule]) <= CLUSTER_SCOPED
    )
    for namespace in watched:
        here = [m for m in manifests if m["metadata"].get("namespace", NAMESPACE) == namespace]
        operator_bindings = [
            b
            for b in of_kind(here, "RoleBinding")
            if b["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
        ]
        (binding,) = operator_bindings
        (role,) = [r for r in of_kind(here, "Role") if r["metadata"]["name"] == binding["roleRef"]["name"]]
        assert normalized(role["rules"]) == namespaced, namespace
        names = {(m["kind"], m["metadata"]["name"]) for m in here}
        assert {
            ("ConfigMap", f"{RELEASE}-videojobs-pipeline"),
            ("NetworkPolicy", f"{RELEASE}-videojobs-runner"),
            ("NetworkPolicy", f"{RELEASE}-videojobs-render"),
            ("ServiceAccount", f"{RELEASE}-videojobs-runner"),
            ("ServiceAccount", f"{RELEASE}-videojobs-render"),
            ("Role", f"{RELEASE}-videojobs-runner"),
            ("RoleBinding", f"{RELEASE}-videojobs-runner"),
        } <= names, (namespace, names)
        assert (namespace == NAMESPACE) == (("ServiceAccount", account) in names)  # the operator runs once
    for role in of_kind(manifests, "ClusterRole"):  # no namespace-wide grant outside the list
        assert grants(role["rules"]) <= CLUSTER_SCOPED, role


def test_watching_all_namespaces_and_a_list_is_refused(helm: Path) -> None:
    values = {"operator.watchAllNamespaces": "true", "operator.watchNamespaces": '["team-a"]'}
    done = run_helm(helm, "template", RELEASE, str(CHART), *set_args(values))
    assert done.returncode != 0 and "exclude each other" in done.stderr, done.stderr


def test_runners_get_their_own_identity_unless_one_is_shared(render: Render) -> None:
    runner = f"{RELEASE}-videojobs-runner"
    per_videojob = render(**{"runner.serviceAccount.annotations": '{"eks.amazonaws.com/role-arn": "arn:x"}'})
    assert [m["kind"] for m in per_videojob if m["metadata"]["name"] == runner] == ["NetworkPolicy"]
    env = operator_env(per_videojob)
    assert "RUNNER_SERVICE_ACCOUNT" not in env  # the operator creates one per VideoJob
    assert json.loads(env["RUNNER_SERVICE_ACCOUNT_ANNOTATIONS"]) == {"eks.amazonaws.com/role-arn": "arn:x"}

    shared = render(**{"runner.serviceAccount.shared": "true"})
    assert operator_env(shared)["RUNNER_SERVICE_ACCOUNT"] == runner
    assert sorted(m["kind"] for m in shared if m["metadata"]["name"] == runner) == [
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    source = normalized(file_rules(REPO / "operator" / "rbac" / "runner.yaml"))
    assert normalized(rules_bound_to(shared, runner)) == source


def test_api_rules_are_those_of_api_rbac_file(render: Render) -> None:
    source = normalized(file_rules(REPO / "api" / "rbac.yaml"))
    assert normalized(rules_bound_to(render(), f"{RELEASE}-videojobs-api")) == source


def test_every_pod_is_restricted_with_resources(render: Render) -> None:
    specs = pod_specs(render(**{"api.ingress.enabled": "true"}))
    assert set(specs) == {f"{RELEASE}-videojobs-operator", f"{RELEASE}-videojobs-api"}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert "hostNetwork" not in spec and "hostPID" not in spec and "hostIPC" not in spec, name
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= {"emptyDir", "secret", "configMap", "projected"}, (name, volume)
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True, name
            assert security["seccompProfile"]["type"] == "RuntimeDefault", name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], name


def test_runner_gpu_settings_reach_the_operator(render: Render) -> None:
    values = {
        "runner.resources": '{"cpu": "2", "memory": "8Gi", "gpu": 2}',
        # Helm merges maps: null drops the default GPU label.
        "runner.nodeSelector": '{"nvidia.com/gpu.present": null, "cloud.example/accelerator": "h100"}',
        "runner.tolerations": json.dumps(
            [{"key": "dedicated", "operator": "Equal", "value": "video", "effect": "NoSchedule"}]
        ),
        "operator.maxRunning": "3",
        "secrets.llm": '"my-llm"',
    }
    manifests = render(**values)
    (container,) = pod_specs(manifests)[f"{RELEASE}-videojobs-operator"]["containers"]
    env = operator_env(manifests)
    assert container["args"] == ["operator", "--namespace", NAMESPACE]
    assert (env["DEFAULT_GPU_COUNT"], env["DEFAULT_CPU"], env["DEFAULT_MEMORY"]) == ("2", "2", "8Gi")
    assert json.loads(env["DEFAULT_NODE_SELECTOR"]) == {"cloud.example/accelerator": "h100"}
    assert json.loads(env["DEFAULT_TOLERATIONS"]) == json.loads(values["runner.tolerations"])
    assert (env["MAX_RUNNING"], env["LLM_SECRET_NAME"]) == ("3", "my-llm")
    assert env["RUNNER_CONFIGMAP_NAME"] == f"{RELEASE}-videojobs-pipeline"
    assert env["RUNNER_IMAGE"] == "ghcr.io/videojobs/runner:0.1.0"


def test_settings_configmap_uses_the_names_the_settings_read(render: Render) -> None:
    from videojobs.settings import Settings

    (config_map,) = of_kind(
        render(**{"pipeline.extraEnv": '{"OPENAI_API_BASE": "http://llm:8000/v1"}'}), "ConfigMap"
    )
    known = {name.upper() for name in Settings.model_fields}
    assert set(config_map["data"]) - known == {"OPENAI_API_BASE"}
    settings = Settings.model_validate(
        {k.lower(): v for k, v in config_map["data"].items() if k.lower() in Settings.model_fields}
    )
    assert settings.storage_backend.value == "s3" and settings.s3_bucket == "videojobs"


def test_no_secret_values_in_the_chart(render: Render) -> None:
    assert not of_kind(render(), "Secret")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["secrets"].values()) == {"videojobs-llm", "videojobs-s3", "videojobs-api"}  # names only


def test_network_policies(render: Render) -> None:
    values = {
        "networkPolicy.apiServer.cidrs": '["10.96.0.1/32"]',
        "networkPolicy.s3Egress": json.dumps(
            [{"to": [{"podSelector": {"matchLabels": {"app": "minio"}}}], "ports": [{"port": 9000}]}]
        ),
    }
    policies = {m["metadata"]["name"]: m["spec"] for m in of_kind(render(**values), "NetworkPolicy")}
    runner = policies[f"{RELEASE}-videojobs-runner"]
    assert runner["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "videojobs-operator"}}
    assert runner["policyTypes"] == ["Ingress", "Egress"] and runner["ingress"] == []
    dns, api_server, llm, s3 = runner["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api_server["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]
    assert (
        llm["ports"] == [{"port": 443, "protocol": "TCP"}]
        and "10.0.0.0/8" in llm["to"][0]["ipBlock"]["except"]
    )
    assert s3["ports"] == [{"port": 9000}]
    api = policies[f"{RELEASE}-videojobs-api"]
    assert api["policyTypes"] == ["Ingress"] and api["ingress"][0]["ports"][0]["port"] == "http"
    assert not of_kind(render(**{"networkPolicy.enabled": "false"}), "NetworkPolicy")


def test_render_pods_get_an_account_without_rbac_and_egress_only_to_dns_and_s3(render: Render) -> None:
    render_account = f"{RELEASE}-videojobs-render"
    s3 = [{"to": [{"podSelector": {"matchLabels": {"app": "minio"}}}], "ports": [{"port": 9000}]}]
    manifests = render(**{"networkPolicy.s3Egress": json.dumps(s3), "runner.render.memoryMb": "3000"})
    (account,) = [m for m in of_kind(manifests, "ServiceAccount") if m["metadata"]["name"] == render_account]
    assert account["automountServiceAccountToken"] is False
    assert rules_bound_to(manifests, render_account) == []
    policies = {m["metadata"]["name"]: m["spec"] for m in of_kind(manifests, "NetworkPolicy")}
    policy = policies[render_account]
    assert policy["podSelector"] == {"matchLabels": {"videojobs.io/role": "render"}}
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["ingress"] == []
    dns, *rest = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and rest == s3  # no API server, no LLM
    fallback = {m["metadata"]["name"]: m["spec"] for m in of_kind(render(), "NetworkPolicy")}[render_account]
    (_, https) = fallback["egress"]  # s3Egress empty: public HTTPS only (AWS S3)
    assert (
        https["ports"] == [{"port": 443, "protocol": "TCP"}]
        and "10.0.0.0/8" in https["to"][0]["ipBlock"]["except"]
    )
    assert operator_env(manifests)["RENDER_ISOLATION"] == "pod"
    (config_map,) = of_kind(manifests, "ConfigMap")
    assert config_map["data"]["RENDER_SERVICE_ACCOUNT"] == render_account
    assert config_map["data"]["RENDER_POD_MEMORY_MB"] == "3000"

    (policy,) = of_kind(manifests, "ValidatingAdmissionPolicy")
    (binding,) = of_kind(manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }
    expressions = " ".join(rule["expression"] for rule in policy["spec"]["validations"])
    assert f'"{render_account}"' in expressions and "automountServiceAccountToken == false" in expressions
    assert not of_kind(render(**{"runner.render.admissionPolicy": "false"}), "ValidatingAdmissionPolicy")

    unconfined = render(**{"runner.renderIsolation": '"none"'})
    assert not of_kind(unconfined, "ValidatingAdmissionPolicy")
    assert operator_env(unconfined)["RENDER_ISOLATION"] == "none"
    assert render_account not in {m["metadata"]["name"] for m in unconfined}
    (config_map,) = of_kind(unconfined, "ConfigMap")
    assert not any(name.startswith("RENDER_POD") for name in config_map["data"])


def test_pull_secrets_reach_the_runner_pods_through_the_operator(render: Render) -> None:
    assert "RUNNER_IMAGE_PULL_SECRETS" not in operator_env(render())
    env = operator_env(render(imagePullSecrets='["registry-a", "registry-b"]'))
    assert json.loads(env["RUNNER_IMAGE_PULL_SECRETS"]) == ["registry-a", "registry-b"]


def test_replicated_components_get_a_disruption_budget_and_single_ones_none(render: Render) -> None:
    assert of_kind(render(), "PodDisruptionBudget") == []
    budgets = of_kind(render(**{"operator.replicas": "2", "api.replicas": "3"}), "PodDisruptionBudget")
    assert sorted(b["metadata"]["name"] for b in budgets) == [
        f"{RELEASE}-videojobs-api",
        f"{RELEASE}-videojobs-operator",
    ]
    deployments = {d["metadata"]["name"]: d for d in of_kind(render(), "Deployment")}
    for budget in budgets:
        assert budget["spec"]["maxUnavailable"] == 1
        pods = deployments[budget["metadata"]["name"]]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pods.items()
    assert (
        of_kind(
            render(**{"api.enabled": "false", "api.replicas": "3", "secrets.api": '""'}),
            "PodDisruptionBudget",
        )
        == []
    )


def test_service_monitors_are_optional_and_scrape_the_operator_and_the_api(render: Render) -> None:
    assert not of_kind(render(), "ServiceMonitor")
    manifests = render(
        **{"metrics.serviceMonitor.enabled": "true", "metrics.serviceMonitor.labels": '{"release": "kps"}'}
    )
    monitors = {m["metadata"]["name"]: m for m in of_kind(manifests, "ServiceMonitor")}
    assert set(monitors) == {f"{RELEASE}-videojobs-operator", f"{RELEASE}-videojobs-api"}
    services = of_kind(manifests, "Service")
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kps"
        (endpoint,) = monitor["spec"]["endpoints"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
    no_api = render(**{"metrics.serviceMonitor.enabled": "true", "api.enabled": "false", "secrets.api": '""'})
    assert [m["metadata"]["name"] for m in of_kind(no_api, "ServiceMonitor")] == [
        f"{RELEASE}-videojobs-operator"
    ]


def test_helm_test_submits_a_tiny_job_over_the_api_and_cancels_it(render: Render) -> None:
    (pod,) = of_kind(render(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    (container,) = spec["containers"]
    script = container["command"][-1]
    compile(script, "helm-test", "exec")
    assert '"/v1/videos/generate"' in script and "Idempotency-Key" in script and "/cancel" in script
    env = {item["name"]: item for item in container["env"]}
    assert env["API_URL"]["value"] == f"http://{RELEASE}-videojobs-api:80"
    assert env["API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "videojobs-api", "key": "test-api-key"}
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not of_kind(render(**{"tests.enabled": "false"}), "Pod")
    policies = render(
        **{"networkPolicy.apiIngressFrom": '[{"podSelector": {"matchLabels": {"app": "web"}}}]'}
    )
    (api_policy,) = [p for p in of_kind(policies, "NetworkPolicy") if p["metadata"]["name"].endswith("-api")]
    sources = api_policy["spec"]["ingress"][0]["from"]
    assert any(
        source.get("podSelector", {}).get("matchLabels", {}).items() <= pod["metadata"]["labels"].items()
        and source["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "helm-test"
        for source in sources
    )


def test_tenant_queues_and_budgets_reach_the_api(render: Render) -> None:
    from videojobs_api.settings import ApiSettings

    manifests = render(
        **{
            "api.queueName": '"videojobs-{principal}"',
            "api.tenantQueues": '{"alice": "team-a"}',
            "api.dailyBudgetUsd": "25",
            "api.dailyBudgetsUsd": '{"alice": 100}',
        }
    )
    (container,) = pod_specs(manifests)[f"{RELEASE}-videojobs-api"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    prefix = "VIDEOJOBS_API_"
    names = ("QUEUE_NAME", "TENANT_QUEUES", "DAILY_BUDGET_USD", "DAILY_BUDGETS_USD")
    settings = ApiSettings.model_validate(
        {
            name.lower(): json.loads(env[prefix + name]) if name != "QUEUE_NAME" else env[prefix + name]
            for name in names
        }
    )
    assert settings.queue_for("alice") == "team-a" and settings.queue_for("bob") == "videojobs-bob"
    assert settings.daily_budget("alice") == 100 and settings.daily_budget("bob") == 25
    (default,) = pod_specs(render())[f"{RELEASE}-videojobs-api"]["containers"]
    assert not {prefix + name for name in names} & {item["name"] for item in default["env"]}
