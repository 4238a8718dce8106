"""The gitops-eks Pulumi stack: one ComponentResource per concern, wired together in `infra.stack`."""
