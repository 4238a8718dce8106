"""`make demo`: the whole GitOps loop on this machine, no AWS.

A bare git repository plays GitHub, a local docker-registry plays ECR, and `kubectl kustomize` of the
branch tip shows what Flux would apply. The demo makes an app commit, runs `python -m jenkins release`
(the Jenkinsfile's plan, build and promote in one command), prints the image Flux would now deploy and
the commit it came from, then runs the release again to show that a rerun is a no-op that costs
seconds. Then it promotes that release to prod: refused while dev's Flux has reported nothing (a
stand-in for GitHub's commit-status API, plane/fakegithubapi.py), done once dev reports success, and
`python -m jenkins status` shows both environments. Last, `make preflight` runs against stand-ins for
AWS (moto) and GitHub (plane/preflightworld.py) and prints its table.

Set DEMO_REGISTRY=127.0.0.1:PORT to reuse a registry that is already running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make the repo importable

from plane.sandbox import (
    BASE_IMAGE,
    MANIFEST,
    ROOT,
    GitOpsRepo,
    ReviewedMerges,
    Run,
    build_arg_flags,
    hermetic_build_args,
    image_present,
    jenkins_cli,
    run_registry,
    wheelhouse,
)

CACHE = ROOT / ".cache"
# tool -> how to get it
TOOLS = {
    "git": "apt-get install git",
    "docker": "`sudo make services`",
    "docker-registry": "`sudo make services`",
    "kubectl": "any recent kubectl release (it bundles kustomize)",
}


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""


def say(text: str = "") -> None:
    print(text, flush=True)


def banner(text: str) -> None:
    say(f"\n== {text}")


def check_tools() -> None:
    missing = [f"{tool} ({how})" for tool, how in TOOLS.items() if not shutil.which(tool)]
    if missing:
        raise DemoError(f"missing tools: {'; '.join(missing)}")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        raise DemoError(
            "no Docker engine is reachable (`docker info` failed); `sudo make services` starts one"
        )


def release(
    repo: GitOpsRepo, repository: str, build_args: dict[str, str], env: dict[str, str] | None = None
) -> Run:
    """`env`: what the pipeline binds around the release (the cluster demo's GITOPS_SIGNING_KEY_FILE)."""
    args = ["--image-repository", repository, "--build-network", "host", *build_arg_flags(build_args)]
    say(f"$ python -m jenkins release {' '.join(args)} --json")
    run = jenkins_cli(repo.work, "release", args, echo=True, env=env)
    if run.returncode != 0 or run.outcome is None:
        raise DemoError(f"release failed (exit {run.returncode}); its console output is above")
    say(
        f"-> JSON outcome (last stdout line): outcome={run.outcome['outcome']} commit={run.outcome['commit']}"
    )
    return run


def expect(run: Run, outcome: str) -> Run:
    if run.outcome.get("outcome") != outcome:
        raise DemoError(f"expected outcome {outcome!r}, got {run.outcome}")
    return run


def show_what_flux_applies(repo: GitOpsRepo, scratch: Path) -> str:
    rendered = repo.rendered_at_tip(scratch / "flux-view")
    images = [line.strip(" -") for line in rendered.splitlines() if line.strip(" -").startswith("image:")]
    tip = repo.tip()
    message = subprocess.run(
        ["git", "log", "-1", "--format=%s%n%(trailers:only,unfold)", tip],
        cwd=repo.remote, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    say(f"Flux follows {repo.remote} branch main, now at {tip[:12]}:")
    for line in message.splitlines():
        say(f"    {line}")
    say(f"`kubectl kustomize {Path(MANIFEST).parent}` of that commit renders the Deployment with:")
    for line in images:
        say(f"    {line}")
    if not images:
        raise DemoError("the rendered manifests contain no image line")
    return images[0]


def demo(scratch: Path, registry: str, wheels_url: str | None) -> None:
    repository = f"{registry}/hello-gitops"
    build_args = hermetic_build_args(wheels_url) if wheels_url else {}

    banner("1. A GitOps repository (bare git remote playing GitHub), seeded with app/ and k8s/")
    repo = GitOpsRepo.seed(scratch)
    say(f"remote: {repo.remote}")

    banner("2. A developer pushes an app change")
    commit = repo.app_commit("Say hello from the demo")
    say(f"app commit {commit} pushed to main; Jenkins checks it out detached in {repo.work}")

    banner("3. Jenkins runs the release: build (layer cache), push, verify, pin the digest, commit back")
    first = expect(release(repo, repository, build_args), "changed")
    say(f"release took {first.seconds:.1f}s")

    banner("4. What Flux would apply now")
    image = show_what_flux_applies(repo, scratch)
    if commit not in image:
        raise DemoError(f"the deployed image {image} does not name the app commit {commit}")
    say(f"source commit: {commit} (the image tag), built and pushed to {repository}")

    banner("5. Jenkins retries the same commit: the image is already in the registry, nothing to do")
    repo.checkout(commit)
    again = expect(release(repo, repository, build_args), "noop")
    say(f"rerun took {again.seconds:.1f}s (first release: {first.seconds:.1f}s): no build, no commit")

    banner("6. The bot's own manifest commit triggers Jenkins too: release does nothing, so CI never loops")
    bot_commit = repo.checkout_tip()
    expect(release(repo, repository, build_args), "noop")
    say(f"release on bot commit {bot_commit[:12]}: noop")

    banner("7. Promote the release to prod, gated on what dev's Flux reported for it")
    promote_to_prod(repo, repository)

    banner("Done: app commit -> image in the registry -> manifest commit -> what Flux applies -> prod")


def promote_to_prod(repo: GitOpsRepo, repository: str) -> None:
    """`promote --to prod` as the release side runs it (dev's Jenkins: GITOPS_ENVIRONMENT=dev, the pulls
    token): first before dev's Flux reported the release, then after it reported success."""
    with ReviewedMerges.served() as github:
        github.name_remote(repo.work)
        env = {**github.env, "GITOPS_ENVIRONMENT": "dev"}
        applied = repo.tip()  # dev's release commit, the revision dev's Flux applies
        args = ["--to", "prod", "--image-repository", repository, "--json"]
        say(f"$ GITOPS_ENVIRONMENT=dev python -m jenkins promote {' '.join(args)}")
        refused = jenkins_cli(repo.work, "promote", args, echo=True, env=env)
        if refused.returncode != 1 or repo.tip() != applied:
            raise DemoError(f"promotion before dev's report should be refused, got exit {refused.returncode}")
        say("-> refused (exit 1), nothing written: dev's Flux has not reported this release yet")
        github.github.repositories[github.repository].post_status(applied, "gitops-eks/dev", "success")
        say(f"dev's Flux reports what it applied: commit status gitops-eks/dev = success on {applied[:12]}")
        say(f"$ GITOPS_ENVIRONMENT=dev python -m jenkins promote {' '.join(args)}")
        promoted = expect(jenkins_cli(repo.work, "promote", args, echo=True, env=env), "changed")
        outcome = promoted.outcome
        say(f"-> {outcome['image']} written to k8s/overlays/prod, commit {outcome['commit']}")
        say("$ python -m jenkins status")
        shown = jenkins_cli(repo.work, "status", [], env=env)
        if shown.returncode != 0:
            raise DemoError(f"status failed (exit {shown.returncode}): {shown.stderr}")
        say("\n".join(line for line in shown.stdout.splitlines() if not line.startswith("{")))


def preflight() -> None:
    """`make preflight` against moto and a fake GitHub: the table a user sees before `pulumi up`."""
    from moto.server import ThreadedMotoServer

    from plane.preflightworld import STACK, world

    banner("8. Before a real `pulumi up`: `make preflight` (AWS = moto, GitHub = a local fake)")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        with world(f"http://{host}:{port}") as w:
            # The world's stack exists only in its own directory: no Pulumi CLI may look for it elsewhere.
            path = os.pathsep.join(
                p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "pulumi").exists()
            )
            command = [
                "make",
                "--no-print-directory",
                "preflight",
                f"STACK={STACK}",
                f"PREFLIGHT_FLAGS=--root {w.root}",
            ]
            say(f"$ make preflight STACK={STACK}")
            env = {**os.environ, **w.environment(), "PATH": path}
            run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    finally:
        moto.stop()
    say(run.stdout.rstrip())
    say(run.stderr.rstrip())
    # make turns preflight's exit 1 (blockers) and 2 (unreadable stack) both into 2: the table tells them
    # apart.
    blockers = [line for line in run.stdout.splitlines() if line.startswith("✗")]
    if run.returncode != 0 and (not blockers or "blocker(s): fix each" not in run.stdout):
        raise DemoError(
            f"make preflight failed (exit {run.returncode}) without its table; its output is above"
        )
    names = ", ".join(line[3:].split("  ")[0] for line in blockers) or "none"
    say(f"-> blockers in this world: {names}")


def main() -> int:
    try:
        check_tools()
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitops-demo-")))
            banner("0. Local services (all on 127.0.0.1)")
            registry = os.environ.get("DEMO_REGISTRY")
            if registry:
                say(f"registry: reusing {registry} (DEMO_REGISTRY)")
            else:
                (scratch / "registry").mkdir()
                registry = stack.enter_context(run_registry(scratch / "registry"))
                say(f"registry: started docker-registry at {registry} (stopped when the demo ends)")
            wheels_url = None
            if image_present(BASE_IMAGE):
                wheels_url = stack.enter_context(wheelhouse(CACHE / "wheels"))
                say(f"base image: {BASE_IMAGE} (built offline by `make services`)")
                say(f"pip: only the wheels in .cache/wheels, served at {wheels_url} (PIP_NO_INDEX=1)")
            else:
                say(f"base image: {BASE_IMAGE} is missing, so the Dockerfile's default base image and pip's")
                say("default index are used: this needs internet access (`sudo make services` avoids it)")
            demo(scratch, registry, wheels_url)
        preflight()
    except (DemoError, subprocess.CalledProcessError, RuntimeError) as exc:
        say(f"\ndemo FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
