"""Release benchmark: the original shell step vs `python -m jenkins release`, side by side in one run.

Both release the same app commit against the same local registry (each into its own repository, so
neither finds the other's image) and the same bare git remote. Ours runs first on every commit, so it
never profits from layers the original just built; it only has the layer cache of earlier commits,
which is exactly what a Jenkins agent has. Scenarios, each repeated BENCH_REPEAT times (default 3):

1. after an app change (a new commit): target ours <= 0.5x the original;
2. rerun of the same commit (a retried build): target ours <= 0.1x;
3. 10 promotes of 10 different commits started at once: time until all finished (all exit 0, newest wins);
4. a single promote: p50 latency over 7 runs (SINGLE_PROMOTES);
5. the cost of signing: a promote with GITOPS_SIGNING_KEY_FILE (a fresh ed25519 key) against one
   without, alternating, SIGNING_ROUNDS pairs: median, spread (min-max) and the ratio of the medians.
   The signed promote also asks GitHub (plane/fakegithubapi.py on loopback, so GitHub's own latency
   is not in the number) whether the commit since its previous one is a reviewed merged pull request.

Results print as a table and are written to bench/results/release.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from plane.sandbox import (
    BASE_IMAGE,
    BRANCH,
    MANIFEST,
    ROOT,
    GitOpsRepo,
    ReviewedMerges,
    build_arg_flags,
    git,
    hermetic_build_args,
    image_present,
    jenkins_cli,
    jenkins_popen,
    run_registry,
    wheelhouse,
)

ORIGINAL = ROOT / "bench" / "original_release.sh"
RESULTS = ROOT / "bench" / "results" / "release.json"
CONCURRENT = 10
SINGLE_PROMOTES = 7
SIGNING_ROUNDS = 9
TARGETS = {"after an app change": 0.5, "rerun of the same commit": 0.1}


class BenchError(Exception):
    """A run under test failed; the benchmark measures only successful runs."""


class Bench:
    def __init__(self, scratch: Path, registry: str, wheels_url: str) -> None:
        self.scratch = scratch
        self.build_args = hermetic_build_args(wheels_url)
        self.ours_repository = f"{registry}/hello-gitops"
        self.original_repository = f"{registry}/original/hello-gitops"
        self.repo = GitOpsRepo.seed(scratch)
        self.original_work = self.clone("original-work")

    def clone(self, name: str) -> Path:
        path = self.scratch / name
        subprocess.run(["git", "clone", "--quiet", str(self.repo.remote), str(path)], check=True)
        git(path, "config", "user.name", "Jenkins (original step)")
        git(path, "config", "user.email", "jenkins@example.com")
        return path

    def ours(self, commit: str) -> float:
        self.repo.checkout(commit)
        args = ["--image-repository", self.ours_repository, "--build-network", "host"]
        args += build_arg_flags(self.build_args)
        run = jenkins_cli(self.repo.work, "release", args)
        if run.returncode != 0:
            raise BenchError(f"release of {commit} failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
        return run.seconds

    def original(self, commit: str) -> float:
        git(self.original_work, "fetch", "--quiet", "origin")
        git(self.original_work, "checkout", "--quiet", "--force", "--detach", commit)
        manifest = (self.original_work / MANIFEST).read_text()
        (self.original_work / f"{MANIFEST}.tmpl").write_text(template(manifest))
        env = {
            **os.environ,
            "REPOSITORY": self.original_repository,
            "MANIFEST": MANIFEST,
            "BUILD_ARGS": " ".join(f"{name}={value}" for name, value in self.build_args.items()),
        }
        started = time.monotonic()
        run = subprocess.run(
            ["bash", str(ORIGINAL)],
            cwd=self.original_work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        if run.returncode != 0:
            raise BenchError(
                f"original step on {commit} failed (exit {run.returncode}):\n{run.stderr[-2000:]}"
            )
        return seconds

    def image_for(self, commit: str, source: str) -> None:
        """Publish an already built image under COMMIT's tag (promote needs the image in the registry)."""
        target = f"{self.ours_repository}:{commit}"
        subprocess.run(["docker", "tag", f"{self.ours_repository}:{source}", target], check=True)
        subprocess.run(["docker", "push", "--quiet", target], check=True, capture_output=True)

    def promote(self, workspace: Path, commit: str) -> subprocess.Popen[str]:
        args = ["--image-repository", self.ours_repository, "--commit", commit]
        return jenkins_popen(workspace, "promote", args)


