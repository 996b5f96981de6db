"""`dockyard build`: a Dockerfile and a context directory -> an image in the node's store, without
a daemon, reproducibly. One job per module:

    dockerfile.py    the syntax (directives, continuations, heredocs) -> Instructions with lines
    words.py         BuildKit's word lexer: quotes, escapes, ${VAR:-x} / ${VAR:+x} substitution
    instructions.py  what each instruction means (flags, forms), checked before anything runs
    stages.py        stages and the plan: only those the target needs
    dockerignore.py  Docker's ignore rules (**, ! exceptions, Dockerfile-specific ignore file)
    context.py       the context: untrusted paths (no .., no symlink out), globs, checksums
    cache.py         cache keys and records under ROOT/build/cache; `builder prune`
    executor.py      the build: stages, steps, cache hits, export; tags move last
    steps.py         RUN / COPY / ADD / WORKDIR prepared as (cache key, make(upper))
    metadata.py      ENV, LABEL, CMD, ENTRYPOINT... as config changes + history text
    mounts.py        RUN --mount=type=cache|bind|tmpfs
    copier.py        COPY/ADD writes through an overlay (ownership, modes, archives)
    fetch.py         ADD <url> with --checksum
    overlay.py       the overlay mounts the build makes (options that keep the upper a diff)
    layers.py        upper dir -> reproducible tar.gz layer (the differ) -> blob + snapshot
    image.py         config, history and manifest as docker writes them
    progress.py      BuildKit-style progress: plain, compact live view on a TTY, quiet
    runner.py        the ONLY module that calls node.engine / node.runtime: a RUN step as a
                     container, the runtime's mount primitives, secure path resolution
"""
