"""No secret reaches plain text: not the stack's plain outputs, not any resource input the engine stores
unencrypted in state (user data included), searched in decoded form so multi-line keys are found."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

import pytest
import yaml

from tests.infra.conftest import DELETE, Program, run_program
from tests.infra.leaks import body_lines, leaks

TLS_KEY = "tls:index/privateKey:PrivateKey"
OPENPGP_KEY = "pulumi-python:dynamic/openpgp:Key"
PASSWORD = "random:index/randomPassword:RandomPassword"
STATUS_TOKEN = "github_pat_11ABCDEFG0statusOnlyT0kenValue"
PULLS_TOKEN = "github_pat_11ABCDEFG0pullsReadOnlyT0kenVal"


def armoured(label: str, name: str, width: int) -> str:
    """A multi-line private key: armour around base64 lines of `width` characters."""
    body = base64.b64encode(b"".join(hashlib.sha512(f"{name}{i}".encode()).digest() for i in range(6)))
    lines = [body[i : i + width].decode() for i in range(0, len(body), width)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def openssh_key(name: str) -> str:
    """A private key as tls.PrivateKey returns it: PEM armour around 70-character base64 lines."""
    return armoured("OPENSSH PRIVATE KEY", name, 70)


def multi_line_keys(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"privateKeyOpenssh": openssh_key(name), "privateKeyPem": openssh_key(name + "-pem")}


def openpgp_key(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The bot's key as infra/openpgp.py returns it: OpenPGP armour (RFC 4880 section 6.2) around
    64-character lines, with `Comment:` headers that the public key carries too (so not searched for)."""
    return {"private_key": armoured("PGP PRIVATE KEY BLOCK", name, 64)}


KEY = openssh_key("example")


# --- the search itself --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "container",
    [
        json.dumps({"identity": KEY}),
        yaml.safe_dump({"identity": KEY}, width=40),
        yaml.safe_dump({"write_files": [{"content": KEY}]}, default_style='"'),
        "#cloud-config\n" + yaml.safe_dump({"write_files": [{"content": KEY}]}),
        base64.b64encode(gzip.compress(KEY.encode())).decode(),
        json.dumps({"userData": base64.b64encode(KEY.encode()).decode()}),
        "export KEY='" + body_lines(KEY)[2] + "'",
    ],
    ids=[
        "json-escaped",
        "yaml-folded",
        "yaml-double-quoted",
        "cloud-config",
        "gzip+base64",
        "base64-in-json",
        "one-line",
    ],
)
def test_a_multi_line_key_is_found_however_it_is_encoded(container: str) -> None:
    assert leaks(KEY, container)


def test_the_plain_substring_check_misses_escaped_keys() -> None:
    """Why the older tests could not fail: `key in text` is False for the same key JSON-escaped."""
    escaped = json.dumps({"identity": KEY})
    assert KEY.strip() not in escaped
    assert leaks(KEY, escaped)