def template(manifest: str) -> str:
    """The original's sed template: the kustomization with placeholders for repository and tag."""
    text = re.sub(r"(?m)^(\s*newName:).*$", r"\1 IMAGE_REPOSITORY", manifest)
    text = re.sub(r"(?m)^(\s*newTag:).*$", r'\1 "IMAGE_TAG"', text)
    return re.sub(r"(?m)^\s*digest:.*\n", "", text)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def release_scenarios(bench: Bench, repeat: int) -> dict[str, dict[str, list[float]]]:
    # Warm-up (not timed): both push the base layers once and ours fills the dependency layer cache.
    warm = bench.repo.app_commit("Warm-up change")
    bench.ours(warm)
    bench.original(warm)
    samples: dict[str, dict[str, list[float]]] = {name: {"original": [], "ours": []} for name in TARGETS}
    for round_ in range(1, repeat + 1):
        commit = bench.repo.app_commit(f"Bench change {round_}")
        change, rerun = samples["after an app change"], samples["rerun of the same commit"]
        change["ours"].append(bench.ours(commit))
        change["original"].append(bench.original(commit))
        rerun["ours"].append(bench.ours(commit))
        rerun["original"].append(bench.original(commit))
        print(
            f"  round {round_}: app change: ours {change['ours'][-1]:.1f}s, original"
            f" {change['original'][-1]:.1f}s; rerun: ours {rerun['ours'][-1]:.1f}s, original"
            f" {rerun['original'][-1]:.1f}s",
            flush=True,
        )
    return samples


def promote_scenarios(bench: Bench, repeat: int) -> dict[str, list[float]]:
    built = bench.repo.deployed_tag()
    workspaces = [bench.clone(f"promote-{n}") for n in range(CONCURRENT)]
    together: list[float] = []
    for round_ in range(1, repeat + 1):
        commits = [bench.repo.app_commit(f"Concurrent change {round_}.{n}") for n in range(CONCURRENT)]
        for commit in commits:
            bench.image_for(commit, built)
        for workspace, commit in zip(workspaces, commits, strict=True):
            git(workspace, "fetch", "--quiet", "origin")
            git(workspace, "checkout", "--quiet", "--detach", commit)
        started = time.monotonic()
        procs = [bench.promote(w, c) for w, c in zip(workspaces, commits, strict=True)]
        outputs = [proc.communicate() for proc in procs]
        together.append(time.monotonic() - started)
        failed = [
            (p.returncode, err[-500:]) for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode
        ]
        if failed:
            raise BenchError(f"{len(failed)} of {CONCURRENT} concurrent promotes failed: {failed[0]}")
        deployed = bench.repo.deployed_tag()
        if deployed != commits[-1]:
            raise BenchError(
                f"after concurrent promotes the manifest names {deployed}, not the newest commit"
            )
        print(
            f"  round {round_}: {CONCURRENT} concurrent promotes finished in {together[-1]:.1f}s", flush=True
        )
    single: list[float] = []
    for _ in range(SINGLE_PROMOTES):
        commit = bench.repo.app_commit("Single promote")
        bench.image_for(commit, built)
        git(workspaces[0], "fetch", "--quiet", "origin")
        git(workspaces[0], "checkout", "--quiet", "--detach", commit)
        proc = bench.promote(workspaces[0], commit)
        single.append(timed(proc.communicate))
        if proc.returncode:
            raise BenchError(f"promote of {commit} failed (exit {proc.returncode})")
    return {"concurrent": together, "single": single}


def gpg(home: Path, *args: str) -> str:
    env = {**os.environ, "GNUPGHOME": str(home)}
    return subprocess.run(
        ["gpg", "--batch", "--no-tty", *args], env=env, capture_output=True, text=True, check=True
    ).stdout


