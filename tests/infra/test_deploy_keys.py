"""Deploy keys: three separate ED25519 keys, Flux and Jenkins' checkout read-only, Jenkins' release key
read/write; private keys kept secret."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from infra import deploy_keys
from tests.infra.conftest import GITHUB_HOOK_RANGES_V4, GITHUB_HOOK_RANGES_V6, GITHUB_HOST_KEYS, Program

TLS_KEY = "tls:index/privateKey:PrivateKey"
DEPLOY_KEY = "github:index/repositoryDeployKey:RepositoryDeployKey"


OPENPGP_KEY = "pulumi-python:dynamic/openpgp:Key"


def _component(program: Program) -> object:
    return program.one("gitops:infra:DeployKeys")


def _keys(program: Program) -> dict[str, tuple]:
    """role -> (tls key, github deploy key), matched by the public key the deploy key registers."""
    component = _component(program)
    tls_keys = [r for r in program.children(component) if r.type == TLS_KEY]
    github_keys = [r for r in program.children(component) if r.type == DEPLOY_KEY]
    pairs = {}
    for key in tls_keys:
        registered = [g for g in github_keys if g.inputs["key"] == key.outputs["publicKeyOpenssh"]]
        assert len(registered) == 1, f"{key.name} must be registered exactly once"
        pairs[key.name.rsplit("-", 1)[1]] = (key, registered[0])
    return pairs


def test_three_separate_ed25519_keys(dev_program: Program) -> None:
    pairs = _keys(dev_program)
    assert set(pairs) == {"flux", "jenkins", "checkout"}
    tls_keys = [pair[0] for pair in pairs.values()]
    assert len({k.urn for k in tls_keys}) == 3
    assert len({k.outputs["publicKeyOpenssh"] for k in tls_keys}) == 3
    assert {k.inputs["algorithm"] for k in tls_keys} == {"ED25519"}


def test_only_the_release_key_can_write(dev_program: Program) -> None:
    pairs = _keys(dev_program)
    assert pairs["flux"][1].inputs["readOnly"] is True
    # What every build checks out with, on the agents too: it cannot push (issue 10).
    assert pairs["checkout"][1].inputs["readOnly"] is True
    assert pairs["jenkins"][1].inputs["readOnly"] is False
    for _, registered in pairs.values():
        assert registered.inputs["repository"] == "hello-gitops"


def test_flux_secret_has_identity_public_key_and_pinned_known_hosts(dev_program: Program) -> None:
    flux_tls = _keys(dev_program)["flux"][0]
    secret = dev_program.one("kubernetes:core/v1:Secret", "gitops-sync-git-auth")
    assert secret.inputs["metadata"] == {"name": "git-auth", "namespace": "hello"}
    assert "stringData" in secret.secret_inputs, "the private key must reach the engine as a secret"
    data = secret.inputs["stringData"]
    assert set(data) == {"identity", "identity.pub", "known_hosts"}
    assert data["identity"] == flux_tls.outputs["privateKeyOpenssh"]
    assert data["identity.pub"] == flux_tls.outputs["publicKeyOpenssh"]
    assert data["known_hosts"].splitlines() == [f"github.com {key}" for key in GITHUB_HOST_KEYS]
    assert dev_program.invokes_of("github:index/getSshKeys:getSshKeys"), "host keys come from GitHub's API"


def test_jenkins_private_key_goes_to_secrets_manager_encrypted(dev_program: Program) -> None:
    jenkins_tls = _keys(dev_program)["jenkins"][0]
    version = dev_program.one("aws:secretsmanager/secretVersion:SecretVersion", "jenkins-deploy-key")
    assert "secretString" in version.secret_inputs
    assert version.inputs["secretString"] == jenkins_tls.outputs["privateKeyOpenssh"]
    secret = dev_program.one("aws:secretsmanager/secret:Secret", "jenkins-deploy-key")
    kms_key = dev_program.one("aws:kms/key:Key", "jenkins-secrets")
    assert secret.inputs["kmsKeyId"] == kms_key.outputs["arn"]


def test_the_signing_key_is_stored_once_as_the_release_agents_file_credential(dev_program: Program) -> None:
    """The bot's private key is stored like the write key: one Secrets Manager secret, the Jenkins
    credential `gitops-signing-key` (a secret file: SecretBinary, which the AWS Secrets Manager
    Credentials Provider reads for `file` credentials), and nowhere else."""
    (bot_key,) = [r for r in dev_program.children(_component(dev_program)) if r.type == OPENPGP_KEY]
    versions = [
        v
        for v in dev_program.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if "secretBinary" in v.inputs
        and base64.b64decode(v.inputs["secretBinary"]).decode() == bot_key.outputs["private_key"]
    ]
    assert [v.name for v in versions] == ["jenkins-signing-key"]
    assert "secretBinary" in versions[0].secret_inputs
    secret = dev_program.one("aws:secretsmanager/secret:Secret", "jenkins-signing-key")
    assert secret.inputs["name"].endswith("/jenkins/gitops-signing-key")


def test_private_keys_never_in_plain_text_outputs(dev_program: Program) -> None:
    # Compared in JSON form: the keys' newlines are escaped there too.
    private = [json.dumps(pair[0].outputs["privateKeyOpenssh"])[1:-1] for pair in _keys(dev_program).values()]
    plain_outputs = json.dumps(
        {k: v for k, v in dev_program.outputs.items() if k not in dev_program.secret_outputs}
    )
    assert not [key for key in private if key in plain_outputs]
    # Only the tls keys themselves, the flux Secret, the Secrets Manager version and the push that
    # switches signing on (the write key, a secret input there) may hold them.
    holders = {
        r.name: r
        for r in dev_program.resources
        if r.type != TLS_KEY and any(key in json.dumps(r.inputs) for key in private)
    }
    assert set(holders) == {
        "gitops-sync-git-auth", "jenkins-deploy-key", "jenkins-checkout-key", "trust-anchor-switch"
    }  # fmt: skip
    assert "deploy_key" in holders["trust-anchor-switch"].secret_inputs


def test_hook_ranges_split_by_family(dev_program: Program) -> None:
    ranges = deploy_keys.github_hook_ranges()
    assert ranges == deploy_keys.HookRanges(tuple(GITHUB_HOOK_RANGES_V4), tuple(GITHUB_HOOK_RANGES_V6))


@pytest.mark.parametrize(
    ("function", "invoke"),
    [("github_known_hosts", "get_ssh_keys"), ("github_hook_ranges", "get_ip_ranges")],
)
def test_empty_answers_from_github_are_refused(
    monkeypatch: pytest.MonkeyPatch, function: str, invoke: str
) -> None:
    # An empty list would mean no host key pinned (Flux/Jenkins would fail or fall back) or no webhook source.
    monkeypatch.setattr(deploy_keys.github, invoke, lambda: SimpleNamespace(keys=[], hooks=[]))
    with pytest.raises(ValueError, match="GitHub's API returned no"):
        getattr(deploy_keys, function)()
