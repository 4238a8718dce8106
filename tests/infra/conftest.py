"""Run the real Pulumi program under mocks and record everything it declares.

`run_program()` executes `infra.stack.build()` with the config of the real Pulumi.dev.yaml (plus
overrides) under `pulumi.runtime.set_mocks(..., preview=False)`, waits for every output, and returns a
`Program`: each registered resource with its inputs, mocked outputs, parent, provider and dependencies
(as the engine would see them), every invoke, and the stack outputs (with their secretness).

The mocks answer with realistic camelCase data. A resource type without special outputs gets its inputs
echoed back plus an id (and an ARN for AWS types); an invoke the mocks do not know fails loudly, so a
new data source cannot silently return nothing.

    program = run_program({"jenkins.allowedCidrs": ["100.20.0.0/24"]})
    repo = program.one("aws:ecr/repository:Repository")        # .inputs .outputs .secret_inputs
    program.deleted_before(program.one(KUSTOMIZATION), program.one("awsx:ec2:Vpc"))
    message = config_error({"repository": "no-owner"})          # asserts nothing was declared
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import runpy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "gitops-eks"
STACK = "dev"
PULUMI_ORG = "example-pulumi-org"
ACCOUNT = "123456789012"
REGION = "us-east-1"
DELETE = object()
"""Override value that removes a key (or a field inside an object) from the config."""

GITHUB_HOST_KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nk"
    "t5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
]
GITHUB_HOOK_RANGES_V4 = ["192.30.252.0/22", "185.199.108.0/22", "140.82.112.0/20", "143.55.64.0/20"]
GITHUB_HOOK_RANGES_V6 = ["2a0a:a440::/29", "2606:50c0::/32"]
AL2023_AMI = "ami-0a1b2c3d4e5f60718"
GITHUB_USER_IDS = {"example-maintainer": 5820001}
GITHUB_REPO_ID = 987654321
# The branch's head as GitHub answers `getBranch` (the stack records it as the trust anchor).
GITHUB_BRANCH_HEAD = "3f786850e387550fdab836ed7e6dc881de23001b"
OIDC_HOST = f"oidc.eks.{REGION}.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


@dataclass(frozen=True)
class Resource:
    """One registered resource, as the engine would have received it."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    """Plain values: secrets unwrapped (see `secret_inputs`), resource references replaced by their URN."""
    secret_inputs: frozenset[str]
    """Top-level input names whose value is, or contains, a secret."""
    outputs: dict[str, Any]
    custom: bool
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, tuple[str, ...]]
    options: dict[str, Any]
    """Other resource options sent to the engine: protect, retainOnDelete, deletedWith, ignoreChanges,
    additionalSecretOutputs, deleteBeforeReplace, replaceOnChanges, aliases."""

    @property
    def alias_urns(self) -> list[str]:
        """The URNs the engine would look for this resource under (its `aliases` option), computed as
        the engine does from each alias spec: unset parts (name, type, parent) are this resource's own."""
        prefix, _qualified, _name = self.urn.rsplit("::", 2)
        urns = []
        for alias in self.options.get("aliases", []):
            if "urn" in alias:
                urns.append(alias["urn"])
                continue
            spec = alias.get("spec", {})
            parent = spec.get("parentUrn", self.parent)
            type_ = spec.get("type", self.type)
            parent_type = parent.rsplit("::", 2)[1] if parent and not spec.get("noParent") else ""
            # The engine leaves the stack's own type out of its descendants' qualified types (the mock
            # monitor's URNs keep it).
            parent_type = parent_type.removeprefix("pulumi:pulumi:Stack").removeprefix("$")
            qualified = f"{parent_type}${type_}" if parent_type else type_
            urns.append(f"{prefix}::{qualified}::{spec.get('name', self.name)}")
        return urns

    @property
    def provider_urn(self) -> str:
        """The URN part of the provider reference (`urn::id`), or ''."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""


@dataclass(frozen=True)
class Read:
    """One `Resource.get(name, id)`: an existing resource read, not managed."""

    type: str
    name: str
    urn: str
    id: str
    parent: str


@dataclass(frozen=True)
class Invoke:
    token: str
    args: dict[str, Any]


@dataclass
class Program:
    """What one run of the program declared."""

    resources: list[Resource]
    invokes: list[Invoke]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]
    reads: list[Read] = field(default_factory=list)
    by_urn: dict[str, Resource] = field(init=False)

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.resources}

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        """The single resource of this type (and name, when given); fails if there are 0 or many."""
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Resource:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def types(self) -> set[str]:
        return {r.type for r in self.resources}

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def invokes_of(self, token: str) -> list[Invoke]:
        return [i for i in self.invokes if i.token == token]

    def direct_dependencies(self, resource: Resource) -> set[str]:
        """URNs the engine must keep until `resource` is deleted: its dependencies, property
        dependencies, provider and parent (children are deleted before their parent)."""
        urns = set(resource.dependencies)
        for deps in resource.property_dependencies.values():
            urns.update(deps)
        if resource.provider_urn:
            urns.add(resource.provider_urn)
        if resource.parent:
            urns.add(resource.parent)
        return urns

    def deleted_before(self, first: Resource, second: Resource) -> bool:
        """True when the engine's dependency graph forces `first` to be deleted before `second`."""
        seen: set[str] = set()
        todo = [first.urn]
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            resource = self.by_urn.get(urn)
            if resource is None:
                continue
            direct = self.direct_dependencies(resource)
            if second.urn in direct:
                return True
            todo.extend(direct)
        return False