def new_key(home: Path, name: str) -> str:
    """A fresh ed25519 signing key without passphrase in home; returns its fingerprint."""
    uid = f"{name} <{name}@example.com>"
    gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    listing = gpg(home, "--with-colons", "--list-keys", f"{name}@example.com")
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with values set, for the runs started meanwhile (jenkins_popen passes os.environ)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def signing_scenario(bench: Bench, scratch: Path, source: str) -> dict[str, list[float]]:
    """Promote latency with and without signing, alternating, each mode on a repository of its own (an
    unsigned bot commit on the signed line would rightly make the signed run refuse). The signed line
    starts with a commit the bot's key signed, and its developer commits are merged pull requests with
    an approval, as GitHub (the fake) answers, so each signed run also verifies the history since its
    previous commit: four GitHub requests (the commit's pull request, the branch's rules, the
    reviews, the reviewer's access)."""
    home = scratch / "gnupg"
    home.mkdir(mode=0o700, parents=True)
    bot = new_key(home, "gitops-bot")
    (scratch / "bot.asc").write_text(gpg(home, "--armor", "--export-secret-keys", bot))
    samples: dict[str, list[float]] = {"unsigned": [], "signed": []}
    with environment({"GNUPGHOME": str(home)}), ReviewedMerges.served("bench/gitops") as merges:
        signed_vars = {"GITOPS_SIGNING_KEY_FILE": str(scratch / "bot.asc"), **merges.env}
        repos = {mode: GitOpsRepo.seed(scratch / mode) for mode in samples}
        signed = repos["signed"].work
        git(signed, "commit", "--quiet", "--allow-empty", f"-S{bot}", "-m", "Switch signing on")
        git(signed, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
        merges.name_remote(signed)  # named as GitHub's repository, fetched from the local one
        for round_ in range(SIGNING_ROUNDS):
            modes = ["unsigned", "signed"] if round_ % 2 == 0 else ["signed", "unsigned"]
            for mode in modes:
                repo = repos[mode]
                commit = repo.app_commit(f"Signing bench {round_}", merges if mode == "signed" else None)
                bench.image_for(commit, source)
                with environment(signed_vars if mode == "signed" else {}):
                    proc = bench.promote(repo.work, commit)
                    samples[mode].append(timed(proc.communicate))
                if proc.returncode:
                    raise BenchError(f"{mode} promote of {commit} failed (exit {proc.returncode})")
        if git(repos["signed"].remote, "log", "-1", "--format=%G?", BRANCH) not in ("G", "U"):
            raise BenchError("the signed promote's commit is not signed")
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    return samples


def signing_table(signing: dict[str, list[float]]) -> dict[str, object]:
    """Print the side-by-side table; return it for the JSON results."""
    print(f"\nCost of signing: promote latency, {SIGNING_ROUNDS} alternating pairs\n")
    print("| promote | median | spread (min-max) |")
    print("|---|---:|---:|")
    for mode, samples in signing.items():
        print(f"| {mode} | {median(samples):.2f} s | {min(samples):.2f}-{max(samples):.2f} s |")
    ratio = median(signing["signed"]) / median(signing["unsigned"])
    print(f"signed / unsigned (medians): {ratio:.2f}x")
    return {"rounds": SIGNING_ROUNDS, "ratio_of_medians": ratio, "samples": signing}


def report(
    releases: dict[str, dict[str, list[float]]],
    promotes: dict[str, list[float]],
    signing: dict[str, list[float]],
    repeat: int,
) -> bool:
    rows = []
    ok = True
    print(f"\nRelease benchmark (medians of {repeat} runs, same registry and remote, one machine)\n")
    print("| scenario | original shell step | python -m jenkins release | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for name, target in TARGETS.items():
        original, ours = median(releases[name]["original"]), median(releases[name]["ours"])
        ratio = ours / original
        met = ratio <= target
        ok = ok and met
        rows.append(
            {"scenario": name, "original_s": original, "ours_s": ours, "ratio": ratio, "target": target}
        )
        verdict = "met" if met else "MISSED"
        print(f"| {name} | {original:.1f} s | {ours:.1f} s | {ratio:.2f}x | <= {target}x {verdict} |")
    concurrent, single = median(promotes["concurrent"]), median(promotes["single"])
    print(f"\n{CONCURRENT} concurrent promotes, all finished: {concurrent:.1f} s (median of {repeat})")
    print(f"single promote latency p50: {single:.2f} s ({len(promotes['single'])} runs)")
    signing_result = signing_table(signing)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "repeat": repeat,
                "releases": rows,
                "samples": releases,
                "concurrent_promotes": {
                    "count": CONCURRENT,
                    "median_s": concurrent,
                    "samples": promotes["concurrent"],
                },
                "single_promote": {"p50_s": single, "samples": promotes["single"]},
                "signing": signing_result,
            },
            indent=2,
        )
    )
    print(f"\nraw samples: {RESULTS.relative_to(ROOT)}")
    return ok


def main() -> None:
    """Run the release benchmark; exit 1 if a target ratio is missed or a run fails (`python -m bench`
    ignores return values, so failure is a SystemExit)."""
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    if not image_present(BASE_IMAGE):
        raise SystemExit(f"release benchmark needs the base image {BASE_IMAGE} (`sudo make services`)")
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitops-bench-")))
        (scratch / "registry").mkdir()
        registry = stack.enter_context(run_registry(scratch / "registry"))
        wheels_url = stack.enter_context(wheelhouse(ROOT / ".cache" / "wheels"))
        print(
            f"Release benchmark: registry {registry}, base image {BASE_IMAGE}, wheels {wheels_url}",
            flush=True,
        )
        bench = Bench(scratch, registry, wheels_url)
        try:
            releases = release_scenarios(bench, repeat)
            promotes = promote_scenarios(bench, repeat)
            signing = signing_scenario(bench, scratch / "signing", bench.repo.deployed_tag())
        except BenchError as exc:
            raise SystemExit(f"release benchmark FAILED: {exc}") from None
        if not report(releases, promotes, signing, repeat):
            raise SystemExit("release benchmark: a target ratio was missed (see the table)")


if __name__ == "__main__":
    main()
