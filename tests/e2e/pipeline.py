"""jenkins/Jenkinsfile's stages run as a script: the steps are read from the real Jenkinsfile text (so a
change to it changes what runs here) and run in order, in bash, as Jenkins would run them.

Each agent is a machine of its own, as on EC2: its own mount and PID namespaces (`unshare`), its own
in-memory /tmp (where the bound key files and ssh-agent's socket live) and home, its own working copy,
cloned over SSH from a bare remote served by a real sshd on 127.0.0.1. The agents share nothing but the
stash directory. The build agent's namespace also hides the controller's credential store, and keeps
running after its stage (an instance is not gone the moment a stage ends), so a process the build left
behind is still alive while the release runs. The release agent's namespace has no docker and no make
(empty files mounted over them, as a release instance has neither installed).

What stands in for what:
- Jenkins' checkout (git plugin): `git clone` of the repository's github.com URL + detached checkout of
  origin/<branch>, with the read-only key bound only for that command. Each machine's git config sends
  that URL to the local sshd (url.<base>.insteadOf), so the checkout's remote is named as on GitHub.
- GitHub's REST API: plane/fakegithubapi.py (ReviewedMerges), its URL in GITOPS_GITHUB_API_URL; the
  `gitops-pulls-token` credential is the token it grants Pull requests: read.
- `sh '...'`: `/bin/sh -xe FILE` (durable-task's default for a script without a shebang).
- `sh(script: ..., returnStdout: true)`: the same, its stdout kept.
- `stash`/`unstash`: copying the included file through the stash directory (`dir(...)` around an
  unstash: into that directory).
- `withCredentials([file(...), string(...)])`: the secret file copied into the agent's /tmp and its
  path in the variable, a secret text's value in its variable, for the one step inside; `sshagent`:
  ssh-agent started (its socket in /tmp), the key added, the socket exported to the one step inside,
  the agent killed afterwards (ssh-agent plugin ExecRemoteAgent).
- The node properties casc.yaml sets (IMAGE_REPOSITORY, GITOPS_BRANCH, GITOPS_ENVIRONMENT,
  GITOPS_TRUST_ANCHOR) in every step's environment, and WORKSPACE_TMP (the workspace's `@tmp` sibling,
  workflow-durable-task-step ExecutorStepExecution) per machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plane.localservices import ROOT, free_port
from plane.sandbox import BRANCH, DEV, GitOpsRepo, ReviewedMerges, git
from tests.conftest import require


def groovy_code(path: Path) -> str:
    """A Jenkinsfile without its comment lines."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("//"))