# What the operator adds to Pulumi.dev.yaml before the first run (its header says how): the repository and
# its owner, the CIDRs allowed to reach the Kubernetes API and Jenkins (a public range that is not reserved
# for documentation), and who approves a pull request's preview.
OPERATOR_CIDRS = ["100.20.0.0/24"]
OPERATOR_CONFIG = {
    "repository": "example-org/hello-gitops",
    "github:owner": "example-org",
    "cluster.publicAccessCidrs": OPERATOR_CIDRS,
    "jenkins.allowedCidrs": OPERATOR_CIDRS,
    "preview.reviewers": ["example-maintainer"],
    "pullsToken": "github_pat_operator_pulls_token_for_tests",
}


@contextlib.contextmanager
def operator_codeowners(checkout: Path) -> Iterator[Path]:
    """The operator's checkout after the quickstart: `.github/CODEOWNERS` rendered for their reviewers
    (the repository's own copy names no owner) under `checkout`. The program reads it from there while
    the context is open."""
    from infra import codeowners

    checkout.mkdir(parents=True, exist_ok=True)
    path = checkout / "CODEOWNERS"
    path.write_text(codeowners.render(OPERATOR_CONFIG["preview.reviewers"]))
    shipped, codeowners.CODEOWNERS = codeowners.CODEOWNERS, path
    try:
        yield path
    finally:
        codeowners.CODEOWNERS = shipped


def committed_config(stack: str = STACK) -> dict[str, Any]:
    """The `config:` block of the real Pulumi.<stack>.yaml as committed, parsed (objects as dicts)."""
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def dev_config() -> dict[str, Any]:
    """The real Pulumi.dev.yaml plus the values its header asks the operator to set (OPERATOR_CONFIG)."""
    return apply_overrides(committed_config(), OPERATOR_CONFIG)


