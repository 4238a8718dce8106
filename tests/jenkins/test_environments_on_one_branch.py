"""Environments on one branch, released by one release side (dev's Jenkins): each overlay's history is
its own (a bot commit to dev's overlay says nothing about a person's change to prod's, and back), a
later environment takes releases only by gated promotion, and only a listed environment's overlay moves
a registry mark."""

from __future__ import annotations

from jenkins import manifest
from tests.jenkins.conftest import MANIFEST, Cli, GitopsRepo, git, run_cli
from tests.jenkins.test_promote_to import DEV, PROD, cli, github, release_to_dev, statuses, two_envs
from tests.jenkins.test_registry_ecr import deployed_digest, protected_repository, put_commit_image

__all__ = ["github", "protected_repository", "two_envs"]  # the fixtures, shared with their modules

PERSON = {
    "GIT_AUTHOR_NAME": "Dev Eloper",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev Eloper",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def hand_pin(repo: GitopsRepo, path: str, tag: str, digest: str) -> str:
    """A person (through a reviewed pull request, say) pins the overlay at path to tag@digest."""
    git(repo.dev, "pull", "--quiet", "--rebase", "origin", "main")
    file = repo.dev / path
    text = file.read_text()
    entry = manifest.read_image(text)
    file.write_text(text.replace(entry.new_tag, tag).replace(entry.digest, digest))
    git(repo.dev, "commit", "--quiet", "-am", f"pin {path} by hand", env=PERSON)
    git(repo.dev, "push", "--quiet", "origin", "HEAD:main")
    return git(repo.dev, "rev-parse", "HEAD").strip()


def assert_held(repo: GitopsRepo, done: Cli, person: str, path: str, tag: str) -> None:
    """The run kept the person's change as a hold naming their commit: the overlay still deploys tag."""
    assert done.json["outcome"] == "held", done.output
    assert person in done.json["reason"]
    assert manifest.read_image(git(repo.remote, "show", f"main:{path}")).new_tag == tag


def test_a_persons_change_of_prods_image_survives_a_later_dev_release(
    two_envs: GitopsRepo, github, push_test_image, image_repository: str
) -> None:
    """The hand-edit rule per environment (docs/environments.md: "the ancestry guard and the hand-edit
    rule read that overlay's history only"; docs/release.md: a person's change of the image since the
    bot's last commit becomes a hold). A person pins prod; then dev's Jenkins releases to dev (a bot
    commit that touches dev only): promote --to prod keeps the person's choice, as a hold."""
    to_prod = ("promote", "--to", "prod", "--image-repository", image_repository, "--json")
    _, _, applied = release_to_dev(two_envs, github, push_test_image, image_repository)
    statuses(github).post_status(applied, DEV, "success")
    assert cli(two_envs, github, *to_prod).returncode == 0
    v2, d2, _ = release_to_dev(two_envs, github, push_test_image, image_repository)
    person = hand_pin(two_envs, PROD, v2, d2)  # prod now runs v2, a person's choice
    _, _, applied3 = release_to_dev(two_envs, github, push_test_image, image_repository)
    statuses(github).post_status(applied3, DEV, "success")

    assert_held(two_envs, cli(two_envs, github, *to_prod), person, PROD, v2)


def test_a_persons_change_of_devs_image_survives_a_promotion_to_prod(
    two_envs: GitopsRepo, github, push_test_image, image_repository: str
) -> None:
    """The same in dev: a person pins dev, the release side promotes to prod (a bot commit touching
    prod only); the next release to dev holds instead of overwriting the person's pin."""
    v1, d1, _ = release_to_dev(two_envs, github, push_test_image, image_repository)
    release_to_dev(two_envs, github, push_test_image, image_repository)
    person = hand_pin(two_envs, MANIFEST, v1, d1)  # a person goes back to v1 in dev by hand
    statuses(github).post_status(two_envs.tip(), DEV, "success")
    assert (
        cli(two_envs, github, "promote", "--to", "prod", "--image-repository", image_repository).returncode
        == 0
    )
    v3 = two_envs.app_commit("v3")
    push_test_image(image_repository, v3)

    done = cli(two_envs, github, "promote", "--image-repository", image_repository, "--commit", v3, "--json")

    assert_held(two_envs, done, person, MANIFEST, v1)


def test_a_commit_dev_never_ran_does_not_reach_prod_without_the_flux_gate(
    two_envs: GitopsRepo, github, push_test_image, image_repository: str
) -> None:
    """docs/environments.md: "nothing releases to prod but promotion", gated on dev's Flux report.
    `promote --environment prod --commit X` (the job gitops-promote with COMMIT and ENVIRONMENT=prod)
    would deploy to prod an image dev never ran: refused (exit 2), naming the gated way and the
    rollback that pins a commit with a hold; nothing is pushed."""
    sha = two_envs.app_commit("never in dev")
    push_test_image(image_repository, sha)
    before = two_envs.tip()

    done = cli(two_envs, github, "promote", "--environment", "prod", "--image-repository", image_repository,
               "--commit", sha, "--json")  # fmt: skip

    assert done.returncode == 2, done.output
    assert "prod takes releases only by promotion: `promote --to prod`" in done.json["error"]
    assert "`rollback --environment prod --to <commit> --reason <why>`" in done.json["error"]
    assert two_envs.tip() == before


def test_control_without_a_dev_release_in_between_the_persons_prod_pin_is_held(
    two_envs: GitopsRepo, github, push_test_image, image_repository: str
) -> None:
    """The same pin with no bot commit to dev after it is held too."""
    to_prod = ("promote", "--to", "prod", "--image-repository", image_repository, "--json")
    _, _, applied = release_to_dev(two_envs, github, push_test_image, image_repository)
    statuses(github).post_status(applied, DEV, "success")
    assert cli(two_envs, github, *to_prod).returncode == 0
    v2, d2, _ = release_to_dev(two_envs, github, push_test_image, image_repository)
    release_to_dev(two_envs, github, push_test_image, image_repository)  # dev runs v3
    person = hand_pin(two_envs, PROD, v2, d2)
    statuses(github).post_status(two_envs.tip(), DEV, "success")

    done = cli(two_envs, github, *to_prod)

    assert done.json["outcome"] == "held", done.output
    assert person in done.json["reason"]


def test_a_manifest_dir_that_is_no_listed_environment_does_not_take_devs_mark(
    protected_repository: str, gitops_repo: GitopsRepo
) -> None:
    """An overlay directory not listed in k8s/environments.yaml (say a `qa` overlay being added) given as
    --manifest-dir would be marked as GITOPS_ENVIRONMENT's deploy, moving `deployed-dev` off what dev
    runs (which the lifecycle policy could then expire): refused (exit 2), and dev keeps its mark."""
    qa = gitops_repo.add_overlay("qa")  # listed nowhere: environments are [dev, prod]
    first, second = gitops_repo.app_commit("v1"), gitops_repo.app_commit("v2")
    digests = {sha: put_commit_image(protected_repository, sha) for sha in (first, second)}
    ws = gitops_repo.workspace(second)
    env = {"GITOPS_ENVIRONMENT": "dev"}
    assert (
        run_cli(
            ws, "promote", "--image-repository", protected_repository, "--commit", first, env=env
        ).returncode
        == 0
    )
    assert deployed_digest(protected_repository, "dev") == digests[first]

    refused = run_cli(ws, "promote", "--image-repository", protected_repository, "--commit", second,
                      "--manifest-dir", qa.rsplit("/", 1)[0], env=env)  # fmt: skip

    assert refused.returncode == 2
    assert "the overlay of no environment of k8s/environments.yaml (dev, prod)" in refused.output
    assert deployed_digest(protected_repository, "dev") == digests[first]