CODE = groovy_code(ROOT / "jenkins" / "Jenkinsfile")
OPERATE_CODE = groovy_code(ROOT / "jenkins" / "operate.Jenkinsfile")
TOKEN = re.compile(
    r"""(?P<checkout>checkoutReadOnly\(\))
    |sh\(script:\s*'(?P<stdout>[^']*)',\s*returnStdout:\s*true\)
    |sh\s+'''(?P<sh3>.*?)'''
    |sh\s+'(?P<sh1>[^']*)'
    |stash\(name:\s*'(?P<stash>[^']*)',\s*includes:\s*'(?P<includes>[^']*)'\)
    |unstash\s+'(?P<unstash>[^']*)'
    |withCredentials\(\[(?P<credentials>[^\]]*)\]\)\s*\{
    |sshagent\(credentials:\s*\['(?P<agent_id>[^']*)'\]\)\s*\{
    |dir\('(?P<dir>[^']*)'\)\s*\{
    |(?P<open>\{)
    |(?P<close>\})
    |'[^'\n]*'""",
    re.DOTALL | re.VERBOSE,
)
# One binding in withCredentials([...]): file(...) or string(...), as `file:ID:VAR` / `string:ID:VAR`.
BINDING = re.compile(r"(file|string)\(credentialsId:\s*'([^']*)',\s*variable:\s*'([^']*)'\)")
# The repository's `make test` as this test stands it in: the project's venv for the steps after it,
# and a process that outlives the stage (what a `docker run -d` or a daemon in a test suite leaves).
MAKEFILE = (
    "test:\n"
    '\tln -sfn "$$PROJECT_VENV" .venv\n'
    '\tsetsid bash tests/lurker.sh "$$LURK_REPORT" "$$LURK_STOP" </dev/null >/dev/null 2>&1 &\n'
)
# Looks for an ssh-agent holding a key, the way a hostile leftover would: every socket under the places
# a socket can be (TMPDIR, /tmp, /run and the directory that holds every agent of this test) and every
# SSH_AUTH_SOCK in any process environment it can read; `ssh-add -l` on each; a push with what it found.
LURKER = r"""#!/bin/bash
report=$1 stop=$2 once=${3:-}
search=(/tmp /run /var/tmp "$LURK_SEARCH")
echo "own SSH_AUTH_SOCK=${SSH_AUTH_SOCK:-}" >> "$report"
n=0
while :; do
    n=$((n + 1))
    mapfile -t socks < <(
        find "${search[@]}" -maxdepth 6 -type s 2>/dev/null
        cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | sed -n 's/^SSH_AUTH_SOCK=//p'
    )
    usable=0
    for sock in "${socks[@]}"; do
        [ -n "$sock" ] || continue
        if SSH_AUTH_SOCK=$sock timeout 1 ssh-add -l >/dev/null 2>&1; then
            usable=$((usable + 1))
            echo "USABLE $sock" >> "$report"
        fi
    done
    echo "scan $n sockets=${#socks[@]} usable=$usable" >> "$report"
    if [ -n "$once" ] || [ -e "$stop" ] || [ "$n" -ge 1500 ]; then
        break
    fi
    sleep 0.2
done
"""
WAIT_FOR_LURKER = r"""
start=$(grep -c '^scan' "$LURK_REPORT" || true)
for _ in $(seq 300); do
    [ "$(grep -c '^scan' "$LURK_REPORT" || true)" -ge $((start + 2)) ] && break
    sleep 0.1
done
"""


@dataclass(frozen=True)
class Step:
    """One pipeline step; `bound` lists the credentials bound around it (`file:ID:VAR`, `sshagent:ID`)."""

    kind: str  # checkout | sh | stdout | stash | unstash
    text: str = ""
    bound: tuple[str, ...] = ()


def stage_text(name: str, code: str = CODE) -> str:
    match = re.search(rf"stage\('{re.escape(name)}'\)(.*?)(?=\n\s*stage\(|\Z)", code, flags=re.DOTALL)
    if match is None:
        raise AssertionError(f"the Jenkinsfile has no stage {name!r}")
    return match.group(1)


def groovy_value(literal: str) -> str:
    """A single-quoted Groovy string's value: backslash-newline is dropped, \\\\ and \\' unescaped."""
    return re.sub(r"\\(\n|\\|')", lambda m: "" if m[1] == "\n" else m[1], literal)


def steps_of(text: str) -> list[Step]:
    """The steps in text, in order, with the credential blocks around each."""
    steps: list[Step] = []
    depth = 0
    bindings: list[tuple[int, str]] = []
    for token in TOKEN.finditer(text):
        kind = token.lastgroup
        bound = tuple(binding for _, binding in bindings)
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            bindings = [(d, b) for d, b in bindings if d <= depth]
        elif kind == "credentials":
            depth += 1
            listed = BINDING.findall(token["credentials"])
            if not listed or BINDING.sub("", token["credentials"]).strip(" \n,"):
                raise AssertionError(
                    f"withCredentials holds a binding this harness cannot stand in for: {token[0]}"
                )
            bindings += [(depth, ":".join(binding)) for binding in listed]
        elif kind == "agent_id":
            depth += 1
            bindings.append((depth, f"sshagent:{token['agent_id']}"))
        elif kind == "dir":
            depth += 1
            bindings.append((depth, f"dir:{token['dir']}"))
        elif kind == "checkout":
            steps.append(Step("checkout", bound=bound))
        elif kind in ("sh3", "sh1"):
            steps.append(Step("sh", groovy_value(token[kind]), bound))
        elif kind == "stdout":
            steps.append(Step("stdout", groovy_value(token[kind]), bound))
        elif kind == "includes":
            steps.append(Step("stash", f"{token['stash']}:{token['includes']}", bound))
        elif kind == "unstash":
            steps.append(Step("unstash", token[kind], bound))
    return steps


