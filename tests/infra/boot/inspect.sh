#!/bin/bash
# After the boot: one JSON report on stdout for the test. Secret values come in /probe/values (one per
# line, base64) and are never printed: only where they were found.
set -uo pipefail
# shellcheck source=/dev/null
secrets_dir=$(set -a; . /etc/jenkins/gitops.env; printf '%s' "$SECRETS")
python3 - "$secrets_dir" <<'PY'
import base64, hashlib, json, os, subprocess, sys
secrets_dir = sys.argv[1]
values = [base64.b64decode(v) for v in open("/probe/values").read().split()]
files = {}
for name in sorted(os.listdir(secrets_dir)) if os.path.isdir(secrets_dir) else []:
    path = os.path.join(secrets_dir, name)
    st = os.stat(path)
    files[name] = {"sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
                   "mode": oct(st.st_mode & 0o777), "owner": st.st_uid}
fstype = subprocess.run(["stat", "-f", "-c", "%T", secrets_dir], capture_output=True, text=True).stdout.strip()
log = "/var/log/standins.log"
found = set()
skip = ("/proc", "/sys", "/dev", "/probe", secrets_dir)
for root, dirs, names in os.walk("/"):
    dirs[:] = [d for d in dirs if not os.path.join(root, d).startswith(skip)]
    for n in names:
        p = os.path.join(root, n)
        try:
            if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 50_000_000:
                continue
            data = open(p, "rb").read()
        except OSError:
            continue
        for i, v in enumerate(values):
            if v.strip() and v.strip() in data:
                found.add(f"{p}:{i}")
print(json.dumps({
    "secrets_dir": secrets_dir, "secrets_fstype": fstype, "files": files, "leaks": sorted(found),
    "jenkins_uid": int(subprocess.run(["id", "-u", "jenkins"], capture_output=True, text=True).stdout or -1),
    "log": open(log).read().splitlines() if os.path.exists(log) else [],
    "casc": os.path.isfile("/etc/jenkins/casc.yaml"),
    "fstab": open("/etc/fstab").read() if os.path.exists("/etc/fstab") else "",
    "home_files": sorted(os.path.relpath(os.path.join(r, n), "/var/lib/jenkins")
                         for r, _, ns in os.walk("/var/lib/jenkins") for n in ns),
}))
PY
