"""What cloud-init does with the rendered user data, for the parts that matter to the boot: write_files
(content, permissions, owner) then each runcmd entry, in order. Input: /work/user-data.json."""

import json
import os
import shutil
import subprocess
import sys

with open("/work/user-data.json", encoding="utf-8") as source:
    document = json.load(source)
for entry in document["write_files"]:
    os.makedirs(os.path.dirname(entry["path"]), exist_ok=True)
    with open(entry["path"], "w", encoding="utf-8") as handle:
        handle.write(entry["content"])
    os.chmod(entry["path"], int(entry.get("permissions", "0644"), 8))
    user, _, group = entry.get("owner", "root:root").partition(":")
    shutil.chown(entry["path"], user, group or None)
for command in document["runcmd"]:
    # cloud-init runs a list entry as argv, a string entry through sh.
    result = subprocess.run(command if isinstance(command, list) else ["sh", "-c", command], check=False)
    if result.returncode != 0:
        print(f"runcmd {command} exited {result.returncode}", file=sys.stderr)
        sys.exit(result.returncode)