def stage_steps(name: str, code: str = CODE) -> tuple[list[Step], list[Step]]:
    """(steps, post steps) of one stage, as the Jenkinsfile (code) lists them."""
    text = stage_text(name, code)
    body, _, post = text.partition("\n            post {")
    return steps_of(body), steps_of(post)


def environment_directive(code: str = CODE) -> dict[str, str]:
    """The pipeline's `environment { ... }` values, as Jenkins passes them (no Groovy interpolation)."""
    block = re.search(r"\n    environment \{(.*?)\n    \}", code, flags=re.DOTALL)
    assert block, "the Jenkinsfile has no pipeline-level environment block"
    return dict(re.findall(r"(\w+) = '([^']*)'", block.group(1)))


@dataclass(frozen=True)
class Credentials:
    """The controller's credential store: key and secret files, by credential ID."""

    files: Mapping[str, Path]
    release_only: Path
    """The directory of the credentials only the release machine may see (hidden from the build's)."""


@dataclass
class Machine:
    """One agent instance: a directory on disk holding its home, workspace and TMPDIR mount point."""

    root: Path
    name: str

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def workspace(self) -> Path:
        return self.dir / "workspace"

    @property
    def home(self) -> Path:
        return self.dir / "home"

    def prepare(self, known_hosts: str, git_config: str) -> None:
        for path in (self.workspace, self.home / ".ssh", self.dir / "steps"):
            path.mkdir(parents=True, exist_ok=True)
        (self.home / ".ssh" / "known_hosts").write_text(known_hosts)
        (self.home / ".gitconfig").write_text(git_config)


HOST_TMP = "/run/gitops-pipeline-host-tmp"
"""Where a machine's namespace keeps the host's /tmp while its own tmpfs covers /tmp."""


def host_tmp_rebinds(root: Path) -> list[str]:
    """Mount a private tmpfs on /tmp, then bind back the top-level /tmp entries that hold the project, its
    venv or the pipeline's root (when the checkout itself is under /tmp), at the same paths."""
    q = shlex.quote
    paths = {ROOT, Path(sys.prefix), Path(sys.prefix).resolve(), ROOT.resolve(), root, root.resolve()}
    tops = sorted({p.parts[2] for p in paths if len(p.parts) > 2 and p.parts[:2] == ("/", "tmp")})
    if not tops:
        return ["mount -t tmpfs -o mode=1777 tmpfs /tmp"]
    lines = [
        f"mkdir -p {HOST_TMP}",
        f"mount --bind /tmp {HOST_TMP}",
        "mount -t tmpfs -o mode=1777 tmpfs /tmp",
    ]
    for top in tops:
        lines += [
            f"mkdir -p {q('/tmp/' + top)}",
            f"mount --bind {q(HOST_TMP + '/' + top)} {q('/tmp/' + top)}",
        ]
    return lines


