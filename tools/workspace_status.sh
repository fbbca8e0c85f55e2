#!/usr/bin/env bash
# Bazel workspace status: the git commit and whether the tree is dirty.
# STABLE_ keys are part of the action key of stamped targets, so a new commit
# rebuilds //harness:build_info (one small file) and nothing else.
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=1; else dirty=0; fi
echo "STABLE_GIT_COMMIT ${commit}"
echo "STABLE_GIT_DIRTY ${dirty}"
