"""Three GitHub deploy keys, never shared: Flux reads the repository; Jenkins checks it out with a
read-only key (on its build agents too) and writes with its own key only in the release step. Beside
them, the bot's OpenPGP signing key (infra/openpgp.py): Flux deploys only commits it signed.

Also the one shape of GitHub webhook the stack registers (Jenkins' and Flux's), and the two facts about
GitHub the stack trusts, fetched from GitHub's API at deploy time (over TLS, with
the provider's token) instead of trusting whatever answers on first use: its SSH host keys and the source
ranges its webhooks come from.

Rotation: replace a key resource (`pulumi up --replace <urn of the tls PrivateKey>`, see
docs/operations-infra.md); the GitHub deploy key and the stored copies follow in the same update.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_github as github
import pulumi_tls as tls

from infra.openpgp import BOT_USER_ID, OpenPgpKey


@dataclass(frozen=True)
class HookRanges:
    """GitHub's webhook source CIDRs, split by IP family (Kubernetes LBs and SG rules want them apart)."""

    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def github_known_hosts() -> str:
    """known_hosts lines (`github.com <type> <key>`) for GitHub's published SSH host keys."""
    keys = github.get_ssh_keys().keys
    if not keys:
        raise ValueError(
            "GitHub's API returned no SSH host keys; refusing to fall back to trust-on-first-use"
        )
    return "".join(f"github.com {key}\n" for key in keys)


def _by_family(cidrs: list[str], what: str) -> HookRanges:
    if not cidrs:
        raise ValueError(f"GitHub's API returned no {what} ranges")
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    return HookRanges(
        ipv4=tuple(str(n) for n in networks if n.version == 4),
        ipv6=tuple(str(n) for n in networks if n.version == 6),
    )


def github_hook_ranges() -> HookRanges:
    """The CIDRs GitHub's webhook deliveries come from (`hooks` in GitHub's meta API)."""
    return _by_family(github.get_ip_ranges().hooks, "webhook source")


def github_git_ranges() -> HookRanges:
    """The CIDRs GitHub serves git from (`git` in GitHub's meta API): where build agents may SSH to."""
    return _by_family(github.get_ip_ranges().gits, "git")


def signed_push_webhook(
    name: str,
    repository_name: str,
    url: pulumi.Input[str],
    secret: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> github.RepositoryWebhook:
    """A webhook for push events, JSON payloads, HMAC-signed with secret, TLS verified when https."""
    return github.RepositoryWebhook(
        name,
        repository=repository_name,
        events=["push"],
        active=True,
        configuration={
            "url": url,
            "content_type": "json",
            "secret": pulumi.Output.secret(secret),
            "insecure_ssl": False,
        },
        opts=opts,
    )


@dataclass(frozen=True)
class DeployKeysArgs:
    repository_name: str
    """The repository's name (without owner; the owner is the `github:owner` provider setting)."""
    releases: bool = True
    """False in the stack of a later environment: only Flux's read key; the release side's stack holds
    the Jenkins keys and the bot's signing key."""


class DeployKeys(pulumi.ComponentResource):
    """ED25519 key pairs registered as deploy keys: `flux` and `checkout` read-only, `jenkins` read/write;
    in a later environment's stack (`releases` False) `flux` only.

    Private keys exist only as Pulumi secrets (`flux_private_key`, `jenkins_private_key`,
    `checkout_private_key`); consumers put them where they are needed (a flux-system Secret, AWS Secrets
    Manager). `checkout` is what every Jenkins build fetches with, so a build agent holds the write key only
    for the release step.

    The bot's OpenPGP key is stored like the write key: the private half (ASCII-armored,
    `signing_private_key`) becomes Jenkins' credential `gitops-signing-key` in Secrets Manager
    (infra/jenkins/controller.py), bound only on the release agent. `signing_public_key` goes to the
    Secret Flux verifies commits against.
    """

    def __init__(self, name: str, args: DeployKeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitops:infra:DeployKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def key_pair(
            role: str, title: str, read_only: bool
        ) -> tuple[tls.PrivateKey, github.RepositoryDeployKey]:
            key = tls.PrivateKey(f"{name}-{role}", algorithm="ED25519", opts=child)
            deploy_key = github.RepositoryDeployKey(
                f"{name}-{role}",
                repository=args.repository_name,
                title=title,
                key=key.public_key_openssh,
                read_only=read_only,
                opts=child,
            )
            return key, deploy_key

        # Every stack on the repository adds its own Flux key; a later environment's says whose it is.
        flux_title = "flux" if args.releases else f"flux, stack {pulumi.get_stack()}"
        self.flux_key, self.flux_deploy_key = key_pair(
            "flux", f"{flux_title} (read-only, managed by Pulumi)", read_only=True
        )
        self.flux_private_key: pulumi.Output[str] = pulumi.Output.secret(self.flux_key.private_key_openssh)
        self.flux_public_key: pulumi.Output[str] = self.flux_key.public_key_openssh
        if not args.releases:
            self.register_outputs({"flux_public_key": self.flux_public_key})
            return
        self.jenkins_key, self.jenkins_deploy_key = key_pair(
            "jenkins", "jenkins (write: manifest commits, managed by Pulumi)", read_only=False
        )
        self.checkout_key, self.checkout_deploy_key = key_pair(
            "checkout", "jenkins checkout (read-only, managed by Pulumi)", read_only=True
        )
        self.jenkins_private_key: pulumi.Output[str] = pulumi.Output.secret(
            self.jenkins_key.private_key_openssh
        )
        self.checkout_private_key: pulumi.Output[str] = pulumi.Output.secret(
            self.checkout_key.private_key_openssh
        )
        self.signing_key = OpenPgpKey(f"{name}-signing", BOT_USER_ID, opts=child)
        self.signing_private_key: pulumi.Output[str] = pulumi.Output.secret(self.signing_key.private_key)
        self.signing_public_key: pulumi.Output[str] = self.signing_key.public_key
        self.signing_key_fingerprint: pulumi.Output[str] = self.signing_key.fingerprint
        self.register_outputs(
            {
                "flux_public_key": self.flux_public_key,
                "jenkins_public_key": self.jenkins_key.public_key_openssh,
                "checkout_public_key": self.checkout_key.public_key_openssh,
                "signing_public_key": self.signing_public_key,
                "signing_key_fingerprint": self.signing_key_fingerprint,
            }
        )
