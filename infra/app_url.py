"""Where the app answers once Flux has applied its overlay: the command that prints its URL.

Flux, not Pulumi, creates the app's LoadBalancer Service (from `k8s/base/`), and the cloud sets its address
only after that, minutes after `pulumi up` has finished. A Pulumi read of a Service that does not exist
yet fails the whole update, so the stack exports the exact command that prints the URL instead, built
from the Service in `k8s/base/` so that it names what Flux really applies.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from infra.errors import ConfigError

# An AWS load balancer's address is a DNS name: Service `status.loadBalancer.ingress[].hostname`, "set for
# load-balancer ingress points that are DNS based (typically AWS load-balancers)" (Kubernetes API
# reference, LoadBalancerIngress).
ADDRESS = "{.status.loadBalancer.ingress[0].hostname}"


def load_balancer_service(manifests: Path) -> dict[str, Any]:
    """The one Service of type LoadBalancer among the YAML documents in `manifests`."""
    found = [
        document
        for path in sorted(manifests.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if isinstance(document, dict)
        and document.get("kind") == "Service"
        and (document.get("spec") or {}).get("type") == "LoadBalancer"
    ]
    if len(found) != 1:
        raise ConfigError(
            f"{manifests}: expected one Service of type LoadBalancer (the app's entry point), "
            f"found {len(found)}; keep exactly one in k8s/base/"
        )
    return found[0]


def app_url_command(service: dict[str, Any]) -> str:
    """A kubectl command that prints `http://<load balancer>[:port]/` for `service` (empty host until the
    load balancer exists)."""
    port = service["spec"]["ports"][0]["port"]
    suffix = "" if port == 80 else f":{port}"
    template = f'http://{ADDRESS}{suffix}/{{"\\n"}}'
    return shlex.join(
        [
            "kubectl",
            "-n",
            service["metadata"]["namespace"],
            "get",
            "service",
            service["metadata"]["name"],
            "-o",
            f"jsonpath={template}",
        ]
    )