def _full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set (or DELETE) keys. `jenkins.allowedCidrs` reaches inside the `gitops-eks:jenkins` object."""
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        top, _, inner = _full_key(key).partition(".")
        if not inner:
            if value is DELETE:
                config.pop(top, None)
            else:
                config[top] = value
            continue
        target = config.setdefault(top, {})
        if value is DELETE:
            target.pop(inner, None)
        else:
            target[inner] = value
    return config


def flatten(config: Mapping[str, Any]) -> dict[str, str]:
    """Config as the Pulumi engine hands it to a program: strings raw, everything else as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def _policy_document(args: Mapping[str, Any]) -> dict[str, Any]:
    """Render aws.iam.get_policy_document's statements the way AWS would (camelCase in, JSON out)."""

    def principals(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        return {p["type"]: p["identifiers"] for p in items}

    statements = []
    for s in args.get("statements", []):
        statement: dict[str, Any] = {"Effect": s.get("effect", "Allow")}
        for key, name in (("sid", "Sid"), ("actions", "Action"), ("notActions", "NotAction")):
            if key in s:
                statement[name] = s[key]
        for key, name in (("resources", "Resource"), ("notResources", "NotResource")):
            if key in s:
                statement[name] = s[key]
        if "principals" in s:
            statement["Principal"] = principals(s["principals"])
        if "conditions" in s:
            conditions: dict[str, dict[str, Any]] = {}
            for c in s["conditions"]:
                conditions.setdefault(c["test"], {})[c["variable"]] = c["values"]
            statement["Condition"] = conditions
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _kubeconfig(cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": f"https://{cluster.upper()}.gr7.{REGION}.eks.amazonaws.com",
                    "certificate-authority-data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
                },
            }
        ],
        "contexts": [{"name": "aws", "context": {"cluster": cluster, "user": "aws"}}],
        "current-context": "aws",
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster, "--output", "json"],
                    }
                },
            }
        ],
    }


def _arn(type_: str, name: str) -> str:
    service = type_.split(":")[1].split("/")[0]
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"


def _subnets(kind: str, zones: int) -> list[str]:
    return [f"subnet-{kind}-{chr(ord('a') + i)}" for i in range(zones)]


