#!/usr/bin/env bash
# The original write-up's Jenkins shell step, made runnable so bench/release.py can time it side by side
# with `python -m jenkins release`. What it does is unchanged: build with --no-cache, tag, push, render the
# manifest with sed from a template, `git add .`, commit, push. What had to change to run at all:
#   - quoting: the original wrote a literal `$tag` into the manifest (single-quoted sed); fixed;
#   - `$(aws ecr get-login ...)` is gone in AWS CLI v2; the local registry needs no login;
#   - build args and --network host for the offline build this machine needs (same as ours gets);
#   - it pushes to its own scratch branch with --force: run after ours on the same commit, a plain push
#     to main is rejected (the original's lost race), and the benchmark times the work, not the failure.
# Usage: REPOSITORY=127.0.0.1:PORT/name MANIFEST=k8s/overlays/dev/kustomization.yaml BRANCH=original
#        [BUILD_ARGS="K=V ..."] original_release.sh
set -euo pipefail

: "${REPOSITORY:?set REPOSITORY to the image repository}"
: "${MANIFEST:?set MANIFEST to the kustomization.yaml the release renders}"
BRANCH="${BRANCH:-original}"
read -r -a build_args <<<"${BUILD_ARGS:-}"

tag=$(git rev-parse HEAD)
flags=()
for arg in "${build_args[@]}"; do flags+=(--build-arg "$arg"); done

cd app
docker build --no-cache --network host "${flags[@]}" --build-arg "GIT_COMMIT=$tag" -t "hello-gitops:$tag" .
docker tag "hello-gitops:$tag" "$REPOSITORY:$tag"
docker push "$REPOSITORY:$tag"
cd ..

sed -e "s|IMAGE_REPOSITORY|$REPOSITORY|" -e "s|IMAGE_TAG|$tag|" "$MANIFEST.tmpl" >"$MANIFEST"
git add .
git commit --quiet -m "Deploy $tag"
git push --quiet --force origin "HEAD:refs/heads/$BRANCH"
