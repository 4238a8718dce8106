"""What cloud-init does with the rendered user data, for the modules the boot may use, in the order AL2023's
cloud.cfg runs them: write_files (init stage: content, permissions, owner), packages (final stage,
package_update_upgrade_install: one `dnf install -y`, here the dnf stand-in), then runcmd's commands
(scripts_user, after it). Any other top-level key is refused: a module this stand-in does not run is one the
AMI's cloud-init may not run either, so the boot must not depend on it. Input: /work/user-data.json."""

import json
import os
import shutil
import subprocess
import sys

EMULATED = ("write_files", "packages", "runcmd")
# The write_files fields it applies. Others change what lands on disk or when (cloud-init 22.2
# cc_write_files.py: `encoding` decodes b64/gzip, `append` appends, `defer` waits for the final stage).
WRITE_FILES_FIELDS = ("path", "content", "owner", "permissions")

with open("/work/user-data.json", encoding="utf-8") as source:
    document = json.load(source)
unknown = sorted(set(document) - set(EMULATED))
if unknown:
    print(f"cloud-init stand-in: modules it does not emulate: {', '.join(unknown)}", file=sys.stderr)
    sys.exit(3)
for entry in document.get("write_files", []):
    if set(entry) - set(WRITE_FILES_FIELDS):
        fields = ", ".join(sorted(set(entry) - set(WRITE_FILES_FIELDS)))
        print(f"cloud-init stand-in: write_files fields it does not emulate: {fields}", file=sys.stderr)
        sys.exit(3)
    os.makedirs(os.path.dirname(entry["path"]), exist_ok=True)
    with open(entry["path"], "w", encoding="utf-8") as handle:
        handle.write(entry["content"])
    os.chmod(entry["path"], int(entry.get("permissions", "0644"), 8))
    user, _, group = entry.get("owner", "root:root").partition(":")
    shutil.chown(entry["path"], user, group or None)
if document.get("packages"):
    result = subprocess.run(["dnf", "install", "-y", *document["packages"]], check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)
for command in document.get("runcmd", []):
    # cloud-init runs a list entry as argv, a string entry through sh.
    result = subprocess.run(command if isinstance(command, list) else ["sh", "-c", command], check=False)
    if result.returncode != 0:
        print(f"runcmd {command} exited {result.returncode}", file=sys.stderr)
        sys.exit(result.returncode)
