"""`make preflight`: check, before the first `pulumi up`, everything the stack needs from AWS, GitHub and
Pulumi, with the user's own credentials, and name every blocker with its fix.

Importable without the Pulumi engine: the stack's config is read from `pulumi config --json` when the CLI
is installed, else from the stack file, and validated by the stack's own loader (infra.config).
"""