@dataclass
class Pipeline:
    """Everything the stages need: where the remote is, the credentials, the shared stash, the env.

    root, the credentials and every path in env must be outside /tmp: each machine has its own."""

    root: Path
    url: str
    """Where the sshd serves the repository."""
    named: str
    """The repository's github.com URL: what the job clones, sent to `url` by each machine's git."""
    known_hosts: str
    credentials: Credentials
    env: dict[str, str]
    stash: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stash = self.root / "stash"
        self.stash.mkdir(parents=True, exist_ok=True)

    @property
    def git_config(self) -> str:
        """Each machine's ~/.gitconfig: the github.com URL goes to the local sshd."""
        return f'[url "{self.url}"]\n\tinsteadOf = {self.named}\n'

    def script(self, machine: Machine, steps: list[Step], post: list[Step], *, hide: list[Path],
               mask: list[str], keep_alive: bool, lurker_probe: Path | None) -> str:  # fmt: skip
        """The bash script that runs a stage's steps on `machine`, inside its namespaces."""
        q = shlex.quote
        lines = [
            "set -uo pipefail",
            # A machine's own /tmp: the pipeline's directories are elsewhere (see Pipeline.root). A checkout
            # (and its venv) that itself lives under /tmp is bound back at the same path, nothing else.
            *host_tmp_rebinds(self.root),
            *(f"mount -t tmpfs tmpfs {q(str(path))}" for path in hide),
            *(f"mount --bind /dev/null {q(tool)}" for tool in mask),
            f"cd {q(str(machine.workspace))}",
            "status=0",
        ]
        body = [self._timed(machine, i, step, lurker_probe) for i, step in enumerate(steps)]
        lines.append("{ " + " && ".join(body) + "; } || status=$?")
        for index, step in enumerate(post, start=len(steps)):
            lines.append(f"{self._timed(machine, index, step, lurker_probe)} || true")
        lines.append(f"echo $status > {q(str(machine.dir / 'status'))}")
        if keep_alive:
            done, shutdown = machine.dir / "stage-done", machine.dir / "shutdown"
            lines.append(f"touch {q(str(done))}")
            lines.append(f"for _ in $(seq 3000); do [ -e {q(str(shutdown))} ] && break; sleep 0.1; done")
        lines.append('exit "$status"')
        return "\n".join(lines) + "\n"

    def _timed(self, machine: Machine, index: int, step: Step, lurker_probe: Path | None) -> str:
        """The step in a subshell that appends `NN kind milliseconds exit-code` to the machine's timings."""
        timings = shlex.quote(str(machine.dir / "timings"))
        return (
            f"( started=$(date +%s%N); ( {self._step(machine, index, step, lurker_probe)} ); rc=$?; "
            f'echo "{index:02d} {step.kind} $((($(date +%s%N) - started) / 1000000)) $rc" >> {timings}; '
            "exit $rc )"
        )

    def _step(self, machine: Machine, index: int, step: Step, lurker_probe: Path | None) -> str:
        q = shlex.quote
        file = machine.dir / "steps" / f"{index:02d}.sh"
        file.write_text(step.text)
        run = f"/bin/sh -xe {q(str(file))}"
        if step.kind == "checkout":
            key = self.credentials.files["gitops-checkout-key"]
            return (
                f'install -m 0600 {q(str(key))} "$TMPDIR/checkout-key" && '
                f'GIT_SSH_COMMAND="$GIT_SSH_COMMAND -i $TMPDIR/checkout-key -o IdentitiesOnly=yes" '
                f'git clone --quiet {q(self.named)} . && rm -f "$TMPDIR/checkout-key" && '
                f"git checkout --quiet --detach refs/remotes/origin/{BRANCH}"
            )
        if step.kind == "stash":
            name, includes = step.text.split(":", 1)
            return f"mkdir -p {q(str(self.stash / name))} && cp -- {q(includes)} {q(str(self.stash / name))}/"
        if step.kind == "unstash":
            target = next((b.split(":", 1)[1] for b in step.bound if b.startswith("dir:")), ".")
            return f"mkdir -p {q(target)} && cp -- {q(str(self.stash / step.text))}/* {q(target)}/"
        if step.kind == "stdout":
            return f"{run} > {q(str(machine.dir / f'{index:02d}.out'))}"
        assert step.kind == "sh", step
        exports = []
        setup, teardown = [], []
        for binding in step.bound:
            if binding.startswith("file:"):
                _, credential, variable = binding.split(":")
                source = self.credentials.files[credential]
                setup.append(f'install -m 0600 {q(str(source))} "$TMPDIR/{credential}"')
                exports.append(f'{variable}="$TMPDIR/{credential}"')
                teardown.append(f'rm -f "$TMPDIR/{credential}"')
            elif binding.startswith("string:"):
                _, credential, variable = binding.split(":")
                exports.append(f'{variable}="$(cat {q(str(self.credentials.files[credential]))})"')
            elif binding.startswith("sshagent:"):
                credential = binding.split(":", 1)[1]
                source = self.credentials.files[credential]
                setup += [
                    'eval "$(ssh-agent -s)" >/dev/null',
                    f'install -m 0600 {q(str(source))} "$TMPDIR/agent-key"',
                    'ssh-add -q "$TMPDIR/agent-key" 2>/dev/null && rm -f "$TMPDIR/agent-key"',
                ]
                if lurker_probe is not None:
                    # The key is loaded: the leftover process must scan at least twice from now on, and
                    # the same scan run here, on the release machine, must find the socket.
                    setup.append(WAIT_FOR_LURKER.strip().replace("\n", "; ").replace("do;", "do"))
                    setup.append(f'bash {q(str(lurker_probe))} "$LURK_REPORT.release" /nonexistent once')
                exports += ['SSH_AUTH_SOCK="$SSH_AUTH_SOCK"', 'SSH_AGENT_PID="$SSH_AGENT_PID"']
                teardown.insert(0, "ssh-agent -k >/dev/null")
        if not step.bound:
            # Outside a binding, no step sees an agent socket (Jenkins exports it only inside sshagent).
            return f"env -u SSH_AUTH_SOCK -u SSH_AGENT_PID {run}"
        inner = f"env {' '.join(exports)} {run}"
        return " && ".join([*setup, f"{{ {inner}; rc=$?; {'; '.join(teardown)}; exit $rc; }}"])

    def start(self, machine: Machine, script: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
        path = machine.dir / "agent.sh"
        path.write_text(script)
        return subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "bash", str(path)],
            env=dict(env),
            stdout=(machine.dir / "console.log").open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )

    def agent_env(self, machine: Machine) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(machine.home),
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "WORKSPACE_TMP": f"{machine.workspace}@tmp",
            **environment_directive(),
            **self.env,
        }


