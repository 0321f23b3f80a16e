"""Policy as code from the command line: export, apply (with --dry-run), history and rollback of a tenant's plans
and policies (gateway/policy_documents.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway import policy_documents, selectors, services
from gateway.models import Policy
from portal.errors import DomainError
from tenants.models import Tenant
from tenants.services import SYSTEM


def _tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"There is no tenant “{slug}”.")
    return tenant


class Command(BaseCommand):
    help = "Export, apply (--dry-run shows the diff), list and roll back a tenant's plans and policies as YAML."

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True)
        export = verbs.add_parser("export", help="Print the tenant's document (or write it to --output).")
        export.add_argument("tenant")
        export.add_argument("--output", "-o", help="A file to write instead of printing.")
        apply = verbs.add_parser("apply", help="Apply a document (its `tenant:` says whose); '-' reads stdin.")
        apply.add_argument("file")
        apply.add_argument("--dry-run", action="store_true", help="Only print what would change.")
        apply.add_argument("--note", default="", help="Why: kept with the version and in the audit log.")
        history = verbs.add_parser("history", help="List the applied versions, newest first.")
        history.add_argument("tenant")
        rollback = verbs.add_parser("rollback", help="Apply an earlier version again, as a new version.")
        rollback.add_argument("tenant")
        rollback.add_argument("version", type=int)
        rollback.add_argument("--dry-run", action="store_true")
        verbs.add_parser("schema", help="Print the document's JSON schema.")
        platform = verbs.add_parser(
            "platform", help="Show the platform default rules, or set them from a YAML/JSON rules FILE ('-': stdin)."
        )
        platform.add_argument("file", nargs="?")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        try:
            getattr(self, f"_{verb}")(**options)
        except (DomainError, policy_documents.DocumentError) as error:
            raise CommandError(str(getattr(error, "message", error))) from None

    def _export(self, *, tenant: str, output: str | None, **_: Any) -> None:
        owner = _tenant(tenant)
        last = selectors.policy_document_versions(tenant=owner).first()
        text = policy_documents.to_yaml(selectors.policy_document_of(tenant=owner), last.number if last else None)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stdout.write(f"Wrote {output}.")
        else:
            self.stdout.write(text, ending="")

    def _apply(self, *, file: str, dry_run: bool, note: str, **_: Any) -> None:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        document = policy_documents.parse(text)
        owner = _tenant(document["tenant"])
        result = services.policy_document_apply(
            tenant=owner, document=document, actor=SYSTEM, dry_run=dry_run, note=note or f"applied from {file}"
        )
        self._show(result, dry_run)

    def _history(self, *, tenant: str, **_: Any) -> None:
        versions = selectors.policy_document_versions(tenant=_tenant(tenant))
        if not versions:
            self.stdout.write("No version applied yet.")
        for version in versions:
            who = version.created_by.email if version.created_by else "system"
            self.stdout.write(
                f"v{version.number}  {version.created_at:%Y-%m-%d %H:%M}  {who}  {len(version.changes)} change(s)"
                + (f"  {version.note}" if version.note else "")
            )

    def _rollback(self, *, tenant: str, version: int, dry_run: bool, **_: Any) -> None:
        result = services.policy_document_rollback(
            tenant=_tenant(tenant), number=version, actor=SYSTEM, dry_run=dry_run
        )
        self._show(result, dry_run)

    def _platform(self, *, file: str | None, **_: Any) -> None:
        """The platform default: the least specific level of the publisher's side, set by an operator."""
        if file is None:
            current = Policy.objects.filter(level=Policy.Level.PLATFORM).first()
            self.stdout.write(yaml.safe_dump(current.rules if current else {}, sort_keys=False) if current else "{}\n")
            return
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        try:
            rules = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise CommandError("This is not valid YAML.") from None
        services.policy_set(level=Policy.Level.PLATFORM, target=None, rules=rules, actor=SYSTEM)
        self.stdout.write("Platform default rules set." if rules else "Platform default rules removed.")

    def _schema(self, **_: Any) -> None:
        import json

        self.stdout.write(json.dumps(policy_documents.DOCUMENT_SCHEMA, indent=2))

    def _show(self, result: services.PolicyDocumentChange, dry_run: bool) -> None:
        for line in result.changes:
            self.stdout.write(line)
        if not result.changes:
            self.stdout.write("Nothing to change.")
        elif dry_run:
            self.stdout.write(f"Dry run: {len(result.changes)} change(s) not applied.")
        elif result.version is not None:
            self.stdout.write(f"Applied as version {result.version.number}.")
