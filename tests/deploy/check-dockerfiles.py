#!/usr/bin/python3
"""Checks of deploy/docker/*.Dockerfile that need no container engine (none runs here):
  * multi-stage, and every external base image pinned: a versioned tag (ARG defaults resolved),
    never "latest" or a bare name;
  * the final stage runs as a non-root user (USER with a non-zero uid);
  * apt: installs use --no-install-recommends and package lists are removed in the same RUN;
    apt sources are pinned to a snapshot date (Debian snapshot sources or apt --snapshot);
  * pip: every requirement is pinned with ==;
  * COPY/ADD sources from the build context exist in the repository;
  * every RUN (shell form) passes shellcheck, as hadolint would do (hadolint is not packaged).
Usage: check-dockerfiles.py REPO_ROOT DOCKERFILE...   exit 0 when clean, 1 with the problems.
"""
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile


def instructions(text):
    """(line number, instruction, arguments) with continuation lines joined, comments dropped."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out


def substitute(s, args):
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)),
                  s)


def check(root, path, problems):
    name = os.path.relpath(path, root)
    ins = instructions(open(path).read())
    global_args, stages, env, final_user = {}, [], {}, None
    seen_from = False
    for n, word, rest in ins:
        where = f"{name}:{n}"
        if word == "ARG":
            key, _, default = rest.partition("=")
            default = default.strip().strip('"')
            if not seen_from:
                global_args[key] = default
            env.setdefault(key, default or "x")
        elif word == "FROM":
            seen_from = True
            parts = rest.split()
            image = substitute(parts[0], global_args)
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            if image not in stages:
                repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
                if "@sha256:" in image:
                    pass
                elif not tag or tag == "latest" or not re.search(r"\d", tag):
                    problems.append(f"{where}: base image {image} is not pinned to a version")
            stages.append(alias or image)
            final_user = None
        elif word == "USER":
            final_user = rest.split(":")[0]
        elif word == "ENV":
            for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', rest):
                env[m.group(1)] = m.group(2).strip('"')
        elif word in ("COPY", "ADD"):
            tokens = shlex.split(rest)
            if any(t.startswith("--from") for t in tokens):
                continue
            srcs = [t for t in tokens if not t.startswith("--")][:-1]
            for src in srcs:
                if not glob.glob(os.path.join(root, src)):
                    problems.append(f"{where}: COPY source {src} does not exist")
        elif word == "RUN":
            if rest.startswith("["):
                continue
            if re.search(r"apt-get\s+install", rest):
                for m in re.finditer(r"apt-get\s+install[^&;|]*", rest):
                    if "--no-install-recommends" not in m.group(0):
                        problems.append(f"{where}: apt-get install without --no-install-recommends")
            if "apt-get update" in rest and "rm -rf /var/lib/apt/lists" not in rest:
                problems.append(f"{where}: apt lists not removed in the same RUN")
            for m in re.finditer(r"pip3?\s+install\s+([^&;|]*)", rest):
                for tok in shlex.split(m.group(1)):
                    if tok.startswith("-") or tok.startswith("$") and "==" not in tok:
                        continue
                    if "==" not in tok and not tok.startswith("--"):
                        problems.append(f"{where}: pip requirement {tok} is not pinned with ==")
            script = "#!/bin/bash\nset -o pipefail\n" + "".join(
                f'export {k}="{v}"\n' for k, v in sorted({**global_args, **env}.items())
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)) + rest + "\n"
            with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
                f.write(script)
            r = subprocess.run(["shellcheck", "-s", "bash", "-S", "warning", f.name],
                               capture_output=True, text=True)
            os.unlink(f.name)
            if r.returncode:
                problems.append(f"{where}: shellcheck:\n{r.stdout.strip()}")
    if len(stages) < 2:
        problems.append(f"{name}: not a multi-stage build")
    if final_user in (None, "0", "root"):
        problems.append(f"{name}: the final stage does not switch to a non-root USER")
    text = open(path).read()
    if "apt-get" in text and "snapshot" not in text:
        problems.append(f"{name}: apt sources are not pinned to a snapshot date")


def main():
    root, files = sys.argv[1], sys.argv[2:]
    problems = []
    for path in files:
        check(root, path, problems)
    for p in problems:
        print(p)
    print(f"check-dockerfiles: {len(files)} Dockerfiles, {len(problems)} problem(s)")
    return 1 if problems or not files else 0


if __name__ == "__main__":
    sys.exit(main())
