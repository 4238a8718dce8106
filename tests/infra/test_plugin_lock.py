"""The Jenkins plugin lock (jenkins/server/plugins.json) is complete and consistent by construction.

The data under test was copied from each plugin's own pom.xml at its release tag (jenkinsci/<plugin>
repositories: `jenkins.version` = the core it requires, and every plugin dependency with the version its
imported jenkinsci/bom manages, which is what maven-hpi-plugin writes to MANIFEST.MF as
Plugin-Dependencies). The core is the Jenkins LTS the boot installs (jenkinsci/jenkins tag). Sources
and dates: docs/verified-identifiers.md.
"""

from __future__ import annotations

import re
from itertools import zip_longest

import pytest

from infra.jenkins.boot import JENKINS_VERSION, PLUGIN_LOCK, SERVER_DIR, plugins_txt

PLUGINS: dict[str, dict] = PLUGIN_LOCK["plugins"]
CORE = PLUGIN_LOCK["core"]["version"]
# JCasC and its job, plus the steps jenkins/Jenkinsfile uses (sshagent, lock, withCredentials).
REQUIRED = {
    "configuration-as-code",
    "job-dsl",
    "workflow-aggregator",
    "git",
    "github",
    "credentials",
    "credentials-binding",
    "ssh-agent",
    "lockable-resources",
}


def version_key(version: str) -> tuple:
    """Jenkins' ordering (hudson.util.VersionNumber) for the forms in the lock: numeric components compare
    as numbers, `1502.v5c95e620ddfe` and `3.20.0-109.ve43756e2d2b_4` by their leading numbers first."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.-]", version))


def at_least(version: str, minimum: str) -> bool:
    for mine, theirs in zip_longest(version_key(version), version_key(minimum), fillvalue=(0, 0, "")):
        if mine != theirs:
            return mine > theirs
    return True


def test_version_order_follows_jenkins() -> None:
    assert at_least("1502.v5c95e620ddfe", "1480.v2246fd131e83")
    assert not at_least("5.8.0", "5.10.1") and at_least("5.10.1", "5.8.1")
    assert at_least("3.20.0-109.ve43756e2d2b_4", "3.18.0-98.v3a_674c06072d")
    assert at_least("2.568.2", "2.541.3") and not at_least("2.541.3", "2.568.1")


def test_core_is_an_lts_release_and_the_boot_installs_it() -> None:
    assert re.fullmatch(r"2\.\d{3}\.\d", CORE), "an LTS version is X.Y.Z"
    assert JENKINS_VERSION == CORE
    boot = (SERVER_DIR / "boot.sh").read_text()
    assert '"jenkins-${JENKINS_VERSION}"' in boot and '--jenkins-version "$JENKINS_VERSION"' in boot


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_every_plugin_runs_on_the_pinned_core(name: str) -> None:
    assert at_least(CORE, PLUGINS[name]["requiredCore"]), (
        f"{name} needs Jenkins {PLUGINS[name]['requiredCore']}"
    )


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_every_pinned_version_is_a_release_tag_of_the_plugins_own_repository(name: str) -> None:
    """The two versions that did not exist (configuration-as-code 1998.v3e50e6e9d3d1, lockable-resources
    1385.v089dd83a_b_a_11) came from typing; each version now names the tag it was read from."""
    plugin = PLUGINS[name]
    tag = re.search(r" tag (\S+) ", plugin["source"])
    assert tag is not None, plugin["source"]
    assert tag[1] in (plugin["version"], f"v{plugin['version']}", f"{name}-{plugin['version']}")


def test_every_dependency_that_is_pinned_satisfies_every_plugin_that_needs_it() -> None:
    """Jenkins refuses to load a plugin whose dependency (optional ones included, when installed) is
    older than its manifest requires; the manager would fail the install first."""
    too_old = [
        f"{name} needs {dep['plugin']} >= {dep['min']}, the lock pins {PLUGINS[dep['plugin']]['version']}"
        for name, plugin in PLUGINS.items()
        for dep in plugin["dependencies"]
        if dep["plugin"] in PLUGINS and not at_least(PLUGINS[dep["plugin"]]["version"], dep["min"])
    ]
    assert too_old == []


def resolved_dependencies() -> dict[str, str]:
    """What `--latest false` installs for a dependency the lock does not pin: the highest minimum any
    pinned plugin declares (jenkinsci/plugin-installation-manager-tool README, "--latest")."""
    chosen: dict[str, str] = {}
    for plugin in PLUGINS.values():
        for dep in plugin["dependencies"]:
            if dep["plugin"] in PLUGINS or dep["optional"]:
                continue
            if dep["plugin"] not in chosen or not at_least(chosen[dep["plugin"]], dep["min"]):
                chosen[dep["plugin"]] = dep["min"]
    return chosen


def test_the_lock_is_complete_every_direct_dependency_is_pinned_or_resolved_without_latest() -> None:
    boot = (SERVER_DIR / "boot.sh").read_text()
    assert "--latest false" in boot, "without it the manager takes every unpinned dependency at its latest"
    resolved = resolved_dependencies()
    for plugin in PLUGINS.values():
        for dep in plugin["dependencies"]:
            if not dep["optional"]:
                assert dep["plugin"] in PLUGINS or dep["plugin"] in resolved
    # Every pin is a concrete version: nothing in plugins.txt asks for "latest" or "experimental".
    pins = [line for line in plugins_txt().splitlines() if not line.startswith("#")]
    assert sorted(line.split(":")[0] for line in pins) == sorted(PLUGINS)
    assert all(line.split(":")[1] == PLUGINS[line.split(":")[0]]["version"] for line in pins)
    assert set(PLUGINS) >= REQUIRED


def test_a_pin_below_what_another_plugin_requires_is_caught() -> None:
    """The check above can fail: github 1.47.0 requires git >= 5.8.1; the old pin 5.8.0 would not do."""
    (git,) = [d for d in PLUGINS["github"]["dependencies"] if d["plugin"] == "git"]
    assert git["min"] == "5.8.1"
    assert not at_least("5.8.0", git["min"])


def test_the_manager_keeps_checking_each_plugin_against_the_update_centers_digest() -> None:
    """plugin-installation-manager-tool 2.15.0: `PluginManager.verifyChecksum` compares each download
    with the SHA-256 the update center publishes for that version (`plugin-versions.json`), the hash
    function coming from `JENKINS_UC_HASH_FUNCTION` (default SHA256, `CliOptions.getHashFunction`); a
    mismatch fails the plugin, and `--skip-failed-plugins` would turn that into a skipped plugin."""
    boot = (SERVER_DIR / "boot.sh").read_text()
    assert "--skip-failed-plugins" not in boot
    # Nothing the boot reads sets another hash function: the script, the unit, the env file's renderer.
    renderer = (SERVER_DIR.parents[1] / "infra" / "jenkins" / "boot.py").read_text()
    for text in (boot, (SERVER_DIR / "jenkins.service.conf").read_text(), renderer):
        assert "JENKINS_UC_HASH_FUNCTION" not in text