def test_clean_text_is_not_a_leak() -> None:
    assert not leaks(KEY, json.dumps({"identity.pub": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIexample"}))
    assert not leaks(KEY, "-----BEGIN OPENSSH PRIVATE KEY-----")


# --- the program --------------------------------------------------------------------------------------


def secrets_of(program: Program) -> list[str]:
    values = [r.outputs[k] for r in program.of_type(TLS_KEY) for k in ("privateKeyOpenssh", "privateKeyPem")]
    values += [r.outputs["result"] for r in program.of_type(PASSWORD)]
    values += [r.outputs["private_key"] for r in program.of_type(OPENPGP_KEY)]
    return values


def plain_state(program: Program) -> dict[str, Any]:
    """What the engine keeps unencrypted: each resource's inputs that are not secret, and plain outputs."""
    inputs = {
        r.urn: {k: v for k, v in r.inputs.items() if k not in r.secret_inputs}
        for r in program.resources
        # The key pairs' own outputs: secret outputs of the tls provider, an additional secret output of
        # the OpenPGP key (test_the_openpgp_private_key_is_a_secret_output).
        if r.type not in (TLS_KEY, OPENPGP_KEY)
    }
    outputs = {k: v for k, v in program.outputs.items() if k not in program.secret_outputs}
    return {"inputs": inputs, "outputs": outputs}


@pytest.fixture(scope="module")
def program() -> Program:
    return run_program(
        {"commitStatusToken": STATUS_TOKEN, "pullsToken": PULLS_TOKEN},
        secrets=["commitStatusToken", "pullsToken"],
        extra_outputs={TLS_KEY: multi_line_keys, OPENPGP_KEY: openpgp_key},
    )


def test_the_mocks_give_multi_line_secrets_to_look_for(program: Program) -> None:
    keys = [r.outputs["privateKeyOpenssh"] for r in program.of_type(TLS_KEY)]
    assert len(keys) >= 2 and all(len(body_lines(k)) >= 4 for k in keys)


def test_no_secret_in_plain_state_or_outputs(program: Program) -> None:
    state = plain_state(program)
    leaked = [s[:40] for s in [*secrets_of(program), STATUS_TOKEN, PULLS_TOKEN] if leaks(s, state)]
    assert leaked == []


def test_the_secrets_do_reach_where_they_belong_as_secrets(program: Program) -> None:
    """The search is not vacuous: each secret is found in some resource's secret inputs."""
    secret_inputs = [{k: r.inputs[k] for k in r.secret_inputs} for r in program.resources]
    used = [r.outputs["privateKeyOpenssh"] for r in program.of_type(TLS_KEY)]  # the PEM form is unused
    used += [r.outputs["private_key"] for r in program.of_type(OPENPGP_KEY)]
    passwords = [r.outputs["result"] for r in program.of_type(PASSWORD)]
    for secret in [*used, *passwords, STATUS_TOKEN, PULLS_TOKEN]:
        if any(leaks(secret, inputs) for inputs in secret_inputs):
            continue
        # A password that only a resource's own outputs hold (none expected) would show up here.
        pytest.fail(f"{secret[:20]}... reaches no resource as a secret input")


def test_the_openpgp_private_key_is_a_secret_output(program: Program) -> None:
    """The engine encrypts in state only the outputs a registration names secret; a dynamic provider's
    outputs are plain unless listed in additionalSecretOutputs (pulumi ResourceOptions)."""
    (key,) = program.of_type(OPENPGP_KEY)
    assert key.options["additionalSecretOutputs"] == ["private_key"]
    assert not {"fingerprint", "public_key", "user_id"} & set(key.secret_inputs)
    assert "__provider" in key.secret_inputs  # the SDK's default: the pickled provider is a secret


BYO_KUBECONFIG = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "clusters": [{"name": "k", "cluster": {"server": "https://k8s.example.internal"}}],
        "contexts": [{"name": "k", "context": {"cluster": "k", "user": "k"}}],
        "users": [{"name": "k", "user": {"client-key-data": base64.b64encode(KEY.encode()).decode()}}],
    }
)


def test_a_byo_kubeconfig_stays_out_of_plain_state() -> None:
    program = run_program({"cluster": DELETE, "kubeconfig": BYO_KUBECONFIG}, secrets=["kubeconfig"])
    state = plain_state(program)
    assert not leaks(KEY, state)
    assert not leaks(BYO_KUBECONFIG, state)
    assert leaks(KEY, program.one("pulumi:providers:kubernetes").inputs["kubeconfig"])


def test_a_later_environment_s_stack_keeps_every_secret_out_of_plain_state(program: Program) -> None:
    """prod (releaseFrom), its StackReference answered by this dev program's outputs: neither its own
    Flux key and status token nor anything of dev's (its keys, its tokens) reaches prod's plain state
    or outputs; dev's secret outputs stay secret through the reference."""
    from tests.infra.test_config_prod import run_prod

    prod = run_prod(
        program,
        {"commitStatusToken": STATUS_TOKEN},
        secrets=["commitStatusToken"],
        extra_outputs={TLS_KEY: multi_line_keys, OPENPGP_KEY: openpgp_key},
    )
    state = plain_state(prod)
    everything = [*secrets_of(prod), *secrets_of(program), STATUS_TOKEN, PULLS_TOKEN]
    assert secrets_of(prod), "prod's own Flux key is searched for too"
    assert [s[:40] for s in everything if leaks(s, state)] == []
    assert {"kubeconfig", "fluxWebhookUrl"} <= prod.secret_outputs