@dataclass
class Run:
    """What the two stages left: each machine's directory and exit status, the stash."""

    build: Machine
    release: Machine | None
    build_status: int
    release_status: int | None
    released: str | None  # what the Build stage's returnStdout step printed (GITOPS_RELEASE)

    def console(self, machine: Machine) -> str:
        return (machine.dir / "console.log").read_text(errors="replace")

    def timings(self, machine: Machine) -> list[tuple[str, str, int]]:
        """(step number, kind, milliseconds) of each step the machine ran."""
        lines = (machine.dir / "timings").read_text().split("\n")
        return [(n, kind, int(ms)) for n, kind, ms, _ in (line.split() for line in lines if line)]


def run_pipeline(
    pipeline: Pipeline,
    *,
    lurker: Path | None = None,
    tamper: Callable[[Path], None] | None = None,
    timeout: float = 600,
) -> Run:
    """Run Build on a fresh build machine; if its JSON says so (the `when` on GITOPS_RELEASE), Release
    on a fresh release machine, while the build machine (and whatever it left running) is still up.
    `tamper` may change the stash in between, as a compromised build machine could."""
    build = Machine(pipeline.root, "build-agent")
    release = Machine(pipeline.root, "release-agent")
    for machine in (build, release):
        machine.prepare(pipeline.known_hosts, pipeline.git_config)
    steps, post = stage_steps("Build")
    script = pipeline.script(
        build,
        steps,
        post,
        hide=[pipeline.credentials.release_only],
        mask=[],
        keep_alive=True,
        lurker_probe=None,
    )
    proc = pipeline.start(build, script, pipeline.agent_env(build))
    try:
        deadline = time.monotonic() + timeout
        while not (build.dir / "stage-done").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the build machine ended before its stage did:\n" + _tail(build))
            time.sleep(0.1)
        build_status = int((build.dir / "status").read_text())
        outputs = sorted(build.dir.glob("*.out"))
        released = outputs[-1].read_text().strip() if outputs else None
        # when { environment name: 'GITOPS_RELEASE', value: 'true' }: the value the script block set.
        if build_status != 0 or released != "true":
            return Run(build, None, build_status, None, released)
        if tamper is not None:
            tamper(pipeline.stash)
        steps, post = stage_steps("Release")
        masked = [tool for tool in (shutil.which("docker"), shutil.which("make")) if tool]
        script = pipeline.script(
            release, steps, post, hide=[], mask=masked, keep_alive=False, lurker_probe=lurker
        )
        release_proc = pipeline.start(release, script, pipeline.agent_env(release))
        release_status = release_proc.wait(timeout=timeout)
        return Run(build, release, build_status, release_status, released)
    finally:
        (build.dir / "shutdown").touch()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _tail(machine: Machine) -> str:
    log = machine.dir / "console.log"
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""


