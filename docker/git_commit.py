"""Print the commit a build context's .git/HEAD points at, or nothing (no .git: a tarball).

Run while the image is built (docker/Dockerfile's `commit` stage), on .git's HEAD and refs (the
only part of .git the context lets in, .dockerignore): git is not in the image, so this reads
them as git writes them: a detached HEAD holds the hash, else a ref, loose or in packed-refs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HASH = re.compile(r"[0-9a-f]{40}")


def commit(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if HASH.fullmatch(head):
        return head
    ref = head.removeprefix("ref: ").strip()
    loose = git / ref
    if loose.is_file():
        text = loose.read_text().strip()
        return text if HASH.fullmatch(text) else None
    packed = git / "packed-refs"
    lines = packed.read_text().splitlines() if packed.is_file() else []
    for line in lines:
        sha, _, name = line.partition(" ")
        if name == ref and HASH.fullmatch(sha):
            return sha
    return None


if __name__ == "__main__":  # the argument is the .git folder (its contents, in the image)
    print(commit(Path(sys.argv[1])) or "")
