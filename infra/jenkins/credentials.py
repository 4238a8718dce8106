"""Jenkins' credentials, read on demand from AWS Secrets Manager, never stored by Jenkins.

JCasC's `credentials:` section writes every credential it defines into `credentials.xml` on JENKINS_HOME
(encrypted with a key that lives on the same volume, and in its snapshots). Instead, the AWS Secrets
Manager Credentials Provider plugin (jenkinsci/aws-secrets-manager-credentials-provider-plugin, docs/
README.md and `factory/CredentialsFactory.java` at tag 2.222.v376939a_9ffb_b) lists the secrets through
ListSecrets and fetches a value with GetSecretValue each time a build binds it:

- the credential's id is the secret's name after the `removePrefix` transformation, so each secret is
  named `<prefix><id>` with a prefix unique to the stack, and the plugin lists only that prefix (ListSecrets
  filter `name`: a case-sensitive prefix match, AWS Secrets Manager API reference, `Filter`);
- the tag `jenkins:credentials:type` says which kind of credential it is, `jenkins:credentials:username`
  the SSH user; a secret without the type tag is not a credential (the admin password is one such);
- a `string` or `sshUserPrivateKey` value is read from SecretString; a `file` value only from
  SecretBinary (`SecretBytesSupplier` returns null for a string).
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_TAG = "jenkins:credentials:type"
USERNAME_TAG = "jenkins:credentials:username"


@dataclass(frozen=True)
class Credential:
    id: str
    """The id Jenkinsfile and JCasC name (Jenkins allows `[a-zA-Z0-9_.-]+`)."""
    type: str
    """The plugin's type: `string`, `sshUserPrivateKey` or `file`."""
    description: str
    username: str | None = None

    @property
    def binary(self) -> bool:
        """Whether Secrets Manager must hold the value as SecretBinary (the plugin's `file` type)."""
        return self.type == "file"

    def tags(self) -> dict[str, str]:
        tags = {TYPE_TAG: self.type}
        if self.username is not None:
            tags[USERNAME_TAG] = self.username
        return tags


DEPLOY_KEY = Credential(
    "gitops-deploy-key",
    "sshUserPrivateKey",
    "GitHub deploy key with write access (release agent only)",
    "git",
)
CHECKOUT_KEY = Credential(
    "gitops-checkout-key", "sshUserPrivateKey", "GitHub deploy key, read-only: every checkout", "git"
)
AGENT_KEY = Credential(
    "jenkins-agent-ssh", "sshUserPrivateKey", "The controller's SSH login to its agents", "jenkins"
)
WEBHOOK_SECRET = Credential("github-webhook-secret", "string", "GitHub webhook HMAC secret")
SIGNING_KEY = Credential(
    "gitops-signing-key", "file", "OpenPGP key that signs the bot's commits (release agent only)"
)
# Not secret, but it decides which commits' code the release agent runs (jenkins/Jenkinsfile): only
# the stack may write it, as the other credentials.
SIGNING_PUBLIC_KEY = Credential(
    "gitops-signing-public-key", "file", "The bot's OpenPGP public key: which release code is verified"
)
PULLS_TOKEN = Credential(
    "gitops-pulls-token",
    "string",
    "GitHub token, Pull requests: read only: which commits are merged pull requests (release agent only)",
)


def secret_prefix(stack_tag: str, component: str) -> str:
    """The name prefix of a stack's credential secrets, e.g. `gitops-eks-dev/jenkins/`: unique per stack
    in the account, so two stacks never see each other's credentials."""
    return f"{stack_tag}/{component}/"
