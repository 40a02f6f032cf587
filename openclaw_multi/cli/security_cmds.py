"""``openclaw security audit``: findings about a profile's exposure, auth, TLS and files.

The checks are pure (client/audit.py); this prints them. Exit 1 when any finding is high.
No secret is ever printed: findings name settings and files, not values.
"""

from __future__ import annotations

import json
import time

import click

from ..client.audit import SEVERITIES, Finding, audit, gather
from ..errors import OpenClawError
from ..profiles.discovery import list_profiles
from ..profiles.paths import ProfilePaths, resolve_paths
from .context import CliContext, profile_options


@click.group("security")
def security() -> None:
    """Check profiles for risky settings."""


@security.command("audit")
@profile_options
@click.option("--all", "all_profiles", is_flag=True, help="Audit every profile on this host.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
def security_audit(obj: CliContext, all_profiles: bool, as_json: bool) -> None:
    """List findings (severity, what, why, fix); exit 1 if any is high."""
    name, explicit = obj.profile()
    selected = resolve_paths(name, obj.env, explicit=explicit)
    targets: list[ProfilePaths] = list_profiles(selected.home) if all_profiles else [selected]
    now = time.time()
    reports = [(paths, audit(gather(paths, now))) for paths in targets]
    counts = {s: sum(1 for _, fs in reports for f in fs if f.severity == s) for s in SEVERITIES}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "profiles": [
                        {
                            "profile": paths.display_name,
                            "configPath": str(paths.config_path),
                            "findings": [_finding_json(f) for f in findings],
                        }
                        for paths, findings in reports
                    ],
                    "summary": counts,
                }
            )
        )
    else:
        for paths, findings in reports:
            click.echo(_human(paths, findings))
        if all_profiles and not reports:
            click.echo(f"no profiles under {selected.home}")
        click.echo(", ".join(f"{counts[s]} {s}" for s in SEVERITIES))
    if counts["high"]:
        raise _HighFindings(f"{counts['high']} high-severity finding(s)")


class _HighFindings(OpenClawError):
    """Exit 1: the audit found something that needs fixing now."""


def _finding_json(finding: Finding) -> dict[str, str]:
    return {
        "id": finding.id,
        "severity": finding.severity,
        "what": finding.what,
        "why": finding.why,
        "fix": finding.fix,
    }


def _human(paths: ProfilePaths, findings: list[Finding]) -> str:
    lines = [f"profile {paths.display_name} ({paths.config_path})"]
    if not findings:
        lines.append("  no findings")
    for finding in findings:
        lines.append(f"  {finding.severity.upper():<6}  {finding.id}: {finding.what}")
        lines.append(f"          why: {finding.why}")
        lines.append(f"          fix: {finding.fix}")
    return "\n".join(lines)