def _pem(label: str, body: str) -> str:
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def _resource_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Type-specific outputs a real provider would return (camelCase)."""
    if typ == "awsx:ec2:Vpc":
        zones = int(inputs.get("numberOfAvailabilityZones", 3))
        specs = {s.get("type") for s in inputs.get("subnetSpecs", [{"type": "Public"}, {"type": "Private"}])}
        return {
            "vpcId": f"vpc-{name}",
            "publicSubnetIds": _subnets("public", zones) if "Public" in specs else [],
            "privateSubnetIds": _subnets("private", zones) if "Private" in specs else [],
            "isolatedSubnetIds": [],
        }
    if typ == "eks:index:Cluster":
        kubeconfig = _kubeconfig(name)
        return {
            "kubeconfig": kubeconfig,
            "kubeconfigJson": json.dumps(kubeconfig),
            "clusterSecurityGroupId": f"sg-{name}-cluster",
            "nodeSecurityGroupId": f"sg-{name}-node",
            "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC_HOST}",
            "oidcProviderUrl": OIDC_HOST,
            "oidcIssuer": f"https://{OIDC_HOST}",
        }
    if typ == "aws:ecr/repository:Repository":
        repo = inputs.get("name", name)
        return {
            "name": repo,
            "registryId": ACCOUNT,
            "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repo}",
        }
    if typ == "aws:ec2/launchTemplate:LaunchTemplate":
        return {"latestVersion": 1, "defaultVersion": 1}
    if typ == "aws:kms/key:Key":
        return {"keyId": f"key-{name}", "arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/key-{name}"}
    if typ == "aws:iam/role:Role":
        return {"name": inputs.get("name", name), "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}"}
    if typ in ("aws:ec2/instance:Instance", "aws:ec2/eip:Eip"):
        return {
            "publicIp": "198.51.100.10",
            "publicDns": "ec2-198-51-100-10.compute-1.amazonaws.com",
            "privateIp": "10.0.0.10",
        }
    if typ == "aws:lb/loadBalancer:LoadBalancer":
        return {"dnsName": f"{name}-1234567890.{REGION}.elb.amazonaws.com", "zoneId": "Z35SXDOTRQ7X7K"}
    if typ == "aws:secretsmanager/secret:Secret":
        return {"name": inputs.get("name", name)}
    if typ == "tls:index/privateKey:PrivateKey":
        return {
            "publicKeyOpenssh": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{name[:20]:0<20} \n",
            "privateKeyOpenssh": _pem("OPENSSH PRIVATE KEY", name),
            "privateKeyPem": _pem("PRIVATE KEY", name),
            "publicKeyFingerprintSha256": f"SHA256:{name}",
        }
    if typ == "pulumi-python:dynamic/openpgp:Key":  # infra/openpgp.py; tests/infra/test_openpgp.py runs it
        return {
            "fingerprint": hashlib.sha256(name.encode()).hexdigest()[:40].upper(),
            "public_key": _pem("PGP PUBLIC KEY BLOCK", name),
            "private_key": _pem("PGP PRIVATE KEY BLOCK", name),
        }
    if typ == "pulumi-python:dynamic/gitops:SigningSwitch":  # infra/signing_switch.py; its test runs it
        return {"outcome": "pushed", "commit": hashlib.sha256(name.encode()).hexdigest()[:40], "reason": ""}
    if typ in ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString"):
        return {"result": ("p4ss-" + name * 8)[: int(inputs.get("length", 32))]}
    if typ == "random:index/randomId:RandomId":
        return {"hex": "0123456789abcdef0123456789abcdef", "b64Url": "ASNFZ4mrze8BI0VniavN7w"}
    if typ == "kubernetes:core/v1:Service":
        return {
            "status": {"loadBalancer": {"ingress": [{"hostname": f"{name}-1234.{REGION}.elb.amazonaws.com"}]}}
        }
    if typ == "kubernetes:helm.sh/v3:Release":
        return {"status": {"status": "deployed", "namespace": inputs.get("namespace", "default")}}
    if typ in ("docker:index/image:Image", "docker:index/registryImage:RegistryImage"):
        image = inputs.get("imageName", inputs.get("name", name))
        digest = "sha256:" + "ab" * 32
        return {
            "imageName": image,
            "repoDigest": f"{str(image).rsplit(':', 1)[0]}@{digest}",
            "sha256Digest": digest,
        }
    return {}


def create_in_own_process(provider: Any, props: Mapping[str, Any]) -> dict[str, Any]:
    """`provider.create(props)` as the Pulumi CLI runs a dynamic provider: pickled into the state
    (`serialize_provider`), unpickled in a process of its own started in the program's working directory
    (pulumi/pulumi#17763) with nothing else of the program loaded. Returns the id and the outputs."""
    import subprocess
    import sys

    from pulumi.dynamic.dynamic import serialize_provider

    loader = (
        "import base64, json, sys, dill\n"
        "provider = dill.loads(base64.b64decode(sys.stdin.readline()))\n"
        "result = provider.create(json.loads(sys.stdin.readline()))\n"
        "print(json.dumps({'id': result.id, **result.outs}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", loader],
        input=f"{serialize_provider(provider)}\n{json.dumps(dict(props))}\n",
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class InvokeFailure(Exception):
    """A data source that fails, as the provider reports it (the engine raises it in the program)."""


def oidc_provider_not_found() -> dict[str, Any]:
    """terraform-provider-aws openid_connect_provider_data_source.go: no provider with the URL ends in
    retry.NotFoundError, "couldn't find resource" (internal/retry/error.go)."""
    raise InvokeFailure(
        "reading IAM OIDC Provider (https://token.actions.githubusercontent.com): couldn't find resource"
    )


def _invoke_result(token: str, args: Mapping[str, Any]) -> dict[str, Any]:
    results: dict[str, Callable[[], dict[str, Any]]] = {
        # An account without GitHub's OIDC provider (run_program's `invoke_results` gives it one).
        "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider": oidc_provider_not_found,
        "aws:index/getAvailabilityZones:getAvailabilityZones": lambda: {
            "id": REGION,
            "names": [f"{REGION}{z}" for z in "abc"],
            "zoneIds": [f"use1-az{i}" for i in (1, 2, 4)],
            "state": "available",
        },
        "aws:index/getCallerIdentity:getCallerIdentity": lambda: {
            "id": ACCOUNT,
            "accountId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:user/platform",
            "userId": "AIDAEXAMPLE",
        },
        "aws:index/getRegion:getRegion": lambda: {
            "id": REGION,
            "name": REGION,
            "region": REGION,
            "description": "US East (N. Virginia)",
            "endpoint": f"ec2.{REGION}.amazonaws.com",
        },
        "aws:index/getPartition:getPartition": lambda: {
            "id": "aws",
            "partition": "aws",
            "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws",
        },
        "aws:iam/getPolicyDocument:getPolicyDocument": lambda: {
            "id": "policy",
            "json": json.dumps(_policy_document(args)),
            "minifiedJson": json.dumps(_policy_document(args), separators=(",", ":")),
        },
        "aws:ec2/getAmi:getAmi": lambda: {
            "id": AL2023_AMI,
            "imageId": AL2023_AMI,
            "name": "al2023-ami-2023.9.20251110.0-kernel-6.1-x86_64",
            "architecture": "x86_64",
            "ownerId": "137112412989",
        },
        "aws:ec2/getSubnet:getSubnet": lambda: {  # subnet-private-b lies in zone b
            "id": args["id"],
            "availabilityZone": f"{REGION}{args['id'][-1]}",
            "vpcId": "vpc-network-vpc",
        },
        "aws:ssm/getParameter:getParameter": lambda: {
            "id": args.get("name", ""),
            "name": args.get("name", ""),
            "type": "String",
            "value": AL2023_AMI,
            "insecureValue": AL2023_AMI,
            "version": 1,
        },
        "aws:ecr/getAuthorizationToken:getAuthorizationToken": lambda: {
            "id": REGION,
            "authorizationToken": "QVdTOm1vY2stdG9rZW4=",
            "userName": "AWS",
            "password": "mock-token",
            "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
            "expiresAt": "2026-11-25T00:00:00Z",
        },
        "github:index/getSshKeys:getSshKeys": lambda: {"id": "github", "keys": GITHUB_HOST_KEYS},
        # GitHub users' numeric ids (the REST API's `id`), derived from the login so each differs.
        "github:index/getUser:getUser": lambda: {
            "id": str(GITHUB_USER_IDS.get(args["username"], 1000 + len(args["username"]))),
            "login": args["username"],
        },
        "github:index/getRepository:getRepository": lambda: {
            "id": args["fullName"].split("/")[1],
            "fullName": args["fullName"],
            "repoId": GITHUB_REPO_ID,
            "nodeId": "R_kgDOEXAMPLE",
            # A repository named `*-private` or `*-internal` has that visibility (plan-dependent gates).
            "visibility": next(
                (v for v in ("private", "internal") if args["fullName"].endswith(f"-{v}")), "public"
            ),
        },
        # terraform-provider-github github/data_source_github_branch.go: id `repo:branch`, ref, sha, etag.
        "github:index/getBranch:getBranch": lambda: {
            "id": f"{args['repository']}:{args['branch']}",
            "repository": args["repository"],
            "branch": args["branch"],
            "ref": f"refs/heads/{args['branch']}",
            "sha": GITHUB_BRANCH_HEAD,
            "etag": 'W/"etag"',
        },
        "github:index/getIpRanges:getIpRanges": lambda: {
            "id": "github",
            "hooks": GITHUB_HOOK_RANGES_V4 + GITHUB_HOOK_RANGES_V6,
            "hooksIpv4s": GITHUB_HOOK_RANGES_V4,
            "hooksIpv6s": GITHUB_HOOK_RANGES_V6,
            "gits": ["192.30.252.0/22"],
            "webs": ["192.30.252.0/22"],
            "apis": ["192.30.252.0/22"],
        },
    }
    if token not in results:
        raise AssertionError(f"the mocks do not answer invoke {token}; add it to tests/infra/conftest.py")
    return results[token]()


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers resources and invokes; `extra_outputs` lets a test add outputs for a type."""

    def __init__(
        self,
        extra_outputs: Mapping[str, Callable[[str, dict], dict]] | None = None,
        preview: bool = False,
        invoke_results: Mapping[str, Callable[[dict], dict]] | None = None,
    ) -> None:
        self.extra_outputs = dict(extra_outputs or {})
        self.invoke_results = dict(invoke_results or {})
        self.preview = preview
        self.invokes: list[Invoke] = []
        self.outputs: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        # A custom resource echoes its inputs, as providers do; a (remote) component's outputs are its
        # own and often differ in type from same-named inputs (awsx Vpc `natGateways`).
        echoed = args.inputs if args.custom else {}
        if self.preview:  # as in a first `pulumi preview`: what the cloud computes is not known yet
            return f"{args.name}-id", echoed
        outputs = {**echoed, **_resource_outputs(args.typ, args.name, args.inputs)}
        if args.typ in self.extra_outputs:
            outputs.update(self.extra_outputs[args.typ](args.name, args.inputs))
        if args.typ.startswith("aws:") and "arn" not in outputs:
            outputs["arn"] = _arn(args.typ, args.name)
        self.outputs[(args.typ, args.name)] = outputs
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        self.invokes.append(Invoke(args.token, dict(args.args)))
        try:
            if args.token in self.invoke_results:
                return self.invoke_results[args.token](dict(args.args)), []
            return _invoke_result(args.token, args.args), []
        except InvokeFailure as failure:
            return {}, [("", str(failure))]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping what the SDK sent for each registration (parent, deps, options)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[tuple[str, Any]] = []
        self.reads: list[Read] = []

    def ReadResource(self, request: Any) -> Any:
        # `Resource.get(name, id)`: the engine reads the resource and keeps it in the state as external.
        response = super().ReadResource(request)
        self.reads.append(Read(request.type, request.name, response.urn, request.id, request.parent))
        return response

    def RegisterResource(self, request: Any) -> Any:
        # The stock monitor rehydrates resource references (ManagedNodeGroup's `cluster`) into live
        # Resource objects on its worker thread, whose lookups then run on another event loop: flaky
        # "attached to a different loop" errors and hangs. The URN is all a test needs.
        request.object.CopyFrom(
            json_format.ParseDict(_refs_to_urns(json_format.MessageToDict(request.object)), Struct())
        )
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append((response.urn, request))
        return response


def _refs_to_urns(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_resource_sig:
            return value["urn"]
        return {k: _refs_to_urns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_refs_to_urns(v) for v in value]
    return value


def _plain(value: Any) -> tuple[Any, bool]:
    """A wire value as plain Python, and whether it held a secret. Integral numbers become ints
    (the wire only has doubles)."""
    if isinstance(value, dict):
        kind = value.get(rpc._special_sig_key)
        if kind == rpc._special_secret_sig:
            return _plain(value["value"])[0], True
        items = {k: _plain(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(secret for _, secret in items.values())
    if isinstance(value, list):
        items = [_plain(v) for v in value]
        return [v for v, _ in items], any(secret for _, secret in items)
    if isinstance(value, float) and value.is_integer():
        return int(value), False
    return value, False


def _record(monitor: RecordingMonitor, mocks: RecordingMocks) -> list[Resource]:
    resources = []
    for urn, request in monitor.registrations:
        wire = json_format.MessageToDict(request.object)
        fields = {key: _plain(value) for key, value in wire.items()}
        resources.append(
            Resource(
                type=request.type,
                name=request.name,
                urn=urn,
                inputs={key: value for key, (value, _) in fields.items()},
                secret_inputs=frozenset(key for key, (_, secret) in fields.items() if secret),
                outputs=mocks.outputs.get((request.type, request.name), {}),
                custom=request.custom,
                parent=request.parent,
                provider=request.provider,
                dependencies=tuple(request.dependencies),
                property_dependencies={k: tuple(v.urns) for k, v in request.propertyDependencies.items()},
                options={
                    "protect": request.protect,
                    "retainOnDelete": request.retainOnDelete,
                    "deletedWith": request.deletedWith,
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "ignoreChanges": list(request.ignoreChanges),
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "additionalSecretOutputs": list(request.additionalSecretOutputs),
                    "aliases": [json_format.MessageToDict(a) for a in request.aliases],
                },
            )
        )
    return resources


def _stack_outputs() -> tuple[dict[str, Any], frozenset[str]]:
    root = pulumi_settings.get_root_resource()
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for name, output in getattr(root, "outputs", {}).items():
        out = pulumi.Output.from_input(output)
        values[name] = _sync_await(out.future())
        if _sync_await(out.is_secret()):
            secret.add(name)
    return values, frozenset(secret)


def _start(
    overrides: Mapping[str, Any] | None,
    secrets: Iterable[str] = (),
    extra_outputs: Mapping[str, Callable[[str, dict], dict]] | None = None,
    config: Mapping[str, Any] | None = None,
    preview: bool = False,
    invoke_results: Mapping[str, Callable[[dict], dict]] | None = None,
    stack: str = STACK,
) -> tuple[RecordingMocks, RecordingMonitor]:
    """Fresh runtime state: new root stack, new mocks and monitor, the config set."""
    values = apply_overrides(dev_config() if config is None else dict(config), overrides or {})
    pulumi_settings.ROOT.set(None)
    mocks = RecordingMocks(extra_outputs, preview, invoke_results)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor, organization=PULUMI_ORG
    )
    # The operator sets the pulls token with `--secret` (the quickstart): secret wherever it is set.
    secret_keys = {*secrets, *(["pullsToken"] if _full_key("pullsToken") in values else [])}
    pulumi.runtime.set_all_config(flatten(values), [_full_key(k) for k in secret_keys])
    return mocks, monitor


def _build(entry_point: bool = False) -> None:
    from infra import stack  # imported late: a fresh runtime must be configured first

    if entry_point:  # what `pulumi up` runs: the project's __main__.py
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")))
    else:
        _sync_await(run_pulumi_func(stack.build))


def run_program(
    overrides: Mapping[str, Any] | None = None,
    *,
    secrets: Iterable[str] = (),
    extra_outputs: Mapping[str, Callable[[str, dict], dict]] | None = None,
    config: Mapping[str, Any] | None = None,
    entry_point: bool = False,
    preview: bool = False,
    invoke_results: Mapping[str, Callable[[dict], dict]] | None = None,
    stack: str = STACK,
) -> Program:
    """Run `infra.stack.build()` under fresh mocks with Pulumi.dev.yaml's config plus `overrides`.

    `overrides` keys are `repository`, `jenkins.allowedCidrs`, `aws:region`...; a value of DELETE
    removes the key. `secrets` names keys to mark secret (like `pulumi config set --secret`).
    `config` replaces Pulumi.dev.yaml as the starting point. `entry_point` runs __main__.py instead.
    `preview=True` runs it as `pulumi preview` would (apply callbacks skip unknown values): only to
    check the program survives a preview; assert properties with the default, preview=False.
    `invoke_results` replaces the mocks' answer to a data source (token -> args -> result; raise
    InvokeFailure to make it fail). `stack` names the stack the program runs as (pulumi.get_stack()).
    """
    mocks, monitor = _start(overrides, secrets, extra_outputs, config, preview, invoke_results, stack)
    _build(entry_point)
    outputs, secret_outputs = _stack_outputs()
    return Program(_record(monitor, mocks), list(mocks.invokes), outputs, secret_outputs, list(monitor.reads))


def config_error(overrides: Mapping[str, Any], *, reads: bool = False, **kwargs: Any) -> str:
    """Run the program expecting a ConfigError; return its message. Asserts nothing was declared, and,
    unless `reads` (a check that needs GitHub's or AWS's answer), that no data source was read."""
    from infra.config import ConfigError

    mocks, monitor = _start(overrides, **kwargs)
    with pytest.raises(ConfigError) as raised:
        _build()
    declared = monitor.registrations + monitor.reads
    assert declared == [], "resources were declared before the config was validated"
    assert reads or mocks.invokes == [], "data sources were read before the config was validated"
    return str(raised.value)


@pytest.fixture(scope="module")
def dev_program() -> Program:
    """The program run once with the real Pulumi.dev.yaml, shared by a module's read-only assertions."""
    return run_program()


def controller_user_data(program: Program) -> str:
    """The Jenkins controller's #cloud-config document, as cloud-init reads it: the instance's
    `userDataBase64` is gzip (EC2's 16 KB limit), which cloud-init decompresses first."""
    import base64
    import gzip

    encoded = program.one("aws:ec2/instance:Instance").inputs["userDataBase64"]
    return gzip.decompress(base64.b64decode(encoded)).decode()
