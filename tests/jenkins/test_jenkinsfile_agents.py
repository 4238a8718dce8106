"""Nothing in jenkins/Jenkinsfile can run on the controller, and each stage runs on its own pool: Build
on the build agents' label, Release on the release agents' label (infra/jenkins/pools.py). The
controller offers no executor to take anything else."""

from __future__ import annotations

import re

import yaml

from infra.jenkins.clouds import AGENT_LABEL, RELEASE_AGENT_LABEL
from tests.conftest import ROOT

TEXT = (ROOT / "jenkins" / "Jenkinsfile").read_text()
CODE = "\n".join(line for line in TEXT.splitlines() if not line.strip().startswith("//"))
CASC = yaml.safe_load((ROOT / "jenkins" / "server" / "casc.yaml").read_text())
AGENT_ON_LABEL = re.compile(r"agent\s*\{\s*label\s+'(?P<label>[^']*)'\s*\}")
EXPECTED = {"Build": AGENT_LABEL, "Release": RELEASE_AGENT_LABEL}


def stage_agents(code: str) -> dict[str, str | None]:
    """Each stage's name -> the label of its own `agent { label '...' }` (None when it has none)."""
    parts = re.split(r"\bstage\('([^']*)'\)", code)
    return {
        name: (match["label"] if (match := AGENT_ON_LABEL.search(body)) else None)
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def problems(code: str, expected: dict[str, str]) -> list[str]:
    """Why `code` could put a stage's work on a node other than its pool (empty when it cannot)."""
    found = []
    if not re.search(r"pipeline\s*\{\s*agent none\b", code):
        found.append("the top-level agent must be `none`: each stage names its own pool")
    directives = re.findall(r"\bagent\s+(?:\{[^}]*\}|\w+)", code)
    labelled = [d for d in directives if AGENT_ON_LABEL.fullmatch(d)]
    if len(directives) - 1 != len(labelled):
        found.append(f"an agent directive other than a label: {directives}")
    agents = stage_agents(code)
    if agents != expected:
        found.append(f"stages run on {agents}, expected {expected}")
    for node in re.findall(r"\bnode\s*\(([^)]*)\)", code):
        found.append(f"node({node}) chooses its own node")
    if re.search(r"\bnode\s*\{", code):
        found.append("`node { }` without a label can run on any node")
    return found


def test_each_stage_runs_on_its_pools_label() -> None:
    assert problems(CODE, EXPECTED) == []


def test_the_check_fails_on_what_would_reach_another_node() -> None:
    ok = (
        "pipeline {\n    agent none\n    stages {\n"
        f"        stage('Build') {{ agent {{ label '{AGENT_LABEL}' }} }}\n"
        f"        stage('Release') {{ agent {{ label '{RELEASE_AGENT_LABEL}' }} }}\n    }}\n}}"
    )
    assert problems(ok, EXPECTED) == []
    assert problems(ok.replace("agent none", f"agent {{ label '{AGENT_LABEL}' }}"), EXPECTED)
    swapped = ok.replace(RELEASE_AGENT_LABEL, "x").replace(AGENT_LABEL, RELEASE_AGENT_LABEL)
    assert problems(swapped.replace("'x'", f"'{AGENT_LABEL}'"), EXPECTED)  # the pools swapped
    assert problems(ok.replace(f"agent {{ label '{RELEASE_AGENT_LABEL}' }}", "agent any"), EXPECTED)
    assert problems(ok.replace(f"agent {{ label '{RELEASE_AGENT_LABEL}' }}", ""), EXPECTED)
    assert problems(
        ok.replace("} }\n        stage('Release')", "node('built-in') { } }\n stage('Release')"), EXPECTED
    )
    assert problems(
        ok.replace("} }\n        stage('Release')", "script { node { } } }\n stage('Release')"), EXPECTED
    )


def test_the_controller_has_no_executor() -> None:
    # The only way to keep every job off the built-in node, whatever label it asks for (Jenkins handbook,
    # "Controller Isolation": set the built-in node's executors to 0).
    assert CASC["jenkins"]["numExecutors"] == 0
