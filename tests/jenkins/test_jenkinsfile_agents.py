"""Nothing in jenkins/Jenkinsfile can run on the controller: every stage runs on the agents' label,
and the controller offers no executor to take anything else."""

from __future__ import annotations

import re

import yaml

from infra.jenkins.clouds import AGENT_LABEL
from tests.conftest import ROOT

TEXT = (ROOT / "jenkins" / "Jenkinsfile").read_text()
CODE = "\n".join(line for line in TEXT.splitlines() if not line.strip().startswith("//"))
CASC = yaml.safe_load((ROOT / "jenkins" / "server" / "casc.yaml").read_text())
AGENT_ON_LABEL = re.compile(r"agent\s*\{\s*label\s+'(?P<label>[^']*)'\s*\}")


def agent_directives(code: str) -> list[str]:
    """Every `agent ...` directive, as written up to the end of its value."""
    return re.findall(r"\bagent\s+(?:\{[^}]*\}|\w+)", code)


def runs_only_on_agents(code: str, label: str) -> list[str]:
    """Why `code` could put work on a node without `label` (empty when it cannot)."""
    problems = []
    directives = agent_directives(code)
    top = re.search(r"pipeline\s*\{\s*(agent\s+(?:\{[^}]*\}|\w+))", code)
    if top is None:
        problems.append("the pipeline declares no top-level agent")
    for directive in directives:
        match = AGENT_ON_LABEL.fullmatch(directive)
        if directive == "agent none" and top is not None and directive == top.group(1):
            stages = re.findall(r"\bstage\(", code)
            if len(directives) - 1 < len(stages):
                problems.append("`agent none` with a stage that declares no agent of its own")
            continue
        if match is None or match["label"] != label:
            problems.append(f"{directive!r} can run on a node without the label {label!r}")
    # Scripted blocks choose their node themselves.
    for node in re.findall(r"\bnode\s*\(([^)]*)\)", code):
        if node.strip() != f"'{label}'":
            problems.append(f"node({node}) can run on a node without the label {label!r}")
    if re.search(r"\bnode\s*\{", code):
        problems.append(f"`node {{ }}` without a label can run on a node without the label {label!r}")
    return problems


def test_every_stage_runs_on_the_agents_label() -> None:
    assert runs_only_on_agents(CODE, AGENT_LABEL) == []


def test_the_check_fails_on_what_would_reach_the_controller() -> None:
    ok = f"pipeline {{\n    agent {{ label '{AGENT_LABEL}' }}\n    stages {{ stage('A') {{ }} }}\n}}"
    assert runs_only_on_agents(ok, AGENT_LABEL) == []
    assert runs_only_on_agents(ok.replace(f"{{ label '{AGENT_LABEL}' }}", "any"), AGENT_LABEL)
    assert runs_only_on_agents(ok.replace(AGENT_LABEL, "built-in"), AGENT_LABEL)
    stage_override = ok.replace("stage('A') { }", "stage('A') { agent any\n }")
    assert runs_only_on_agents(stage_override, AGENT_LABEL)
    none = ok.replace(f"{{ label '{AGENT_LABEL}' }}", "none")
    assert runs_only_on_agents(none, AGENT_LABEL)
    assert runs_only_on_agents(ok.replace("stage('A') { }", "stage('A') { node('master') { } }"), AGENT_LABEL)
    # `node { }` without a label takes any node in NORMAL mode, the built-in node's mode in casc.yaml.
    assert runs_only_on_agents(
        ok.replace("stage('A') { }", "stage('A') { script { node { } } }"), AGENT_LABEL
    )


def test_the_controller_has_no_executor() -> None:
    # The only way to keep every job off the built-in node, whatever label it asks for (Jenkins handbook,
    # "Controller Isolation": set the built-in node's executors to 0).
    assert CASC["jenkins"]["numExecutors"] == 0
