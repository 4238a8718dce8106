"""Pulumi entry point: the stack is declared in infra.stack."""

from infra.stack import build

build()
