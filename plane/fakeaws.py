"""The two AWS APIs `make preflight` calls that moto does not serve: EKS DescribeClusterVersions and Service
Quotas' GetServiceQuota / GetAWSDefaultServiceQuota, on 127.0.0.1. boto3 sends EKS and Service Quotas here
through AWS_ENDPOINT_URL_EKS and AWS_ENDPOINT_URL_SERVICE_QUOTAS while moto serves the rest
(AWS_ENDPOINT_URL). Shapes from botocore's service models (eks 2017-11-01: rest-json, GET /cluster-versions;
service-quotas 2019-06-24: json 1.1, target prefix ServiceQuotasV20190624): boto3 parses every answer
against them, so a wrong shape fails where it is used.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plane.httpserve import QuietHandler, read_body, send_json, serving

TARGET = "ServiceQuotasV20190624."
AMZ_JSON = "application/x-amz-json-1.1"


@dataclass
class FakeAWS:
    versions: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    """Kubernetes version -> (versionStatus, endOfStandardSupportDate)."""
    applied: dict[tuple[str, str], float] = field(default_factory=dict)
    """(service code, quota code) -> a value the account had raised (GetServiceQuota)."""
    defaults: dict[tuple[str, str], float] = field(default_factory=dict)
    """(service code, quota code) -> AWS's default (GetAWSDefaultServiceQuota)."""
    url: str = ""

    def cluster_versions(self, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted = set(query.get("clusterVersions", [])) or set(self.versions)
        return {
            "clusterVersions": [
                {"clusterVersion": v, "versionStatus": status, "endOfStandardSupportDate": end.timestamp()}
                for v, (status, end) in sorted(self.versions.items())
                if v in wanted
            ]
        }

    def quota(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = (body.get("ServiceCode", ""), body.get("QuotaCode", ""))
        table = self.applied if operation == "GetServiceQuota" else self.defaults
        if key not in table:
            return 400, {
                "__type": "NoSuchResourceException",
                "Message": f"The request failed because {key[1]} was not found.",
            }
        return 200, {"Quota": {"ServiceCode": key[0], "QuotaCode": key[1], "Value": table[key]}}


def _handler(aws: FakeAWS) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/cluster-versions":
                send_json(self, 404, {"message": "not served here"}, content_type="application/json")
                return
            versions = aws.cluster_versions(urllib.parse.parse_qs(url.query))
            send_json(self, 200, versions, content_type="application/json")

        def do_POST(self) -> None:
            body = json.loads(read_body(self) or b"{}")
            target = self.headers.get("X-Amz-Target", "")
            operation = target.removeprefix(TARGET)
            if not target.startswith(TARGET) or operation not in {
                "GetServiceQuota",
                "GetAWSDefaultServiceQuota",
            }:
                send_json(self, 400, {"__type": "UnknownOperationException"}, content_type=AMZ_JSON)
                return
            code, answer = aws.quota(operation, body)
            send_json(self, code, answer, content_type=AMZ_JSON)

    return Handler


@contextlib.contextmanager
def serve(aws: FakeAWS) -> Iterator[FakeAWS]:
    """Serve `aws` on a free loopback port until the block ends; `aws.url` is the endpoint URL."""
    with serving(_handler(aws), "fake-aws") as port:
        aws.url = f"http://127.0.0.1:{port}"
        yield aws


def standard_support_until(year: int, month: int, day: int) -> tuple[str, datetime]:
    return "STANDARD_SUPPORT", datetime(year, month, day, tzinfo=UTC)
