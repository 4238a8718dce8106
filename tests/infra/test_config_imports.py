"""Stack configuration is parsed in one place: `infra.config` depends on no component that consumes it.

Components (infra/jenkins/, ...) import typed config objects from `infra.config`; the reverse edge would
put parsing back beside a consumer and make the two import each other.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _allowed(module: str) -> bool:
    """What `infra.config` may load from this project: itself (a module, or a package that grew out of
    it) and the error type it raises."""
    return (
        module in {"infra", "infra.errors"} or module == "infra.config" or module.startswith("infra.config.")
    )


def test_importing_infra_config_loads_nothing_from_infra_jenkins() -> None:
    # A fresh interpreter: in this one, other tests have already imported infra.jenkins.
    probe = (
        "import json, sys; import infra.config; "
        "print(json.dumps(sorted(m for m in sys.modules if m == 'infra' or m.startswith('infra.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    project_modules = json.loads(loaded)
    assert "infra.config" in project_modules
    assert [m for m in project_modules if not _allowed(m)] == []


def test_no_import_statement_in_infra_config_names_infra_jenkins() -> None:
    """Also the imports the probe above cannot see: those inside a function, run only when it is called."""
    package = ROOT / "infra" / "config"
    sources = sorted(package.rglob("*.py")) if package.is_dir() else [ROOT / "infra" / "config.py"]
    imported: list[str] = []
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.ImportFrom):
                imported.append(f"<relative import in {source.relative_to(ROOT)}>")
    assert "infra.errors" in imported
    assert [name for name in imported if name.startswith("infra.jenkins") or name.startswith("<")] == []


def test_infra_jenkins_takes_agents_config_from_infra_config() -> None:
    from infra import config
    from infra.jenkins import agents, clouds

    assert agents.AgentsConfig is config.AgentsConfig
    assert clouds.AgentsConfig is config.AgentsConfig
    assert not (ROOT / "infra" / "jenkins" / "agents_config.py").exists()
