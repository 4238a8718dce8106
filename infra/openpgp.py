"""The bot's OpenPGP signing key: generated once, kept in the stack's state as a secret.

Pulumi has no OpenPGP resource, so a dynamic provider makes one. The key comes from pysequoia, the
Python binding of Sequoia-PGP (an OpenPGP implementation made for the job; it builds the key packets,
the self-signatures and the armour, which hand-written code would have to get right itself):

- `Profile.RFC4880` makes a version 4 key, the format GnuPG 2.2 (Debian bookworm, where the bot signs)
  and source-controller's OpenPGP library (ProtonMail/go-crypto) both read; `CipherSuite.Cv25519`
  makes an Ed25519 primary key that only certifies, an Ed25519 signing subkey and an X25519
  encryption subkey (pysequoia 0.1.35, `Tsk.generate`).
- No expiry (`Tsk.generate` sets none unless asked): an expired key would stop every deploy without a
  change anyone could review. It is rotated by replacing the resource instead (docs/operations-infra.md).
- No passphrase: the key file is a Jenkins secret file that only the release step binds.

Pulumi pickles the provider into the state by reference (dill pickles a class of an importable module
by its name) and runs it in its own process, started in the program's working directory
(pulumi/pulumi#17763), where `python -m pulumi.dynamic` imports `infra.openpgp` as the program does.

The key is generated at most once per resource: the provider has no update, and a change of the user
ID replaces the resource (a new key). Only `private_key` is secret; it is marked an additional secret
output, so the state holds it encrypted and no plain output, log line or exception carries it.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pysequoia
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

BOT_USER_ID = "gitops-bot <gitops-bot@users.noreply.github.com>"
"""The bot's git identity (jenkins/cli.py `DEFAULT_BOT`), as the key's User ID."""


class OpenPgpKeyProvider(ResourceProvider):
    """Creates a transferable secret key; everything it returns is derived from that one key."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        key = pysequoia.Tsk.generate(
            props["user_id"], profile=pysequoia.Profile.RFC4880, cipher_suite=pysequoia.CipherSuite.Cv25519
        )
        cert = key.extract_certificate()
        fingerprint = cert.fingerprint.upper()
        return CreateResult(
            fingerprint,
            {
                "user_id": props["user_id"],
                "fingerprint": fingerprint,
                "public_key": str(cert),
                "private_key": str(key),
            },
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = olds.get("user_id") != news.get("user_id")
        return DiffResult(changes=changed, replaces=["user_id"] if changed else [])


class OpenPgpKey(pulumi.dynamic.Resource, module="openpgp", name="Key"):
    """An OpenPGP key pair: `public_key` (ASCII-armored certificate), `fingerprint` (40 hex digits,
    upper case) and `private_key` (ASCII-armored secret key, a Pulumi secret)."""

    user_id: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    public_key: pulumi.Output[str]
    private_key: pulumi.Output[str]

    def __init__(self, name: str, user_id: str, opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["private_key"])
        super().__init__(
            OpenPgpKeyProvider(),
            name,
            {"user_id": user_id, "fingerprint": None, "public_key": None, "private_key": None},
            pulumi.ResourceOptions.merge(opts, secret),
        )