@dataclass(frozen=True)
class GitServer:
    port: int
    host_public_key: str

    def url(self, repository: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{repository}"

    @property
    def known_hosts(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_public_key}\n"


def keygen(path: Path) -> str:
    """A new ed25519 key pair at path; returns the public key line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True
    )
    return path.with_suffix(".pub").read_text().strip()


@contextmanager
def serve_git(
    repository: Path, checkout_public: str, deploy_public: str, workdir: Path
) -> Iterator[GitServer]:
    """A real sshd on 127.0.0.1 serving one repository as GitHub serves deploy keys: the checkout key
    may only fetch, the deploy key may fetch and push."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    host_public = keygen(workdir / "host_key")
    gates = {}
    for role, allowed in (
        ("checkout", ("git-upload-pack",)),
        ("deploy", ("git-upload-pack", "git-receive-pack")),
    ):
        cases = "|".join(f"\"{command} '{repository}'\"" for command in allowed)
        gate = workdir / f"gate-{role}.sh"
        gate.write_text(
            "#!/bin/sh\n"
            f'case "$SSH_ORIGINAL_COMMAND" in\n  {cases}) exec git-shell -c "$SSH_ORIGINAL_COMMAND" ;;\n'
            f'  *) echo "the {role} key may not run: $SSH_ORIGINAL_COMMAND" >&2; exit 1 ;;\nesac\n'
        )
        gate.chmod(0o755)
        gates[role] = gate
    (workdir / "authorized_keys").write_text(
        f'restrict,command="{gates["checkout"]}" {checkout_public}\n'
        f'restrict,command="{gates["deploy"]}" {deploy_public}\n'
    )
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {workdir / 'host_key'}\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}\nStrictModes no\nUsePAM no\nAllowUsers root\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "LogLevel ERROR\n"
    )
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["bash", "-c", f"</dev/tcp/127.0.0.1/{port}"], capture_output=True).returncode:
            assert proc.poll() is None and time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.05)
        public = host_public.split()
        yield GitServer(port, f"{public[0]} {public[1]}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def signing_key(path: Path, public: Path) -> None:
    """An ASCII-armored OpenPGP private key without passphrase (the `gitops-signing-key` secret file),
    and its public key (the `gitops-signing-public-key` secret file)."""
    home = path.parent / "gnupg"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(
            ["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key",
             "gitops-bot <gitops-bot@users.noreply.github.com>", "ed25519", "sign", "never"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        exported = subprocess.run(
            ["gpg", "--batch", "--armor", "--export-secret-keys"], env=env, check=True, capture_output=True
        )
        path.write_bytes(exported.stdout)
        exported = subprocess.run(
            ["gpg", "--batch", "--armor", "--export"], env=env, check=True, capture_output=True
        )
        public.write_bytes(exported.stdout)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def release_wheels(directory: Path) -> Path:
    """requirements-release.txt's wheels, for the release machine's pip (PIP_FIND_LINKS, PIP_NO_INDEX):
    the index's stand-in. pip still checks every file against its hash."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps",
         "--only-binary=:all:", "--platform", "any", "--implementation", "py", "--abi", "none",
         "--python-version", "3.11",
         "-d", str(directory), "-r", str(ROOT / "requirements-release.txt")],
        check=True, capture_output=True,
    )  # fmt: skip
    return directory


def python311_dir(directory: Path) -> Path:
    """A PATH entry with `python3.11`: the base interpreter of the running Python (3.11)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    link = directory / "python3.11"
    if not link.exists():
        link.symlink_to(target)
    return directory


SCRATCH_DOCKERFILE = "FROM scratch\nCOPY app.py /app.py\n"


def add_pipeline_files(repo: GitOpsRepo, merges: ReviewedMerges) -> str:
    """Commit and push what the pipeline runs from the repository: the release module, its hashed
    requirements, the Makefile (stand-in `make test`, see MAKEFILE) with the leftover process it starts,
    and a one-file scratch Dockerfile (no base image or package index is reachable from a build here;
    the build still reads only the commit's own tree), landed as a reviewed pull request (`merges`).
    Returns its merge commit."""
    work = repo.work
    repo.checkout_tip()
    shutil.copytree(ROOT / "jenkins", work / "jenkins", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    shutil.copy(ROOT / "requirements-release.txt", work / "requirements-release.txt")
    (work / "Makefile").write_text(MAKEFILE)
    (work / "tests").mkdir(exist_ok=True)
    (work / "tests" / "lurker.sh").write_text(LURKER)
    (work / "app" / "Dockerfile").write_text(SCRATCH_DOCKERFILE)
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "The pipeline's files and a scratch image", env=DEV)
    return merges.land(work)


def require_machines() -> None:
    """Separate machines need root (namespaces, mounts), unshare, sshd and gpg."""
    require(os.geteuid() == 0, "separate machines (unshare) and a real sshd need root")
    require(shutil.which("unshare") is not None, "unshare (util-linux) is not installed")
    require(Path("/usr/sbin/sshd").exists(), "openssh-server is not installed")
    require(shutil.which("gpg") is not None, "gpg is not installed")


@contextmanager
def machines_root() -> Iterator[Path]:
    """Where the machines, the stash and the controller's credentials live: outside /tmp, which each
    machine has to itself."""
    (ROOT / ".cache").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="pipeline-", dir=ROOT / ".cache"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def controller(
    remote: Path,
    machines: Path,
    repository: str,
    merges: ReviewedMerges,
    anchor: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    signing: Mapping[str, Path] | None = None,
) -> Iterator[tuple[Pipeline, dict[str, Path], Path]]:
    """Serve `remote` over SSH with a read-only and a write deploy key, as `merges`' repository on GitHub
    (whose API `merges` serves); yield the pipeline (agents under `machines`, pushing images to
    `repository`), the credential files and the leftover probe. The trust anchor is `anchor` (default:
    the branch's head now), the bot's key pair the one in `signing` (the credential files of an earlier
    run; a new pair by default)."""
    controller = machines / "controller"
    # The release's credentials in a directory of their own, which the build machine cannot see.
    files = {
        "gitops-checkout-key": controller / "checkout_key",
        "gitops-deploy-key": controller / "release" / "deploy_key",
        "gitops-signing-key": controller / "release" / "signing.asc",
        "gitops-signing-public-key": controller / "release" / "signing-public.asc",
        "gitops-pulls-token": controller / "release" / "pulls-token",
    }
    checkout_public, deploy_public = keygen(files["gitops-checkout-key"]), keygen(files["gitops-deploy-key"])
    if signing is None:
        signing_key(files["gitops-signing-key"], files["gitops-signing-public-key"])
    else:
        for credential in ("gitops-signing-key", "gitops-signing-public-key"):
            shutil.copy(signing[credential], files[credential])
    files["gitops-pulls-token"].write_text(merges.token)
    agents = machines / "agents"
    probe = machines / "lurker.sh"
    probe.write_text(LURKER)
    with serve_git(remote, checkout_public, deploy_public, machines / "sshd") as server:
        yield (
            Pipeline(
                root=agents,
                url=server.url(remote),
                named=merges.url,
                known_hosts=server.known_hosts,
                credentials=Credentials(files, controller / "release"),
                env={
                    # casc.yaml's node properties
                    "IMAGE_REPOSITORY": repository,
                    "GITOPS_BRANCH": BRANCH,
                    "GITOPS_ENVIRONMENT": "dev",  # the stack's environment (Pulumi.dev.yaml's stack)
                    # the branch's head when the stack was created (here: when the controller starts)
                    "GITOPS_TRUST_ANCHOR": anchor or git(remote, "rev-parse", f"refs/heads/{BRANCH}").strip(),
                    # GitHub's API root: the fake one (unset in production: api.github.com)
                    "GITOPS_GITHUB_API_URL": merges.github.url,
                    # what the machines have installed: python3.11, and the index's stand-in for pip
                    "PATH": f"{python311_dir(machines / 'bin')}:{os.environ['PATH']}",
                    "PIP_NO_INDEX": "1",
                    "PIP_FIND_LINKS": str(release_wheels(ROOT / ".cache" / "release-wheels")),
                    # the stand-in `make test`: the project's venv, and where the leftover reports
                    "PROJECT_VENV": sys.prefix,
                    "LURK_REPORT": str(agents / "lurker.report"),
                    "LURK_STOP": str(agents / "build-agent" / "shutdown"),
                    "LURK_SEARCH": str(machines),
                    **(extra_env or {}),
                },
            ),
            files,
            probe,
        )


def run_on_machines(
    remote: Path,
    machines: Path,
    repository: str,
    merges: ReviewedMerges,
    tamper: Callable[[Path], None] | None = None,
    **settings: Any,
) -> tuple[Run, dict[str, Path]]:
    """Run the pipeline on two machines under `machines` (see controller, which takes `settings`).
    Returns the run and the credential files."""
    with controller(remote, machines, repository, merges, **settings) as (pipeline, files, probe):
        return run_pipeline(pipeline, lurker=probe, tamper=tamper), files


def run_operator_job(
    pipeline: Pipeline, name: str, build_env: Mapping[str, str], timeout: float = 600
) -> tuple[Machine, int]:
    """One build of an operator job (jenkins/operate.Jenkinsfile, stage Operate) on a fresh release
    machine named `name`. build_env is what Jenkins adds to that build's environment: JOB_BASE_NAME, the
    parameters, and GITOPS_STARTED_BY (which the Jenkinsfile's script block sets from getBuildCauses;
    this harness runs shell steps only, so it is given here as Jenkins would set it)."""
    machine = Machine(pipeline.root, name)
    machine.prepare(pipeline.known_hosts, pipeline.git_config)
    steps, post = stage_steps("Operate", OPERATE_CODE)
    masked = [tool for tool in (shutil.which("docker"), shutil.which("make")) if tool]
    script = pipeline.script(machine, steps, post, hide=[], mask=masked, keep_alive=False, lurker_probe=None)
    env = {**pipeline.agent_env(machine), **environment_directive(OPERATE_CODE), **build_env}
    return machine, pipeline.start(machine, script, env).wait(timeout=timeout)
